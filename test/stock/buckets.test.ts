// A SKU split into buckets (setStock's `buckets`) on a private redis-server: layout, bad counts, borrowing,
// interrupted transfers and setStock, sold-out flags, a crowd, and random sequences against one bucket.
import { randomUUID } from "node:crypto";
import fc from "fast-check";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConflictError, InvalidArgumentError } from "../../src/errors.js";
import { Inventory, MAX_BUCKETS, UNLIMITED } from "../../src/stock/index.js";
import { bucketTags, homeOf } from "../../src/stock/buckets.js";
import { defineScript } from "../../src/internal/scripts.js";
import { keySlot } from "../../src/internal/slot.js";
import { keyspace, randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let server: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  server = await startRedis();
  redis = server.client();
});
afterAll(async () => server?.stop());

const sku = () => `sku-${randomUUID().slice(0, 8)}`;
/** The first `count` user ids whose home is bucket `home` of `n`. */
function usersOf(home: number, n: number, count: number, tag = "u"): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) if (homeOf(`${tag}${i}`, n) === home) out.push(`${tag}${i}`);
  return out;
}
async function bucketAvailable(inv: Inventory, s: string, n: number): Promise<number[]> {
  const { buckets } = inv.bucketKeys(s, n);
  return Promise.all(buckets.map(async (b) => Number(await redis.hget(b.stock, "available"))));
}
function conserve(snap: { initial: number; available: number; held: number; confirmed: number } | null) {
  expect(snap).not.toBeNull();
  expect(snap!.available).toBeGreaterThanOrEqual(0);
  expect(snap!.available + snap!.held + snap!.confirmed).toBe(snap!.initial);
}

describe("bucket layout", () => {
  it("puts 3 buckets on the 3 slot ranges of a default 3-master cluster, and n buckets on n ranges", () => {
    const masters = [
      [0, 5460],
      [5461, 10922],
      [10923, 16383],
    ];
    for (const s of ["iphone-17", "a", "x#0/3.1", "日本"]) {
      const slots = bucketTags("fsk", s, 3).map((t) => keySlot(`{${t}}:bstock`));
      slots.forEach((slot, i) => {
        expect(slot).toBeGreaterThanOrEqual(masters[i]![0]!);
        expect(slot).toBeLessThanOrEqual(masters[i]![1]!);
      });
    }
    for (let n = 2; n <= MAX_BUCKETS; n++) {
      const slots = bucketTags("fsk", "hot", n).map((t) => keySlot(`{${t}}`));
      slots.forEach((slot, i) => {
        expect(slot).toBeGreaterThanOrEqual((16384 * i) / n);
        expect(slot).toBeLessThan((16384 * (i + 1)) / n);
      });
    }
  });

  it("keeps every key of one bucket on one slot, and no bucket key equals a one-bucket SKU's", () => {
    const inv = new Inventory(redis, { prefix: "p" });
    const { meta, buckets } = inv.bucketKeys("s", 4);
    expect(keySlot(meta)).toBe(keySlot(inv.keys("s").stock));
    for (const b of buckets) expect(new Set(Object.values(b).map(keySlot)).size).toBe(1);
    const plain = new Set(Object.values(inv.keys("s#0/4.0")));
    for (const b of buckets) for (const k of Object.values(b)) expect(plain.has(k)).toBe(false);
  });
});

describe("bad bucket counts", () => {
  it("refuses 0, negative, fractional, non-number and above MAX_BUCKETS with InvalidArgumentError, writing nothing", async () => {
    const prefix = randomPrefix();
    const inv = new Inventory(redis, { prefix, localCacheMs: 0 });
    await inv.setStock("live", 10, { buckets: 3 });
    await inv.setStock("plain", 10);
    const before = await keyspace(redis, `*${prefix}*`);
    for (const buckets of [0, -1, 1.5, MAX_BUCKETS + 1, Number.NaN, "3" as unknown as number]) {
      for (const s of ["new", "live", "plain"]) {
        await expect(inv.setStock(s, 10, { buckets })).rejects.toBeInstanceOf(InvalidArgumentError);
      }
    }
    await expect(inv.setStock("new", UNLIMITED, { buckets: 3 })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(() => inv.bucketKeys("new", 0)).toThrow(InvalidArgumentError);
    expect(await keyspace(redis, `*${prefix}*`)).toEqual(before);
  });

  it("refuses to change the count of a live SKU with ConflictError BUCKET_COUNT, writing nothing", async () => {
    const prefix = randomPrefix();
    const inv = new Inventory(redis, { prefix, localCacheMs: 0 });
    const other = new Inventory(redis, { prefix, localCacheMs: 0 }); // a process that has not met the SKU
    await inv.setStock("live", 10, { buckets: 3 });
    await inv.setStock("plain", 10);
    expect((await inv.reserve("live", { userId: "u1" })).ok).toBe(true);
    const before = await keyspace(redis, `*${prefix}*`);
    const cases: [string, number][] = [
      ["live", 2],
      ["live", 1],
      ["live", 4],
      ["plain", 3],
      ["plain", 2],
    ];
    for (const [s, buckets] of cases) {
      for (const who of [inv, other]) {
        const err = await who.setStock(s, 20, { buckets }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ConflictError);
        expect((err as ConflictError).code).toBe("BUCKET_COUNT");
      }
    }
    expect(await keyspace(redis, `*${prefix}*`)).toEqual(before);
    // Omitted: the live count is kept.
    await other.setStock("live", 12, { perUserLimit: 2 });
    expect(await other.snapshot("live")).toMatchObject({ initial: 12, available: 11, held: 1, buckets: 3 });
  });
});

describe("reserve / confirm / release across buckets", () => {
  it("keeps counters, records, events and the user's units in the user's home bucket", async () => {
    const prefix = randomPrefix();
    const inv = new Inventory(redis, { prefix, localCacheMs: 0 });
    const s = sku();
    await inv.setStock(s, 9, { buckets: 3, perUserLimit: 2, holdMs: 60_000 });
    expect(await bucketAvailable(inv, s, 3)).toEqual([3, 3, 3]);
    const [u] = usersOf(2, 3, 1);
    const r = await inv.reserve(s, { userId: u!, reservationId: "r1" });
    expect(r).toEqual({ ok: true, reservationId: "r1", remaining: 2 });
    expect(await inv.reserve(s, { userId: u!, reservationId: "r1" })).toEqual(r);
    expect(await bucketAvailable(inv, s, 3)).toEqual([3, 3, 2]);
    expect(await inv.userQuantity(s, u!)).toBe(1);
    expect(await inv.reservation(s, "r1")).toMatchObject({ userId: u, quantity: 1, state: "held" });
    expect(await inv.snapshot(s)).toMatchObject({
      initial: 9,
      available: 8,
      held: 1,
      confirmed: 0,
      holdMs: 60_000,
    });
    expect(await inv.reserve(s, { userId: u!, quantity: 2 })).toEqual({ ok: false, reason: "LIMIT_REACHED" });
    // Another process, which has never seen the SKU, finds the reservation.
    const other = new Inventory(redis, { prefix, localCacheMs: 0 });
    expect(await other.confirm(s, "r1")).toEqual({ ok: true });
    expect(await other.release(s, "r1")).toEqual({ ok: false, reason: "CONFIRMED" });
    expect(await other.confirm(s, "nope")).toEqual({ ok: false, reason: "UNKNOWN_RESERVATION" });
    const r2 = await other.reserve(s, { userId: u!, reservationId: "r2" });
    expect(r2.ok).toBe(true);
    expect(await inv.release(s, "r2")).toEqual({ ok: true });
    expect(await inv.release(s, "r2")).toEqual({ ok: true });
    expect(await inv.confirm(s, "r2")).toEqual({ ok: false, reason: "RELEASED" });
    const snap = await inv.snapshot(s);
    expect(snap).toMatchObject({ initial: 9, available: 8, held: 0, confirmed: 1, buckets: 3 });
    const events = await redis.xrange(inv.bucketKeys(s, 3).buckets[2]!.events, "-", "+");
    expect(events.map(([, f]) => f[1])).toEqual(["reserved", "confirmed", "reserved", "released"]);
    expect(events[0]![1]).toEqual(expect.arrayContaining(["sku", s, "reservationId", "r1", "userId", u]));
    await expect(inv.reserve(s, { userId: u!, reservationId: "r2", quantity: 2 })).rejects.toBeInstanceOf(
      ConflictError,
    );
  });

  it("expires holds in every bucket", async () => {
    const inv = new Inventory(redis, { prefix: randomPrefix(), localCacheMs: 0 });
    const s = sku();
    await inv.setStock(s, 30, { buckets: 3, holdMs: 1, perUserLimit: 5 });
    for (let home = 0; home < 3; home++)
      for (const u of usersOf(home, 3, 2)) await inv.reserve(s, { userId: u });
    const deadline = Date.now() + 5000;
    let expired = 0;
    while (expired < 6 && Date.now() < deadline) expired += await inv.expireHolds(s);
    expect(expired).toBe(6);
    expect(await inv.snapshot(s)).toMatchObject({ initial: 30, available: 30, held: 0 });
  });

  it("sells every unit to users of one home bucket by borrowing, then answers SOLD_OUT", async () => {
    const inv = new Inventory(redis, { prefix: randomPrefix(), localCacheMs: 0 });
    const s = sku();
    await inv.setStock(s, 31, { buckets: 4, perUserLimit: 3 });
    const users = usersOf(1, 4, 20);
    let sold = 0;
    for (const u of users) {
      const r = await inv.reserve(s, { userId: u, quantity: 2 });
      if (r.ok) sold += 2;
      else expect(r.reason).toBe("SOLD_OUT");
    }
    expect(sold).toBe(30);
    // One unit left somewhere: a quantity of 2 is refused, a quantity of 1 gets it.
    expect(await inv.reserve(s, { userId: users[0]!, quantity: 1 })).toMatchObject({ ok: true });
    expect(await bucketAvailable(inv, s, 4)).toEqual([0, 0, 0, 0]);
    expect(await inv.reserve(s, { userId: "late" })).toEqual({ ok: false, reason: "SOLD_OUT" });
    const snap = await inv.snapshot(s);
    conserve(snap);
    expect(snap).toMatchObject({ available: 0, held: 31 });
  });

  it("completes a transfer interrupted after its first step, counting its units meanwhile", async () => {
    const inv = new Inventory(redis, { prefix: randomPrefix(), localCacheMs: 0 });
    const s = sku();
    await inv.setStock(s, 6, { buckets: 3, perUserLimit: 10 });
    const { buckets } = inv.bucketKeys(s, 3);
    // A process took 2 units from bucket 0 for bucket 1 and died before crediting them.
    const take = defineScript("stock/bucket-take", (r) => Number(r));
    expect(await take.run(redis, [buckets[0]!.stock, buckets[0]!.moves], ["t-1", 1, 2])).toBe(2);
    expect(await take.run(redis, [buckets[0]!.stock, buckets[0]!.moves], ["t-1", 1, 2])).toBe(2); // a repeat
    expect(await bucketAvailable(inv, s, 3)).toEqual([0, 2, 2]);
    expect(await inv.snapshot(s)).toMatchObject({ initial: 6, available: 6 });
    const [u] = usersOf(2, 3, 1);
    let sold = 0;
    for (let i = 0; i < 8; i++) if ((await inv.reserve(s, { userId: u! })).ok) sold++;
    expect(sold).toBe(6);
    expect(await redis.hlen(buckets[0]!.moves)).toBe(0);
    conserve(await inv.snapshot(s));
  });

  it("clears a sold-out flag when a unit comes back, in any bucket", async () => {
    const prefix = randomPrefix();
    const sub = server.client();
    const inv = new Inventory(redis, { prefix, subscriber: sub });
    const s = sku();
    await inv.setStock(s, 2, { buckets: 2 });
    const a = await inv.reserve(s, { userId: usersOf(0, 2, 1)[0]!, reservationId: "a" });
    const b = await inv.reserve(s, { userId: usersOf(1, 2, 1)[0]!, reservationId: "b" });
    expect(a.ok && b.ok).toBe(true);
    expect(await inv.reserve(s, { userId: "x" })).toEqual({ ok: false, reason: "SOLD_OUT" });
    // Known in process now: no command reaches Redis.
    const deadline = Date.now() + 5000;
    while (inv.knownRefusal(s, { userId: "y" }) !== "SOLD_OUT" && Date.now() < deadline) {
      await inv.reserve(s, { userId: "y" });
      await new Promise((r) => setImmediate(r));
    }
    expect(inv.knownRefusal(s, { userId: "y" })).toBe("SOLD_OUT");
    const other = new Inventory(redis, { prefix, localCacheMs: 0 });
    expect(await other.release(s, "b")).toEqual({ ok: true });
    const until = Date.now() + 5000;
    while (inv.knownRefusal(s, { userId: "y" }) !== undefined && Date.now() < until)
      await new Promise((r) => setTimeout(r, 5));
    expect(inv.knownRefusal(s, { userId: "y" })).toBeUndefined();
    expect((await inv.reserve(s, { userId: "z" })).ok).toBe(true);
    await inv.close();
  });
});

describe("setStock on a live bucketed SKU", () => {
  it("adds and removes units, keeps reservations, refuses to go below what is committed", async () => {
    const prefix = randomPrefix();
    const inv = new Inventory(redis, { prefix, localCacheMs: 0 });
    const s = sku();
    await inv.setStock(s, 10, { buckets: 3, perUserLimit: 4 });
    for (const u of usersOf(0, 3, 2)) await inv.reserve(s, { userId: u, quantity: 3 });
    expect(await inv.snapshot(s)).toMatchObject({ initial: 10, available: 4, held: 6 });
    await inv.setStock(s, 14, { buckets: 3, perUserLimit: 4 });
    expect(await inv.snapshot(s)).toMatchObject({ initial: 14, available: 8, held: 6 });
    await inv.setStock(s, 7, { perUserLimit: 4 });
    expect(await inv.snapshot(s)).toMatchObject({ initial: 7, available: 1, held: 6 });
    const before = await keyspace(redis, `*${prefix}*`);
    const err = await inv.setStock(s, 5, { perUserLimit: 4 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as ConflictError).code).toBe("STOCK_BELOW_COMMITTED");
    expect(await inv.snapshot(s)).toMatchObject({ initial: 7, available: 1, held: 6 });
    // Only the operation records differ (an undone operation leaves its ids behind).
    const after = await keyspace(redis, `*${prefix}*`);
    expect(Object.keys(after)).toEqual(Object.keys(before));
  });

  it("completes a setStock that stopped half way before applying a new one", async () => {
    const prefix = randomPrefix();
    const inv = new Inventory(redis, { prefix, localCacheMs: 0 });
    const s = sku();
    await inv.setStock(s, 9, { buckets: 3 });
    const { meta, buckets } = inv.bucketKeys(s, 3);
    // A setStock to 15 recorded its operation and reached one bucket, then its process died.
    const metaScript = defineScript("stock/bucket-meta", (r) => r);
    const adjust = defineScript("stock/bucket-adjust", (r) => r);
    await metaScript.run(redis, [meta, inv.keys(s).stock], ["begin", 3, "op-dead", 15]);
    await adjust.run(redis, [buckets[0]!.stock], ["op-dead", 3, 2, 1, "", "", 0, "c", s, "o"]);
    await inv.setStock(s, 20, { buckets: 3 });
    expect(await inv.snapshot(s)).toMatchObject({ initial: 20, available: 20 });
    expect((await bucketAvailable(inv, s, 3)).reduce((a, b) => a + b)).toBe(20);
  });
});

describe("under a crowd", () => {
  it("2,000 concurrent reserves from 500 users over 3 buckets, two processes: exactly the stock sold, nobody over the cap", async () => {
    const prefix = randomPrefix();
    const a = new Inventory(redis, { prefix, localCacheMs: 0 });
    const b = new Inventory(server.client(), { prefix, batch: false, localCacheMs: 0 });
    const s = sku();
    await a.setStock(s, 150, { buckets: 3, perUserLimit: 2 });
    const results = await Promise.all(
      Array.from({ length: 2000 }, (_, i) =>
        (i % 2 ? a : b).reserve(s, { userId: `u${i % 500}`, reservationId: `r${i % 1600}-u${i % 500}` }),
      ),
    );
    const won = new Map<string, number>();
    for (const r of results) if (r.ok) won.set(r.reservationId, 1);
    expect(won.size).toBe(150);
    const perUser = new Map<string, number>();
    for (const rid of won.keys()) {
      const u = rid.split("-")[1]!;
      perUser.set(u, (perUser.get(u) ?? 0) + 1);
    }
    expect(Math.max(...perUser.values())).toBeLessThanOrEqual(2);
    for (const [u, q] of perUser) expect(await a.userQuantity(s, u)).toBe(q);
    expect(
      results.filter((r) => !r.ok).every((r) => !r.ok && ["SOLD_OUT", "LIMIT_REACHED"].includes(r.reason)),
    ).toBe(true);
    const snap = await a.snapshot(s);
    conserve(snap);
    expect(snap).toMatchObject({ available: 0, held: 150 });
  });
});

describe("borrowing under a crowd", () => {
  it("users of 2 of 4 buckets, quantities 1 to 3, all at once: every unit sold, none stranded in the other buckets", async () => {
    const prefix = randomPrefix();
    const a = new Inventory(redis, { prefix, localCacheMs: 0 });
    const b = new Inventory(server.client(), { prefix, localCacheMs: 0 });
    const s = sku();
    await a.setStock(s, 200, { buckets: 4, perUserLimit: 6 });
    await b.snapshot(s);
    const users = [...usersOf(0, 4, 60), ...usersOf(3, 4, 60)];
    // 500 calls of 1 to 3 units, then 200 of 1 unit: demand far above the stock, and the last units fit.
    const calls = Array.from({ length: 700 }, (_, i) => ({
      userId: users[i % users.length]!,
      quantity: i < 500 ? 1 + (i % 3) : 1,
      reservationId: `r${i}`,
    }));
    const results = await Promise.all(calls.map((c, i) => (i % 2 ? a : b).reserve(s, c)));
    let sold = 0;
    const perUser = new Map<string, number>();
    results.forEach((r, i) => {
      if (!r.ok) return;
      sold += calls[i]!.quantity;
      perUser.set(calls[i]!.userId, (perUser.get(calls[i]!.userId) ?? 0) + calls[i]!.quantity);
    });
    expect(sold).toBe(200);
    expect(Math.max(...perUser.values())).toBeLessThanOrEqual(6);
    expect(await bucketAvailable(a, s, 4)).toEqual([0, 0, 0, 0]);
    for (const k of Object.values(a.bucketKeys(s, 4).buckets)) expect(await redis.hlen(k.moves)).toBe(0);
    const snap = await a.snapshot(s);
    conserve(snap);
    expect(snap).toMatchObject({ available: 0, held: 200 });
  });
});

describe("against one bucket", () => {
  type Op =
    | { t: "reserve"; user: number; qty: number; rid: number }
    | { t: "confirm"; user: number; rid: number }
    | { t: "release"; user: number; rid: number }
    | { t: "restock"; add: number };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        t: fc.constant("reserve" as const),
        user: fc.nat(7),
        qty: fc.integer({ min: 1, max: 3 }),
        rid: fc.nat(5),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ t: fc.constant("confirm" as const), user: fc.nat(7), rid: fc.nat(5) }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ t: fc.constant("release" as const), user: fc.nat(7), rid: fc.nat(5) }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ t: fc.constant("restock" as const), add: fc.integer({ min: -3, max: 4 }) }),
    },
  );

  it("random reserve / confirm / release / restock on 1 and on N buckets give the same outcomes", async () => {
    const prefix = randomPrefix();
    const one = new Inventory(redis, { prefix: `${prefix}a`, localCacheMs: 0 });
    const many = new Inventory(redis, { prefix: `${prefix}b`, localCacheMs: 0 });
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 15 }),
        fc.integer({ min: 2, max: 5 }),
        fc.array(opArb, { maxLength: 30 }),
        async (total, n, ops) => {
          const s = sku();
          await one.setStock(s, total, { perUserLimit: 3 });
          await many.setStock(s, total, { perUserLimit: 3, buckets: n });
          let initial = total;
          const outcome = (r: unknown) =>
            r instanceof Error
              ? (r as { code?: string }).code
              : typeof r === "object" && r !== null && "remaining" in r
                ? { ...r, remaining: 0 }
                : r;
          for (const op of ops) {
            let pair: unknown[];
            if (op.t === "reserve") {
              const o = { userId: `u${op.user}`, quantity: op.qty, reservationId: `u${op.user}-r${op.rid}` };
              pair = await Promise.all([
                one.reserve(s, o).catch((e) => e),
                many.reserve(s, o).catch((e) => e),
              ]);
            } else if (op.t === "restock") {
              if (initial + op.add < 0) continue; // -1 is UNLIMITED, which buckets refuse
              initial += op.add;
              pair = await Promise.all([
                one.setStock(s, initial, { perUserLimit: 3 }).catch((e) => e),
                many.setStock(s, initial, { perUserLimit: 3 }).catch((e) => e),
              ]);
              if (pair[0] instanceof Error) initial -= op.add;
            } else {
              const rid = `u${op.user}-r${op.rid}`;
              pair =
                op.t === "confirm"
                  ? await Promise.all([one.confirm(s, rid), many.confirm(s, rid)])
                  : await Promise.all([one.release(s, rid), many.release(s, rid)]);
            }
            expect(outcome(pair[1])).toEqual(outcome(pair[0]));
            const [x, y] = await Promise.all([one.snapshot(s), many.snapshot(s)]);
            expect({ ...y, buckets: undefined }).toEqual({ ...x, buckets: undefined });
          }
          for (let u = 0; u < 8; u++)
            expect(await many.userQuantity(s, `u${u}`)).toBe(await one.userQuantity(s, `u${u}`));
        },
      ),
      { numRuns: 60 },
    );
    for (const key of await redis.keys(`*${prefix}*`)) await redis.del(key);
  }, 120_000);
});
