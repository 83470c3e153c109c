// WaitingRoom's `batch` option promises each coalesced call "its own outcome exactly as if run alone in
// submission order". The step script reads what a batch's joiners need in two commands and adds new joiners
// to the line in one, so this checks the promise over a seeded mix of joins (new users, re-joins, the same
// user twice in one tick), status reads and spent passes, with admissions under a cap, against a room that
// sends every call alone. And the script itself: a join before the opening that comes without a draw.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { LUA } from "../../src/internal/embedded.generated.js";
import { WaitingRoom } from "../../src/queue/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());

const SECRET = "queue-batch-equivalence-secret-of-32-bytes";

type Step =
  | { readonly k: "join"; readonly u: string }
  | { readonly k: "status"; readonly u: string }
  | { readonly k: "redeem"; readonly u: string };

/** A small deterministic PRNG (mulberry32), so that a failure replays. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Rounds of calls made in one tick: joins and status reads (which a batch coalesces), or spent passes, which
 * are other script calls, so they are not mixed into a round of steps (a batch leaves at the end of the tick,
 * after them).
 */
function rounds(seed: number, perRound = 12, users = 25): Step[][] {
  const rand = prng(seed);
  const out: Step[][] = [];
  for (let r = 0; r < 80; r++) {
    const redeem = r % 4 === 3;
    const n = 1 + Math.floor(rand() * (redeem ? 3 : perRound));
    const round: Step[] = [];
    for (let i = 0; i < n; i++) {
      const u = `u${Math.floor(rand() * users)}`;
      round.push({ k: redeem ? "redeem" : rand() < 0.6 ? "join" : "status", u });
    }
    out.push(round);
  }
  return out;
}

/**
 * What does not depend on the room's id or on the moment (no ticket, pass, expiry or clock reading), nor on
 * the batch: a WAITING answer's `waiting` and estimate are read from the room at the end of the script call,
 * which a batch shares.
 */
function outcome(r: object): unknown {
  const {
    ticket: _t,
    pass: _p,
    expiresAt: _e,
    now: _n,
    opensInMs: _o,
    ...rest
  } = r as Record<string, unknown>;
  if (rest.state === "WAITING") {
    delete rest.waiting;
    delete rest.estimatedWaitMs;
  }
  return rest;
}

async function play(batch: boolean, script: Step[][], opensInMs: number): Promise<unknown[]> {
  const room = new WaitingRoom(redis, {
    roomId: randomPrefix("eq"),
    secret: SECRET,
    maxActive: 4,
    passTtlMs: 600_000,
    batch,
    ...(opensInMs > 0 && { opensAt: Date.now() + opensInMs }),
  });
  const tickets = new Map<string, string>();
  const passes = new Map<string, string>();
  const seen: unknown[] = [];
  try {
    for (const round of script) {
      const results = await Promise.all(
        round.map(async (s): Promise<unknown> => {
          if (s.k === "join") {
            const j = await room.join(s.u);
            if (j.state !== "CLOSED") tickets.set(s.u, j.ticket);
            if (j.state === "ADMITTED") passes.set(s.u, j.pass);
            return outcome(j);
          }
          if (s.k === "status") {
            const t = tickets.get(s.u);
            if (t === undefined) return "no ticket";
            const st = await room.status(t, { userId: s.u });
            if (st.state === "ADMITTED") passes.set(s.u, st.pass);
            return outcome(st);
          }
          const p = passes.get(s.u);
          if (p === undefined) return "no pass";
          return outcome(await room.redeemPass(p, { userId: s.u }));
        }),
      );
      seen.push(results);
    }
    seen.push(outcome(await room.stats()));
  } finally {
    await room.clear();
  }
  return seen;
}

describe("WaitingRoom batching keeps each call's outcome", () => {
  for (const seed of [1, 2, 3]) {
    it(`a seeded mix of joins, re-joins, status reads and spent passes (seed ${seed}) matches batch: false`, async () => {
      const script = rounds(seed);
      const alone = await play(false, script, 0);
      const batched = await play(true, script, 0);
      expect(batched).toEqual(alone);
      // The mix does reach the paths: waiting, admitted, a pass spent (which lets the next in).
      const flat = JSON.stringify(alone);
      expect(flat).toContain('"WAITING"');
      expect(flat).toContain('"ADMITTED"');
      expect(flat).toContain('"ok":true');
    });
  }

  it("rounds of up to 200 calls (a batch of 64 or more goes as two script calls) match batch: false", async () => {
    const script = rounds(11, 200, 300);
    const alone = await play(false, script, 0);
    const batched = await play(true, script, 0);
    expect(batched).toEqual(alone);
    expect(script.some((r) => r.length >= 64)).toBe(true);
  });

  it("before the opening, the same (states and counts; the places are drawn)", async () => {
    const script = rounds(7).map((round) => round.filter((s) => s.k !== "redeem"));
    const alone = await play(false, script, 3_600_000);
    const batched = await play(true, script, 3_600_000);
    expect(batched).toEqual(alone);
    expect(JSON.stringify(alone)).toContain('"BEFORE_OPENING"');
  });
});

describe("queue/step", () => {
  it("sends back a new join before the opening that came without a draw, writing nothing; a re-join keeps its place", async () => {
    const tag = randomPrefix("st");
    const keys = [`{${tag}}:wr`, `{${tag}}:wr:q`, `{${tag}}:wr:adm`, `{${tag}}:wr:num`];
    const config = [Date.now() + 3_600_000, 0, 1, 5, 60_000];
    const step = (ops: string) =>
      redis.eval(LUA["queue/step"], 4, ...keys, ...config, ops) as Promise<number[]>;
    try {
      let r = await step("j alice ");
      expect(r.slice(7)).toEqual([6]); // 8 × 0 + NEEDS_DRAW
      expect(await redis.exists(...keys)).toBe(0);
      r = await step(`j${2 ** 52} alice `);
      expect(r.slice(7)).toEqual([8 * 1 + 3]); // BEFORE_OPENING, 1 waiting
      expect(Number(await redis.zscore(keys[1]!, "alice"))).toBe(0.5);
      r = await step("j alice j bob ");
      expect(r.slice(7)).toEqual([8 * 1 + 3, 6]); // alice is in line already; bob needs a draw
      expect(await redis.zcard(keys[1]!)).toBe(1);
    } finally {
      await redis.del(...keys);
    }
  });
});
