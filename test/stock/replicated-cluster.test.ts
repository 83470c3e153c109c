// Replicated acknowledgement on a Redis Cluster (3 masters, one replica each): the sync script and its WAIT
// go to the SKU's master in one pipeline, so every SKU is acknowledged by its own master's replica.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis, type Cluster } from "ioredis";
import { Inventory } from "../../src/stock/index.js";
import { startCluster, type LocalCluster } from "../support/cluster.js";
import { randomPrefix } from "../support/redis.js";

let cluster: LocalCluster;
let redis: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ masters: 3, replicas: 1 });
  redis = cluster.client();
}, 120_000);
afterAll(async () => cluster?.stop());

describe("replicated acknowledgement on a Redis Cluster", () => {
  it("acknowledges on every master with one replica; two replicas asked are IN_DOUBT", async () => {
    const prefix = randomPrefix("rc");
    const inv = new Inventory(redis, { prefix, replicated: { replicas: 1, timeoutMs: 5_000 } });
    const short = new Inventory(redis, { prefix, replicated: { replicas: 2, timeoutMs: 20 } });
    const skus = Array.from({ length: 12 }, (_, i) => `sku-${i}`);
    for (const sku of skus) await inv.setStock(sku, 2);
    const results = await Promise.all(
      skus.flatMap((sku) => [
        inv.reserve(sku, { userId: "a", reservationId: `${sku}-a` }),
        inv.reserve(sku, { userId: "b", reservationId: `${sku}-b` }),
      ]),
    );
    expect(results.every((r) => r.ok)).toBe(true);
    expect(await inv.confirm("sku-0", "sku-0-a")).toEqual({ ok: true });
    expect(await inv.release("sku-1", "sku-1-b")).toEqual({ ok: true });
    // Each master has one replica: asking for two is answered IN_DOUBT (and the replay is still a replay).
    expect(await short.reserve("sku-2", { userId: "a", reservationId: "sku-2-a" })).toEqual({
      ok: false,
      reason: "IN_DOUBT",
      reservationId: "sku-2-a",
    });

    // The WAIT goes to the SKU's own master: with the replica of sku-3's master stopped, sku-3 is in doubt
    // while a SKU on another master is acknowledged (a WAIT sent to any other node would count its replica).
    const quick = new Inventory(redis, { prefix, replicated: { replicas: 1, timeoutMs: 200 } });
    type Shard = [number, number, [string, number], [string, number]];
    const shards = (await redis.cluster("SLOTS")) as unknown as Shard[];
    const shardOf = async (sku: string) => {
      const slot = (await redis.cluster("KEYSLOT", inv.keys(sku).stock)) as unknown as number;
      return shards.find(([a, b]) => slot >= a && slot <= b)!;
    };
    const target = await shardOf("sku-3");
    let other = "";
    for (const sku of skus) if ((await shardOf(sku))[2][1] !== target[2][1]) other = sku;
    await inv.setStock("sku-3", 3);
    await inv.setStock(other, 3);
    const replica = new Redis(target[3][1], target[3][0]);
    const pid = Number(/process_id:(\d+)/.exec(await replica.info("server"))![1]);
    replica.disconnect();
    process.kill(pid, "SIGSTOP");
    try {
      expect(await quick.reserve("sku-3", { userId: "c", reservationId: "sku-3-c" })).toMatchObject({
        reason: "IN_DOUBT",
      });
      expect(await quick.reserve(other, { userId: "c", reservationId: `${other}-c` })).toMatchObject({
        ok: true,
      });
    } finally {
      process.kill(pid, "SIGCONT");
    }
    await quick.close();
    for (const sku of skus) {
      const s = (await inv.snapshot(sku))!;
      expect(s.available + s.held + s.confirmed).toBe(s.initial);
      await redis.del(...Object.values(inv.keys(sku)));
    }
    await Promise.all([inv.close(), short.close()]);
  });
});
