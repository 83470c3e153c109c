// Inventory on a local 3-master Redis Cluster: the shared contract, unchanged.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Cluster } from "ioredis";
import { Inventory } from "../../src/stock/index.js";
import { startCluster, type LocalCluster } from "../support/cluster.js";
import { randomPrefix } from "../support/redis.js";
import { stockContract } from "./contract.js";

let cluster: LocalCluster;
let redis: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ masters: 3 });
  redis = cluster.client();
}, 60_000);
afterAll(async () => cluster?.stop());

describe("Inventory (3-master Redis Cluster)", () => {
  stockContract({
    store: () => new Inventory(redis, { prefix: randomPrefix(), localCacheMs: 0 }),
    propertyRuns: 20,
  });

  it("spreads SKUs over the masters, each SKU on one slot", async () => {
    const prefix = randomPrefix();
    const inv = new Inventory(redis, { prefix });
    const slots = new Set<number>();
    for (let i = 0; i < 12; i++) {
      const sku = `sku-${i}`;
      await inv.setStock(sku, 5);
      expect((await inv.reserve(sku, { userId: "u" })).ok).toBe(true);
      const k = inv.keys(sku);
      const keySlots = await Promise.all(
        Object.values(k).map((key) => redis.cluster("KEYSLOT", key) as Promise<number>),
      );
      expect(new Set(keySlots).size).toBe(1);
      slots.add(keySlots[0]!);
    }
    const owners = new Set<string>();
    const shards = (await redis.cluster("SLOTS")) as unknown as [number, number, [string, number]][];
    for (const slot of slots) {
      const owner = shards.find(([a, b]) => slot >= a && slot <= b);
      owners.add(String(owner?.[2][1]));
    }
    expect(owners.size).toBeGreaterThan(1);
  });
});
