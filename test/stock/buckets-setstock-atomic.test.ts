// setStock on a bucketed SKU is all or nothing (found by review-a): a refused decrease changes no setting, and
// concurrent first calls (one with buckets, one without) never leave both layouts (lua/stock/set-stock.lua
// refuses when the SKU's bucketed record exists, in the same step as its write).
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConflictError } from "../../src/errors.js";
import { Inventory } from "../../src/stock/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let server: PrivateRedis;
let redis: Redis;
let other: Redis;
beforeAll(async () => {
  server = await startRedis();
  redis = server.client();
  other = server.client();
});
afterAll(async () => server?.stop());

const sku = () => `sku-${randomUUID().slice(0, 8)}`;

describe("a refused setStock on a bucketed SKU", () => {
  it("STOCK_BELOW_COMMITTED leaves the settings (perUserLimit, endsAt) as they were", async () => {
    const inv = new Inventory(redis, { prefix: randomPrefix("ra"), localCacheMs: 0 });
    const s = sku();
    await inv.setStock(s, 9, { buckets: 3, perUserLimit: 1 });
    for (let i = 0; i < 8; i++) {
      const r = await inv.reserve(s, { userId: `u${i}`, reservationId: `r${i}` });
      expect(r.ok).toBe(true);
    }
    const before = await inv.snapshot(s);
    // 8 units held: a total of 5 is refused, and must change nothing.
    await expect(
      inv.setStock(s, 5, { buckets: 3, perUserLimit: 5, endsAt: Date.now() - 60_000 }),
    ).rejects.toBeInstanceOf(ConflictError);
    const after = await inv.snapshot(s);
    expect(after).toEqual(before);
    // The sale is still open to a new user.
    const r = await inv.reserve(s, { userId: "late", reservationId: "late" });
    expect(r).toMatchObject({ ok: true });
  });

  it("the same refusal on a one-bucket SKU changes nothing (for comparison: passes)", async () => {
    const inv = new Inventory(redis, { prefix: randomPrefix("ra"), localCacheMs: 0 });
    const s = sku();
    await inv.setStock(s, 9, { perUserLimit: 1 });
    for (let i = 0; i < 8; i++) await inv.reserve(s, { userId: `u${i}`, reservationId: `r${i}` });
    const before = await inv.snapshot(s);
    await expect(inv.setStock(s, 5, { perUserLimit: 5, endsAt: Date.now() - 60_000 })).rejects.toBeInstanceOf(
      ConflictError,
    );
    expect(await inv.snapshot(s)).toEqual(before);
  });
});

describe("concurrent first setStock, one-bucket and bucketed", () => {
  it("never leaves a SKU both one-bucket and bucketed (which sells its stock twice)", async () => {
    const prefix = randomPrefix("ra");
    let both = 0;
    let sold = 0;
    let stock = 0;
    for (let trial = 0; trial < 300 && both === 0; trial++) {
      // Two processes (two connections) set the same new SKU at once, one with buckets.
      const a = new Inventory(redis, { prefix, localCacheMs: 0 });
      const b = new Inventory(other, { prefix, localCacheMs: 0 });
      const s = sku();
      const calls =
        trial % 2 === 0
          ? [b.setStock(s, 10, { buckets: 3 }), a.setStock(s, 10)]
          : [a.setStock(s, 10), b.setStock(s, 10, { buckets: 3 })];
      await Promise.allSettled(calls);
      const plain = await redis.exists(a.keys(s).stock);
      const meta = await redis.exists(a.bucketKeys(s, 3).meta);
      if (plain === 1 && meta === 1) {
        both++;
        stock = 10;
        // 30 users buy a 10-unit SKU.
        const c = new Inventory(redis, { prefix, localCacheMs: 0 });
        // c meets the one-bucket hash first; b (which made the buckets) sells from the buckets.
        for (let i = 0; i < 15; i++) {
          if ((await c.reserve(s, { userId: `c${i}`, reservationId: `c${i}` })).ok) sold++;
          if ((await b.reserve(s, { userId: `b${i}`, reservationId: `b${i}` })).ok) sold++;
        }
        await c.close();
      }
      await Promise.all([a.close(), b.close()]);
    }
    expect({ both, oversold: Math.max(0, sold - stock) }).toEqual({ both: 0, oversold: 0 });
  });
});
