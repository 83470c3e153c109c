// WaitingRoom against a private redis-server: joins, re-joins, positions and admissions in join order,
// passes (forged, expired, replayed, another user's), the active-pass cap, pause / resume / drain / clear,
// and bad input that changes nothing.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { InvalidArgumentError } from "../../src/errors.js";
import { redisTimeMs } from "../../src/internal/time.js";
import { WaitingRoom, type WaitingRoomOptions } from "../../src/queue/index.js";
import { keyspace, randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());

const SECRET = "waiting-room-test-secret-of-32-bytes!";

function room(options: Partial<WaitingRoomOptions> = {}, client: Redis = redis): WaitingRoom {
  return new WaitingRoom(client, {
    roomId: randomPrefix("room"),
    secret: SECRET,
    prefix: "wr",
    ...(options.maxActive === undefined &&
      options.admitPerSecond === undefined && { admitPerSecond: 1, burst: 1 }),
    ...options,
  } as WaitingRoomOptions);
}

/** A second handle on the same room with other settings (another server, or the opening moved). */
function same(r: WaitingRoom, options: Partial<WaitingRoomOptions> = {}, client: Redis = redis): WaitingRoom {
  return room({ roomId: r.roomId, ...options }, client);
}

/** Every key of the given rooms, dumped (for "changes nothing" assertions). */
async function snap(...rooms: WaitingRoom[]): Promise<Record<string, string>> {
  const all = await Promise.all(rooms.map((r) => keyspace(redis, `{wr:${r.roomId}}*`)));
  return Object.assign({}, ...all) as Record<string, string>;
}

async function paused(options: Partial<WaitingRoomOptions> = {}): Promise<WaitingRoom> {
  const r = room(options);
  await r.pause();
  return r;
}

describe("join and status", () => {
  it("a re-join keeps the place and the ticket; status follows the line as it moves", async () => {
    const r = await paused({ admitPerSecond: 1_000, burst: 2 });
    const a = await r.join("a");
    const b = await r.join("b");
    const c = await r.join("c");
    expect([a.state, b.state, c.state]).toEqual(["WAITING", "WAITING", "WAITING"]);
    if (a.state !== "WAITING" || b.state !== "WAITING" || c.state !== "WAITING") return;
    expect([a.position, b.position, c.position]).toEqual([1, 2, 3]);
    expect(c.waiting).toBe(3);
    expect(c.paused).toBe(true);
    expect(c.estimatedWaitMs).toBeUndefined();
    // Joining again, even many times at once, keeps b's place.
    const again = await Promise.all(Array.from({ length: 20 }, () => r.join("b")));
    for (const j of again) expect(j).toMatchObject({ state: "WAITING", position: 2, waiting: 3 });
    expect(await redis.zcard(r.keys().waiting)).toBe(3);
    // Resumed: the burst (2) lets a and b in at once; c moves to the front.
    await r.resume();
    const sc = await r.status(c.ticket, { userId: "c" });
    expect(sc).toMatchObject({ state: "WAITING", position: 1, waiting: 1, paused: false });
    if (sc.state === "WAITING") expect(sc.estimatedWaitMs).toBeLessThanOrEqual(1);
    const sa = await r.status(a.ticket);
    expect(sa).toMatchObject({ state: "ADMITTED", admission: 1 });
    const sb = await r.status(b.ticket, { userId: "b" });
    expect(sb).toMatchObject({ state: "ADMITTED", admission: 2 });
    // An admitted user's re-join returns the same pass.
    const jb = await r.join("b");
    expect(jb.state === "ADMITTED" && sb.state === "ADMITTED" && jb.pass === sb.pass).toBe(true);
    await r.clear();
  });

  it("batch: false sends each call alone, with the same outcomes", async () => {
    const r = room({ admitPerSecond: 2, burst: 1, batch: false });
    const js = await Promise.all(["a", "b", "c", "b"].map((u) => r.join(u)));
    expect(js.map((j) => j.state)).toEqual(["ADMITTED", "WAITING", "WAITING", "WAITING"]);
    expect(js.map((j) => (j.state === "WAITING" ? j.position : 0))).toEqual([0, 1, 2, 1]);
    const c = js[2]!;
    if (c.state === "WAITING")
      expect(await r.status(c.ticket)).toMatchObject({ state: "WAITING", position: 2 });
    await r.clear();
  });

  it("an empty room with a free place admits at once; the estimate follows the rate", async () => {
    const r = room({ admitPerSecond: 2, burst: 1 });
    const first = await r.join("first");
    expect(first).toMatchObject({ state: "ADMITTED", admission: 1 });
    const second = await r.join("second");
    expect(second.state).toBe("WAITING");
    if (second.state === "WAITING") {
      expect(second.position).toBe(1);
      expect(second.estimatedWaitMs).toBeGreaterThan(0);
      expect(second.estimatedWaitMs).toBeLessThanOrEqual(500);
    }
    await r.clear();
  });

  it("before the opening: no position and no admission; after it the early joiners come first", async () => {
    const now = await redisTimeMs(redis);
    const early = room({ opensAt: now + 3_600_000, admitPerSecond: 1_000, burst: 1_000 });
    const e = await early.join("e1");
    expect(e).toMatchObject({ state: "BEFORE_OPENING", waiting: 1 });
    if (e.state === "BEFORE_OPENING") expect(e.opensInMs).toBeGreaterThan(3_500_000);
    const e2 = await early.join("e2");
    expect(await early.stats()).toMatchObject({ open: false, waiting: 2, admitted: 0 });
    // The same room once the opening is past (a handle whose opensAt is now behind Redis time): paused, so
    // the positions show the order drawn at random for the early two, then a late joiner behind them.
    const opened = same(early, { opensAt: now - 1, admitPerSecond: 1_000, burst: 1_000 });
    await opened.pause();
    const late = await opened.join("late");
    expect(late).toMatchObject({ state: "WAITING", position: 3 });
    const places = [];
    for (const [u, j] of [
      ["e1", e],
      ["e2", e2],
    ] as const) {
      if (j.state !== "BEFORE_OPENING") throw new Error(j.state);
      const s = await opened.status(j.ticket, { userId: u });
      places.push(s.state === "WAITING" ? s.position : 0);
    }
    expect(places.sort()).toEqual([1, 2]);
    await opened.clear();
  });

  it("refuses forged, tampered, other-room and other-user tickets as data, reading nothing", async () => {
    const r = room();
    const other = room();
    const j = await r.join("u1");
    const o = await other.join("u1");
    if (j.state === "CLOSED" || o.state === "CLOSED") throw new Error("closed");
    const before = await snap(r);
    const [kind, payload, sig] = j.ticket.split(".") as [string, string, string];
    const forgedPayload = Buffer.from(JSON.stringify({ r: `wr:${r.roomId}`, u: "u2" })).toString("base64url");
    const flip = (s: string) => (s[0] === "A" ? "B" : "A") + s.slice(1);
    for (const bad of [
      `${kind}.${forgedPayload}.${sig}`,
      `${kind}.${payload}.${flip(sig)}`,
      `${kind}.${payload}`,
      `p1.${payload}.${sig}`,
      "",
      "x".repeat(5_000),
      `${kind}.${payload}.${sig}.x`,
    ]) {
      expect(await r.status(bad)).toEqual({ state: "REFUSED", reason: "INVALID" });
    }
    // A ticket signed with another secret.
    const foreign = new WaitingRoom(redis, {
      roomId: r.roomId,
      secret: "another-secret-another-secret-another",
      prefix: "wr",
      maxActive: 1,
    });
    const fj = await foreign.join("u9");
    if (fj.state === "CLOSED") throw new Error("closed");
    await foreign.clear();
    await r.join("u1"); // restore what the foreign room's clear removed
    const snapshot = await snap(r, other);
    expect(await r.status(fj.ticket)).toEqual({ state: "REFUSED", reason: "INVALID" });
    expect(await r.status(o.ticket)).toEqual({ state: "REFUSED", reason: "WRONG_ROOM" });
    expect(await r.status(j.ticket, { userId: "u2" })).toEqual({ state: "REFUSED", reason: "WRONG_USER" });
    expect(await snap(r, other)).toEqual(snapshot);
    expect(Object.keys(before).length).toBeGreaterThan(0);
    // A rotated secret list still verifies tickets signed with an older key.
    const rotated = new WaitingRoom(redis, {
      roomId: r.roomId,
      secret: ["a-brand-new-secret-of-at-least-32-bytes", SECRET],
      prefix: "wr",
      admitPerSecond: 1,
      burst: 1,
    });
    expect((await rotated.status(j.ticket)).state).not.toBe("REFUSED");
    await r.clear();
    await other.clear();
  });
});

describe("admission order", () => {
  it("after the opening, 10,000 joins from 4 clients are admitted in join order", async () => {
    const clients = Array.from({ length: 4 }, () => srv.client());
    const r = await paused({ admitPerSecond: 1_000_000, burst: 1_000 });
    const handles = clients.map((c) => same(r, { admitPerSecond: 1_000_000, burst: 1_000 }, c));
    // While paused, a join's position is its place in the order Redis ran the joins.
    const placeOf = new Map<string, number>();
    await Promise.all(
      handles.map(async (h, c) => {
        const mine: number[] = [];
        for (let i = 0; i < 2_500; i += 50) {
          const js = await Promise.all(Array.from({ length: 50 }, (_, k) => h.join(`c${c}-${i + k}`)));
          js.forEach((j, k) => {
            if (j.state !== "WAITING") throw new Error(`unexpected ${j.state}`);
            placeOf.set(`c${c}-${i + k}`, j.position);
            mine.push(j.position);
          });
        }
        // Each client's own joins, issued in order, got increasing places.
        for (let k = 1; k < mine.length; k++) expect(mine[k]).toBeGreaterThan(mine[k - 1]!);
      }),
    );
    const places = [...placeOf.values()].sort((a, b) => a - b);
    expect(places).toEqual(Array.from({ length: 10_000 }, (_, i) => i + 1));
    // Resume; status reads from all clients admit 1,000 per call, in line order.
    await r.resume();
    const admissionOf = new Map<string, number>();
    const users = [...placeOf.keys()];
    for (let round = 0; admissionOf.size < users.length && round < 100; round++) {
      const pending = users.filter((u) => !admissionOf.has(u));
      const rs = await Promise.all(pending.map((u, i) => handles[i % 4]!.join(u)));
      rs.forEach((s, i) => {
        if (s.state === "ADMITTED") admissionOf.set(pending[i]!, s.admission);
      });
    }
    expect(admissionOf.size).toBe(10_000);
    for (const [u, place] of placeOf) expect(admissionOf.get(u)).toBe(place);
    await r.clear();
  });
});

describe("the pre-opening shuffle", () => {
  /** Joins 10 users early in each of 1,000 rooms, opens them, and returns the p-value of place against join order. */
  async function shuffleP(): Promise<number> {
    const TRIALS = 1_000;
    const N = 10;
    const counts = Array.from({ length: N }, () => new Array<number>(N).fill(0));
    const now = await redisTimeMs(redis);
    for (let t0 = 0; t0 < TRIALS; t0 += 50) {
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          const early = room({ opensAt: now + 3_600_000, admitPerSecond: 1, burst: 1 });
          // Ten joins in one call (the batch runs them in this order), then ten status reads once opened.
          const js = await Promise.all(Array.from({ length: N }, (_, i) => early.join(`u${i}`)));
          const opened = same(early, { opensAt: now - 1, maxActive: 1 });
          await opened.pause();
          const ss = await Promise.all(
            js.map((j, i) => {
              if (j.state !== "BEFORE_OPENING") throw new Error(`unexpected ${j.state}`);
              return opened.status(j.ticket, { userId: `u${i}` });
            }),
          );
          ss.forEach((s, i) => {
            if (s.state !== "WAITING") throw new Error(`unexpected ${s.state}`);
            counts[i]![s.position - 1]!++;
          });
          await opened.clear();
        }),
      );
    }
    // Every row and column sums to TRIALS (each room is a permutation): (N-1)² degrees of freedom.
    const expected = TRIALS / N;
    let chi2 = 0;
    for (const row of counts) for (const o of row) chi2 += (o - expected) ** 2 / expected;
    const df = (N - 1) ** 2;
    const p = chiSquareSurvival(chi2, df);
    console.log(`pre-opening shuffle: chi-square ${chi2.toFixed(1)} on ${df} df, p = ${p.toFixed(4)}`);
    return p;
  }

  it("is uniform: chi-square of join order against place over 1,000 rooms of 10 early joiners, p > 0.01", async () => {
    expect(chiSquareSurvival(124.84, 81)).toBeCloseTo(0.001, 3); // the survival function itself
    expect(chiSquareSurvival(113.51, 81)).toBeCloseTo(0.01, 3);
    // A fair shuffle lands at p <= 0.01 in one run of a hundred: only then, one independent run of 1,000 more
    // rooms decides, so a fair shuffle fails this test once in 10,000. A biased one (say the first joiner
    // first 15% of the time instead of 10%) gives a chi-square over 100 more, p below 1e-9, in both runs.
    let p = await shuffleP();
    if (p <= 0.01) p = await shuffleP();
    expect(p).toBeGreaterThan(0.01);
  });
});

/** P(X ≥ x) for X chi-square with k degrees of freedom: the regularized upper incomplete gamma Q(k/2, x/2). */
function chiSquareSurvival(x: number, k: number): number {
  const a = k / 2;
  const z = x / 2;
  const lnGamma = (v: number): number => {
    // Lanczos approximation (g = 7, n = 9).
    const c = [
      0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
      12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
    ];
    v -= 1;
    let s = c[0]!;
    for (let i = 1; i < 9; i++) s += c[i]! / (v + i);
    const t = v + 7.5;
    return 0.5 * Math.log(2 * Math.PI) + (v + 0.5) * Math.log(t) - t + Math.log(s);
  };
  if (z < a + 1) {
    // Series for P, then Q = 1 - P.
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 1_000; n++) {
      term *= z / (a + n);
      sum += term;
      if (term < sum * 1e-15) break;
    }
    return 1 - sum * Math.exp(-z + a * Math.log(z) - lnGamma(a));
  }
  // Continued fraction for Q (Lentz).
  let b = z + 1 - a;
  let c = 1 / 1e-300;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1_000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return Math.exp(-z + a * Math.log(z) - lnGamma(a)) * h;
}

describe("passes", () => {
  async function admitted(r: WaitingRoom, userId: string) {
    const j = await r.join(userId);
    if (j.state !== "ADMITTED") throw new Error(`${userId} not admitted: ${j.state}`);
    return j;
  }

  it("a pass works once, for its user and room; forged, replayed and other users' passes are refused", async () => {
    const r = room({ maxActive: 10 });
    const other = room({ maxActive: 10 });
    const a = await admitted(r, "alice");
    const b = await admitted(r, "bob");
    const o = await admitted(other, "alice");
    const snapshot = await snap(r, other);
    const [kind, payload, sig] = a.pass.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as Record<string, unknown>;
    const forge = (c: Record<string, unknown>) =>
      `${kind}.${Buffer.from(JSON.stringify(c)).toString("base64url")}.${sig}`;
    for (const bad of [
      forge({ ...claims, u: "bob" }),
      forge({ ...claims, e: (claims.e as number) + 3_600_000 }),
      forge({ ...claims, n: 2 }),
      `${kind}.${payload}.${sig.slice(0, -2)}AA`,
      a.ticket, // a ticket is no pass
      "",
    ]) {
      expect(await r.redeemPass(bad, { userId: "alice" })).toEqual({ ok: false, reason: "INVALID" });
    }
    expect(await r.redeemPass(b.pass, { userId: "alice" })).toEqual({ ok: false, reason: "WRONG_USER" });
    expect(await r.redeemPass(o.pass, { userId: "alice" })).toEqual({ ok: false, reason: "WRONG_ROOM" });
    expect(await snap(r, other)).toEqual(snapshot);
    // The real one works once, on any server (another client), then never again.
    const elsewhere = same(r, { maxActive: 10 }, srv.client());
    expect(await elsewhere.redeemPass(a.pass, { userId: "alice" })).toEqual({
      ok: true,
      expiresAt: a.expiresAt,
      admission: a.admission,
    });
    const replays = await Promise.all(
      Array.from({ length: 10 }, () => r.redeemPass(a.pass, { userId: "alice" })),
    );
    for (const x of replays) expect(x).toEqual({ ok: false, reason: "USED" });
    // Spent: alice is out of the room; a re-join puts her at the back (admitted again here: a free place),
    // with a new admission; the old pass stays refused.
    expect(await r.status(a.ticket)).toEqual({ state: "NOT_QUEUED" });
    const again = await admitted(r, "alice");
    expect(again.admission).toBe(3);
    expect(await r.redeemPass(a.pass, { userId: "alice" })).toEqual({ ok: false, reason: "USED" });
    // Clearing the room voids every pass.
    await r.clear();
    expect(await r.redeemPass(b.pass, { userId: "bob" })).toEqual({ ok: false, reason: "USED" });
    await other.clear();
  });

  it("an expired pass is refused and its place goes to the next in line", async () => {
    const r = room({ maxActive: 1, passTtlMs: 1_000 });
    const a = await admitted(r, "a");
    const b = await r.join("b");
    expect(b).toMatchObject({ state: "WAITING", position: 1 });
    if (b.state !== "WAITING") return;
    // Poll Redis time (not the application clock) until the pass is past its expiry.
    const deadline = performance.now() + 10_000;
    while ((await redisTimeMs(redis)) < a.expiresAt) {
      if (performance.now() > deadline) throw new Error("Redis time did not pass the expiry");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(await r.redeemPass(a.pass, { userId: "a" })).toEqual({ ok: false, reason: "EXPIRED" });
    expect(await r.status(b.ticket)).toMatchObject({ state: "ADMITTED", admission: 2 });
    expect(await r.status(a.ticket)).toEqual({ state: "NOT_QUEUED" });
    await r.clear();
  });

  it("maxActive: a spent pass frees a place; the active count never exceeds the cap", async () => {
    const r = room({ maxActive: 3, passTtlMs: 60_000 });
    const js = [];
    for (let i = 0; i < 10; i++) js.push(await r.join(`u${i}`));
    expect(js.map((j) => j.state)).toEqual([...Array(3).fill("ADMITTED"), ...Array(7).fill("WAITING")]);
    const w = js[3]!;
    if (w.state === "WAITING") {
      expect(w.position).toBe(1);
      expect(w.estimatedWaitMs).toBe(60_000); // an upper bound: one pass lifetime
    }
    for (let k = 0; k < 7; k++) {
      const s = await r.stats();
      expect(s.active).toBe(3);
      const holder = js[k]!;
      if (holder.state !== "ADMITTED") {
        const st = await r.status(holder.state === "WAITING" ? holder.ticket : "");
        if (st.state !== "ADMITTED") throw new Error(`u${k} not admitted`);
        expect((await r.redeemPass(st.pass, { userId: `u${k}` })).ok).toBe(true);
      } else expect((await r.redeemPass(holder.pass, { userId: `u${k}` })).ok).toBe(true);
      const next = js[k + 3]!;
      if (next.state === "CLOSED") throw new Error("closed");
      expect(await r.status(next.ticket)).toMatchObject({ state: "ADMITTED", admission: k + 4 });
    }
    expect(await r.stats()).toMatchObject({ waiting: 0, active: 3, admitted: 10 });
    await r.clear();
  });
});

describe("pause, resume, drain, clear", () => {
  it("paused: joins queue, nobody is admitted; drained: no new joins, the line still moves", async () => {
    // A slow refill: the 5 of the burst go in at the resume, and no token comes back during the test, however
    // slowly a busy machine runs it.
    const r = room({ admitPerSecond: 0.001, burst: 5 });
    await r.pause();
    for (let i = 0; i < 8; i++) expect((await r.join(`u${i}`)).state).toBe("WAITING");
    expect(await r.stats()).toMatchObject({ paused: true, waiting: 8, admitted: 0 });
    await r.drain();
    const before = await snap(r);
    expect(await r.join("newcomer")).toEqual({ state: "CLOSED" });
    expect(await snap(r)).toEqual(before);
    // Someone already in line may still re-join (and keeps the place).
    expect(await r.join("u3")).toMatchObject({ state: "WAITING", position: 4 });
    await r.resume();
    const s = await r.stats();
    expect(s).toMatchObject({ paused: false, draining: true, waiting: 3, admitted: 5 });
    await r.undrain();
    expect((await r.join("newcomer")).state).toBe("WAITING");
    await r.clear();
    expect(await redis.exists(...Object.values(r.keys()))).toBe(0);
  });
});

describe("bad input", () => {
  it("options: InvalidArgumentError naming the option", () => {
    const ok = { roomId: "r", secret: SECRET, admitPerSecond: 1 };
    const bad: [Record<string, unknown>, string][] = [
      [{ ...ok, roomId: "a{b}" }, "roomId"],
      [{ ...ok, roomId: "" }, "roomId"],
      [{ ...ok, secret: "short" }, "secret"],
      [{ ...ok, secret: [] }, "secret"],
      [{ ...ok, admitPerSecond: 0 }, "admitPerSecond"],
      [{ ...ok, admitPerSecond: -1 }, "admitPerSecond"],
      [{ ...ok, admitPerSecond: Number.NaN }, "admitPerSecond"],
      [{ ...ok, admitPerSecond: "5" }, "admitPerSecond"],
      [{ roomId: "r", secret: SECRET }, "options"],
      [{ ...ok, burst: 0 }, "burst"],
      [{ ...ok, burst: 1.5 }, "burst"],
      [{ roomId: "r", secret: SECRET, maxActive: 1, burst: 2 }, "burst"],
      [{ ...ok, maxActive: 0 }, "maxActive"],
      [{ ...ok, passTtlMs: 10 }, "passTtlMs"],
      [{ ...ok, passTtlMs: 1.5 }, "passTtlMs"],
      [{ ...ok, passTtlMs: 10 * 86_400_000 }, "passTtlMs"],
      [{ ...ok, opensAt: -1 }, "opensAt"],
      [{ ...ok, batch: "yes" }, "batch"],
      [{ ...ok, prefix: "a b" }, "prefix"],
      [{ ...ok, admitPerSecnd: 1 }, "options.admitPerSecnd"],
    ];
    for (const [options, argument] of bad) {
      let err: unknown;
      try {
        new WaitingRoom(redis, options as unknown as WaitingRoomOptions);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(options)).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).argument).toBe(argument);
    }
    expect(() => new WaitingRoom({} as Redis, ok)).toThrow(InvalidArgumentError);
  });

  it("ids and arguments: InvalidArgumentError, and nothing changes", async () => {
    const r = room({ admitPerSecond: 10, burst: 1 });
    const j = await r.join("x");
    if (j.state === "CLOSED") throw new Error("closed");
    const before = await snap(r);
    for (const id of ["", "a b", "a{b}", "x".repeat(201), "a\u0000", 5, null, undefined, "a\ud800"]) {
      await expect(r.join(id as string)).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(r.redeemPass("p", { userId: id as string })).rejects.toBeInstanceOf(InvalidArgumentError);
      if (id !== undefined) {
        await expect(r.status(j.ticket, { userId: id as string })).rejects.toBeInstanceOf(
          InvalidArgumentError,
        );
      }
    }
    await expect(r.status(j.ticket, { user: "x" } as never)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(r.redeemPass("p", undefined as never)).rejects.toBeInstanceOf(InvalidArgumentError);
    for (const t of [5, null, {}, "t1..", "t1.e30.AAAA"]) {
      expect(await r.status(t as string)).toEqual({ state: "REFUSED", reason: "INVALID" });
      expect(await r.redeemPass(t as string, { userId: "x" })).toEqual({ ok: false, reason: "INVALID" });
    }
    expect(await snap(r)).toEqual(before);
    await r.clear();
  });
});
