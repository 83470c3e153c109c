// In-process answers of Inventory against a private redis-server: after sell-out a new reservationId is
// refused with no Redis command, while a retry of a reservation made in any process still gets its replay;
// the flag drops on every change and is never trusted while the subscriber is not subscribed. Commands are
// counted from INFO commandstats deltas (no MONITOR).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { ConflictError, InvalidArgumentError } from "../../src/errors.js";
import { Inventory, type ReserveResult } from "../../src/stock/index.js";
import { keyspace, randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let admin: Redis;
beforeAll(async () => {
  srv = await startRedis();
  admin = srv.client();
});
afterAll(async () => srv?.stop());

/** Commands the server has run, by name (those inside scripts included), except INFO itself. */
async function stats(): Promise<Record<string, number>> {
  const info = await admin.info("commandstats");
  const out: Record<string, number> = {};
  for (const m of info.matchAll(/cmdstat_([^:]+):calls=(\d+)/g))
    if (m[1] !== "info") out[m[1]!] = Number(m[2]);
  return out;
}

/** Commands run since `before` (TIME excluded: the Redis clock resyncs in the background, not per call). */
async function since(before: Record<string, number>): Promise<Record<string, number>> {
  const after = await stats();
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after))
    if (k !== "time" && v !== (before[k] ?? 0)) out[k] = v - (before[k] ?? 0);
  return out;
}

/** Polls `check` until it holds, with a deadline (never a fixed sleep). */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Waits until `n` connections are subscribed to the prefix's change channel, and their replies are in. */
async function subscribed(prefix: string, n: number): Promise<void> {
  await until("the subscribers", async () => {
    const [, count] = (await admin.pubsub("NUMSUB", `${prefix}:restock`)) as [string, number];
    return Number(count) >= n;
  });
  await admin.ping();
}

/** A process: its own command connection and subscriber. */
function process(prefix: string, extra: ConstructorParameters<typeof Inventory>[1] = {}): Inventory {
  return new Inventory(srv.client(), { prefix, subscriber: srv.client(), localCacheMs: 60_000, ...extra });
}

/** Reserves with new ids at `inv` until one costs no Redis command (the ids are read once it is sold out). */
async function untilAnsweredInProcess(inv: Inventory, sku: string, expected: ReserveResult): Promise<void> {
  let i = 0;
  await until("an in-process answer", async () => {
    const before = await stats();
    expect(await inv.reserve(sku, { userId: `probe-${i}`, reservationId: `probe-${i++}` })).toEqual(expected);
    return Object.keys(await since(before)).length === 0;
  });
}

const SOLD_OUT = { ok: false, reason: "SOLD_OUT" } as const;

describe("sold out, with ids", () => {
  it("answers a new reservationId in process (0 commands) and replays a reservation made in another process", async () => {
    const prefix = randomPrefix();
    const a = process(prefix);
    const b = process(prefix);
    await subscribed(prefix, 2);
    await b.setStock("s", 3, { perUserLimit: 2 });
    const a1 = await a.reserve("s", { userId: "ua", reservationId: "a1" });
    const a2 = await a.reserve("s", { userId: "ua", reservationId: "a2" });
    const b1 = await b.reserve("s", { userId: "ub", reservationId: "b1" }); // the last unit, sold in B
    expect([a1.ok, a2.ok, b1]).toEqual([true, true, { ok: true, reservationId: "b1", remaining: 0 }]);

    await untilAnsweredInProcess(a, "s", SOLD_OUT);
    let before = await stats();
    for (let i = 0; i < 1000; i++) {
      expect(await a.reserve("s", { userId: `u${i}`, reservationId: `new-${i}` })).toEqual(SOLD_OUT);
    }
    expect(await a.reserve("s", { userId: "x" })).toEqual(SOLD_OUT); // no id: a random one, new too
    expect(await since(before)).toEqual({});

    // Retries go to Redis and get their first outcome, wherever the reservation was made.
    before = await stats();
    expect(await a.reserve("s", { userId: "ub", reservationId: "b1" })).toEqual(b1);
    expect(await a.reserve("s", { userId: "ua", reservationId: "a1" })).toEqual(a1);
    await expect(a.reserve("s", { userId: "other", reservationId: "b1" })).rejects.toBeInstanceOf(
      ConflictError,
    );
    const d = await since(before);
    expect((d.evalsha ?? 0) + (d.eval ?? 0)).toBe(3); // one script call each

    // B gives the unit back: A's flag drops on the message, and A sells it again.
    expect(await b.release("s", "b1")).toEqual({ ok: true });
    await until("the release to reach A", async () => {
      const r = await a.reserve("s", { userId: "uc", reservationId: "c1" });
      return r.ok;
    });
    expect(await a.snapshot("s")).toMatchObject({ available: 0, held: 3 });
    await a.close();
    await b.close();
  });

  it("replays ids that succeeded in another process just before the flag rose (two processes racing)", async () => {
    const prefix = randomPrefix();
    const a = process(prefix);
    const b = process(prefix);
    await subscribed(prefix, 2);
    for (let round = 0; round < 20; round++) {
      const sku = `s${round}`;
      await a.setStock(sku, 5);
      // Both processes race for 5 units with 12 callers each; the flag rises in A while B's last wins land.
      const calls = (inv: Inventory, tag: string) =>
        Array.from({ length: 12 }, (_, i) =>
          inv.reserve(sku, { userId: `${tag}${i}`, reservationId: `${tag}${i}` }),
        );
      const results = await Promise.all([...calls(a, "a"), ...calls(b, "b")]);
      const won = results.filter((r) => r.ok);
      expect(won).toHaveLength(5);
      // Every winner, retried in the other process (or its own), gets its reservation back.
      for (const r of won) {
        if (!r.ok) continue;
        const userId = r.reservationId;
        expect(await a.reserve(sku, { userId, reservationId: r.reservationId })).toEqual(r);
        expect(await b.reserve(sku, { userId, reservationId: r.reservationId })).toEqual(r);
      }
      // Losers and new ids are refused, in process once the ids are read.
      await untilAnsweredInProcess(a, sku, SOLD_OUT);
      await untilAnsweredInProcess(b, sku, SOLD_OUT);
      for (const r of won) {
        if (!r.ok) continue;
        expect(await a.reserve(sku, { userId: r.reservationId, reservationId: r.reservationId })).toEqual(r);
      }
    }
    await a.close();
    await b.close();
  });

  it("tells LIMIT_REACHED from SOLD_OUT in process as Redis does", async () => {
    const prefix = randomPrefix();
    const a = process(prefix);
    const redisOnly = new Inventory(srv.client(), { prefix, localCacheMs: 0 });
    await subscribed(prefix, 1);
    await a.setStock("s", 2, { perUserLimit: 2 });
    expect((await a.reserve("s", { userId: "u1", reservationId: "r1" })).ok).toBe(true);
    expect((await a.reserve("s", { userId: "u2", reservationId: "r2" })).ok).toBe(true);
    await untilAnsweredInProcess(a, "s", SOLD_OUT);
    const cases = [
      { userId: "u1", quantity: 2 }, // 1 + 2 > 2
      { userId: "u1", quantity: 1 },
      { userId: "u3", quantity: 3 }, // more than the limit on its own
      { userId: "u3", quantity: 2 },
    ];
    const before = await stats();
    const local = [];
    for (const c of cases)
      local.push(await a.reserve("s", { ...c, reservationId: `x-${c.userId}-${c.quantity}` }));
    expect(await since(before)).toEqual({});
    const remote = [];
    for (const c of cases)
      remote.push(await redisOnly.reserve("s", { ...c, reservationId: `x-${c.userId}-${c.quantity}` }));
    expect(local).toEqual(remote);
    expect(local.map((r) => !r.ok && r.reason)).toEqual([
      "LIMIT_REACHED",
      "SOLD_OUT",
      "LIMIT_REACHED",
      "SOLD_OUT",
    ]);
    await a.close();
  });

  it("drops the flag on a change in another process: expired hold, setStock", async () => {
    const prefix = randomPrefix();
    const a = process(prefix);
    const b = process(prefix);
    await subscribed(prefix, 2);
    await b.setStock("s", 1, { holdMs: 30 });
    expect((await b.reserve("s", { userId: "u", reservationId: "h" })).ok).toBe(true);
    await untilAnsweredInProcess(a, "s", SOLD_OUT);
    // The hold expires; B's sweeper gives it back and the message reaches A.
    await until("the hold to expire", async () => (await b.expireHolds("s")) === 1);
    await until(
      "A to see the expiry",
      async () => (await a.reserve("s", { userId: "v", reservationId: "v" })).ok,
    );
    await untilAnsweredInProcess(a, "s", SOLD_OUT);
    await b.setStock("s", 2, { holdMs: 30 }); // one more unit: a setStock in another process
    await until(
      "A to see the setStock",
      async () => (await a.reserve("s", { userId: "w", reservationId: "w" })).ok,
    );
    await a.close();
    await b.close();
  });

  it("a reservation count that never matches (a hand edit) costs one read of the ids, not one per call", async () => {
    const prefix = randomPrefix();
    const a = process(prefix);
    await subscribed(prefix, 1);
    await a.setStock("s", 1);
    await admin.hset(a.keys("s").stock, "n", 7); // the counter no longer matches the records
    const r = await a.reserve("s", { userId: "u", reservationId: "r" });
    const before = await stats();
    for (let i = 0; i < 20; i++) {
      expect(await a.reserve("s", { userId: `v${i}`, reservationId: `v${i}` })).toEqual(SOLD_OUT);
    }
    expect(await a.reserve("s", { userId: "u", reservationId: "r" })).toEqual(r);
    const d = await since(before);
    expect((d.evalsha ?? 0) + (d.eval ?? 0)).toBeGreaterThanOrEqual(21); // every call with an id asked Redis
    expect(d.hscan ?? 0).toBeLessThanOrEqual(1);
    await a.close();
  });

  it("answers nothing in process while its subscriber is not subscribed", async () => {
    const prefix = randomPrefix();
    const dead = new Redis({
      port: 1,
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    });
    dead.on("error", () => undefined);
    const a = new Inventory(srv.client(), { prefix, subscriber: dead, localCacheMs: 60_000 });
    await a.setStock("s", 0);
    for (let i = 0; i < 20; i++) {
      const before = await stats();
      expect(await a.reserve("s", { userId: "u" })).toEqual(SOLD_OUT);
      const d = await since(before);
      expect((d.evalsha ?? 0) + (d.eval ?? 0)).toBe(1); // one script call (EVAL the first time on a connection)
    }
    await a.close();
    dead.disconnect();
  });

  it("refuses bad options with InvalidArgumentError and writes nothing", async () => {
    const prefix = randomPrefix();
    const inv = new Inventory(admin, { prefix });
    await inv.setStock("s", 1);
    const before = await keyspace(admin, `*${prefix}*`);
    for (const bad of [
      { localCacheMs: -1 },
      { localCacheMs: Number.NaN },
      { localCacheMs: 1.5 },
      { localCacheMs: "1000" },
      { localCacheMs: Number.POSITIVE_INFINITY },
      { localMaxIds: -1 },
      { localMaxIds: Number.NaN },
      { subscriber: {} },
      { subscriber: () => undefined },
      { batch: 1 },
      { localCacheMS: 5 },
    ]) {
      expect(() => new Inventory(admin, { prefix, ...(bad as object) })).toThrow(InvalidArgumentError);
    }
    expect(await keyspace(admin, `*${prefix}*`)).toEqual(before);
    expect(await admin.pubsub("NUMSUB", `${prefix}:restock`)).toEqual([`${prefix}:restock`, 0]);
  });
});

describe("the sale window on the Redis clock", () => {
  const redisNow = async (): Promise<number> => {
    const [s, us] = await admin.time();
    return Number(s) * 1000 + Math.floor(Number(us) / 1000);
  };

  it("answers NOT_STARTED / ENDED in process, and an application clock shifted by ±10 minutes changes nothing", async () => {
    const prefix = randomPrefix();
    const a = process(prefix);
    await subscribed(prefix, 1);
    const now = await redisNow();
    const min = 60_000;
    // Each boundary 5 minutes from Redis time: a clock 10 minutes off would decide every one of them wrongly.
    await a.setStock("early", 10, { startsAt: now + 5 * min });
    await a.setStock("ended", 10, { endsAt: now - 5 * min });
    await a.setStock("open", 1000, { startsAt: now - 5 * min, endsAt: now + 5 * min });
    await a.setStock("closing", 10, { endsAt: now + 5 * min });
    await untilAnsweredInProcess(a, "early", { ok: false, reason: "NOT_STARTED" });
    await untilAnsweredInProcess(a, "ended", { ok: false, reason: "ENDED" });
    const realNow = Date.now;
    try {
      for (const shift of [0, 10 * min, -10 * min, 0]) {
        Date.now = () => realNow() + shift;
        const before = await stats();
        for (let i = 0; i < 100; i++) {
          const id = `x${shift}-${i}`;
          expect(await a.reserve("early", { userId: id, reservationId: id })).toEqual({
            ok: false,
            reason: "NOT_STARTED",
          });
          expect(await a.reserve("ended", { userId: id })).toEqual({ ok: false, reason: "ENDED" });
        }
        expect(await since(before)).toEqual({}); // all in process
        const id = `y${shift}`;
        expect(await a.reserve("open", { userId: id, reservationId: id })).toMatchObject({ ok: true });
        expect(await a.reserve("closing", { userId: id, reservationId: id })).toMatchObject({ ok: true });
      }
    } finally {
      Date.now = realNow;
    }
    await a.close();
  });

  it("learns a window from another process's reply, drops it on that process's setStock, and still replays", async () => {
    const prefix = randomPrefix();
    const a = process(prefix);
    const b = process(prefix);
    await subscribed(prefix, 2);
    const now = await redisNow();
    await b.setStock("s", 10, { startsAt: now + 3_600_000 });
    // A never set this SKU: it learns the window from its first NOT_STARTED reply.
    await untilAnsweredInProcess(a, "s", { ok: false, reason: "NOT_STARTED" });
    // B opens the sale: A drops what it knew on the message and sells.
    await b.setStock("s", 10, { startsAt: now - 3_600_000 });
    await until(
      "A to see the opening",
      async () => (await a.reserve("s", { userId: "u1", reservationId: "r1" })).ok,
    );
    const r1 = await b.reserve("s", { userId: "u1", reservationId: "r1" });
    // B closes it: new ids are ENDED in process at A (once it has read the ids), r1's retry is replayed.
    await b.setStock("s", 10, { startsAt: now - 3_600_000, endsAt: now - 1 });
    await until("A to see the end", async () => {
      const r = await a.reserve("s", { userId: "u2", reservationId: "r2" });
      return !r.ok && r.reason === "ENDED";
    });
    await untilAnsweredInProcess(a, "s", { ok: false, reason: "ENDED" });
    expect(await a.reserve("s", { userId: "u1", reservationId: "r1" })).toEqual(r1);
    await a.close();
    await b.close();
  });
});
