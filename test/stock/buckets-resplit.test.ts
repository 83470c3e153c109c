// Found by review-a: a process that met a bucketed SKU keeps its bucket count for ever (Buckets.infos), so after the
// documented re-split ("delete its keys and set it again") its confirm/release/expireHolds/snapshot go to keys
// that no longer exist.
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Inventory } from "../../src/stock/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let server: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  server = await startRedis();
  redis = server.client();
});
afterAll(async () => server?.stop());

async function deleteBucketed(inv: Inventory, sku: string, n: number): Promise<void> {
  const { meta, buckets } = inv.bucketKeys(sku, n);
  await redis.del(meta, ...buckets.flatMap((b) => Object.values(b)));
}

describe("re-split of a bucketed SKU seen by another process", () => {
  it("a payment process that knew the 3-bucket SKU confirms a reservation of the 2-bucket SKU", async () => {
    const prefix = randomPrefix("rs");
    const payments = new Inventory(redis, { prefix, localCacheMs: 0 });
    const admin = new Inventory(redis, { prefix, localCacheMs: 0 });
    const s = `sku-${randomUUID().slice(0, 8)}`;
    await admin.setStock(s, 10, { buckets: 3 });
    expect(await payments.snapshot(s)).toMatchObject({ buckets: 3 }); // the payment process meets it
    await deleteBucketed(admin, s, 3);
    await admin.setStock(s, 10, { buckets: 2 });
    const r = await admin.reserve(s, { userId: "u1", reservationId: "r1" });
    expect(r.ok).toBe(true);
    expect.soft(await payments.snapshot(s)).toMatchObject({ initial: 10, held: 1, buckets: 2 });
    expect.soft(await payments.confirm(s, "r1")).toEqual({ ok: true });
  });

  it("a sweeper process that knew the bucketed SKU expires holds of the SKU set again as one bucket", async () => {
    const prefix = randomPrefix("rs");
    const sweeper = new Inventory(redis, { prefix, localCacheMs: 0 });
    const admin = new Inventory(redis, { prefix, localCacheMs: 0 });
    const s = `sku-${randomUUID().slice(0, 8)}`;
    await admin.setStock(s, 10, { buckets: 3 });
    expect(await sweeper.expireHolds(s)).toBe(0); // the sweeper meets it
    await deleteBucketed(admin, s, 3);
    await admin.setStock(s, 10, { holdMs: 1 });
    const shop = new Inventory(redis, { prefix, localCacheMs: 0 });
    expect((await shop.reserve(s, { userId: "u1", reservationId: "r1" })).ok).toBe(true);
    // Wait (deadline-bound poll) until Redis time passes the 1 ms hold.
    const deadline = Date.now() + 2_000;
    let expired = 0;
    while (expired === 0 && Date.now() < deadline) {
      expired = await sweeper.expireHolds(s);
      if (expired === 0) await new Promise((r) => setTimeout(r, 20));
    }
    // Control: a process that never met the bucketed SKU expires it.
    const fresh = new Inventory(redis, { prefix, localCacheMs: 0 });
    const byFresh = expired === 0 ? await fresh.expireHolds(s) : 1;
    expect({ bySweeper: expired, byFresh }).toEqual({ bySweeper: 1, byFresh: 1 });
  });

  it("the process that deleted and set the SKU again (one bucket) can reserve on it at once", async () => {
    const prefix = randomPrefix("rs");
    const admin = new Inventory(redis, { prefix, localCacheMs: 0 });
    const s = `sku-${randomUUID().slice(0, 8)}`;
    await admin.setStock(s, 10, { buckets: 3 });
    await deleteBucketed(admin, s, 3);
    await admin.setStock(s, 10);
    expect(await admin.reserve(s, { userId: "u1", reservationId: "r1" })).toMatchObject({ ok: true });
  });
});
