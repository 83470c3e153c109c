// The documented contract of a bucketed SKU's events, reserve's `remaining` and expireHolds' `limit` (found by
// review-a): events go to one stream per bucket (docs/orders.md), `remaining` is the home bucket's units
// (ReserveResult, docs/stock.md Buckets), and `limit` bounds the whole call.
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Inventory } from "../../src/stock/index.js";
import { homeOf } from "../../src/stock/buckets.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let server: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  server = await startRedis();
  redis = server.client();
});
afterAll(async () => server?.stop());

const sku = () => `sku-${randomUUID().slice(0, 8)}`;

describe("the orders pipeline and bucketed SKUs", () => {
  // review-a expected the event on keys(sku).events; docs/orders.md says a bucketed SKU's events are one stream
  // per bucket (bucketKeys(sku, N).buckets.map((b) => b.events)), which the consumer must read all of.
  it("a reservation of a bucketed SKU appears on exactly one of the bucket streams docs/orders.md consumes", async () => {
    const inv = new Inventory(redis, { prefix: randomPrefix("ra"), localCacheMs: 0 });
    const s = sku();
    await inv.setStock(s, 10, { buckets: 3 });
    const r = await inv.reserve(s, { userId: "u1", reservationId: "r1" });
    expect(r.ok).toBe(true);
    expect((await inv.reservation(s, "r1"))?.state).toBe("held");
    const streams = inv.bucketKeys(s, 3).buckets.map((b) => b.events);
    const entries = (await Promise.all(streams.map((k) => redis.xrange(k, "-", "+")))).flat();
    expect(entries).toHaveLength(1);
    const fields = entries[0]![1];
    expect(fields).toEqual(expect.arrayContaining(["r1", "u1"]));
    expect(await redis.xlen(inv.keys(s).events)).toBe(0);
    // eventStreams lists the same streams (and the one stream of a one-bucket SKU).
    expect(await inv.eventStreams(s)).toEqual(streams);
    const plain = sku();
    await inv.setStock(plain, 1);
    expect(await inv.eventStreams(plain)).toEqual([inv.keys(plain).events]);
    await redis.del(...streams);
  });
});

describe("reserve's remaining on a bucketed SKU", () => {
  // review-a expected the SKU's total (2); the documented contract (ReserveResult, docs/stock.md Buckets) is the
  // home bucket's units right after the reservation: the SKU's total would cost a read of every bucket.
  it("is the home bucket's units left right after the reservation, a lower bound of the SKU's", async () => {
    const inv = new Inventory(redis, { prefix: randomPrefix("ra"), localCacheMs: 0 });
    const s = sku();
    await inv.setStock(s, 3, { buckets: 3 });
    const r = await inv.reserve(s, { userId: "u1", reservationId: "r1" });
    const home = inv.bucketKeys(s, 3).buckets[homeOf("u1", 3)]!;
    const inHome = Number(await redis.hget(home.stock, "available"));
    const snap = await inv.snapshot(s);
    expect({ remaining: r.ok ? r.remaining : null, available: snap?.available }).toEqual({
      remaining: inHome,
      available: 2,
    });
    expect(inHome).toBeLessThanOrEqual(2);
  });
});

describe("expireHolds' limit on a bucketed SKU", () => {
  it("releases at most `limit` holds per call (ExpireOptions.limit: 'the most holds released by one call')", async () => {
    const inv = new Inventory(redis, { prefix: randomPrefix("ra"), localCacheMs: 0 });
    const s = sku();
    await inv.setStock(s, 30, { buckets: 3, holdMs: 1 });
    for (let i = 0; i < 30; i++) await inv.reserve(s, { userId: `u${i}`, reservationId: `r${i}` });
    // Poll (with a deadline) until Redis time is past the holds: a control read of one bucket's holds.
    const { buckets } = inv.bucketKeys(s, 3);
    const deadline = Date.now() + 5_000;
    for (;;) {
      const [sec, usec] = (await redis.time()).map(Number) as [number, number];
      const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
      const due = await Promise.all(buckets.map((b) => redis.zcount(b.holds, "-inf", now)));
      if (due.every((d) => d > 0) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(await inv.expireHolds(s, { limit: 1 })).toBe(1);
    // The limit bounds the whole call, whatever the share of each bucket; the rest goes on the next calls.
    expect(await inv.expireHolds(s, { limit: 10 })).toBe(10);
    expect(await inv.expireHolds(s, { limit: 2 })).toBe(2);
    expect(await inv.expireHolds(s, { limit: 100 })).toBe(17);
    expect(await inv.snapshot(s)).toMatchObject({ available: 30, held: 0 });
  });
});
