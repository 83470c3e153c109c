// A bucketed SKU on a local 3-master Redis Cluster: its 3 buckets on 3 masters, a crowd that sells exactly
// the stock, and the reservation script's CPU time (INFO commandstats) shared by the masters.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Cluster, Redis } from "ioredis";
import { Inventory } from "../../src/stock/index.js";
import { startCluster, type LocalCluster } from "../support/cluster.js";
import { randomPrefix } from "../support/redis.js";

let cluster: LocalCluster;
let redis: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ masters: 3 });
  redis = cluster.client();
}, 60_000);
afterAll(async () => cluster?.stop());

/** Script calls (EVALSHA and EVAL) run by one node since its last CONFIG RESETSTAT. */
async function scriptCalls(node: Redis): Promise<number> {
  const info = await node.info("commandstats");
  let calls = 0;
  for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)) calls += Number(m[1]);
  return calls;
}

describe("buckets on a 3-master Redis Cluster", () => {
  it("puts the 3 buckets of a SKU on the 3 masters", async () => {
    const inv = new Inventory(redis, { prefix: randomPrefix() });
    const shards = (await redis.cluster("SLOTS")) as unknown as [number, number, [string, number]][];
    for (const s of ["hot", "iphone-17", "x"]) {
      const owners = new Set<number>();
      for (const b of inv.bucketKeys(s, 3).buckets) {
        const slot = (await redis.cluster("KEYSLOT", b.stock)) as unknown as number;
        owners.add(shards.find(([a, z]) => slot >= a && slot <= z)![2][1]);
      }
      expect(owners.size).toBe(3);
    }
  });

  it("sells exactly the stock to a crowd, nobody over the cap, books balanced, no master runs over 45% of the script calls", async () => {
    const prefix = randomPrefix();
    const a = new Inventory(redis, { prefix, localCacheMs: 0 });
    const b = new Inventory(cluster.client(), { prefix, localCacheMs: 0 });
    const masters = redis.nodes("master");
    expect(masters.length).toBe(3);
    await a.setStock("hot", 3000, { buckets: 3, perUserLimit: 2 });
    // Each process learns that the SKU is bucketed on its first call for it: before the opening, as a server
    // warms up (otherwise the opening burst of a fresh process goes to the one-bucket keys first).
    await b.snapshot("hot");
    await Promise.all(masters.map((m) => m.config("RESETSTAT")));
    const results = await Promise.all(
      Array.from({ length: 8000 }, (_, i) =>
        (i % 2 ? a : b).reserve("hot", {
          userId: `u${i % 2000}`,
          reservationId: `u${i % 2000}-r${i % 6000}`,
        }),
      ),
    );
    const calls = await Promise.all(masters.map(scriptCalls));
    const won = new Set<string>();
    for (const r of results) if (r.ok) won.add(r.reservationId);
    expect(won.size).toBe(3000);
    const perUser = new Map<string, number>();
    for (const rid of won) {
      const u = rid.split("-")[0]!;
      perUser.set(u, (perUser.get(u) ?? 0) + 1);
    }
    expect(Math.max(...perUser.values())).toBeLessThanOrEqual(2);
    const snap = await a.snapshot("hot");
    expect(snap).toMatchObject({ initial: 3000, available: 0, held: 3000, confirmed: 0 });
    // 3,000 reservations and 5,000 refusals (limit, sold out, borrowing near the end) spread by user id.
    // Script calls, not their `usec`: on a shared test machine a preempted redis-server bills its wait to
    // the script it was running. The bench (`npm run bench -- stock`) prints the usec shares.
    const total = calls.reduce((x, y) => x + y, 0);
    expect(total).toBeGreaterThan(0);
    for (const c of calls) expect(c / total).toBeLessThanOrEqual(0.45);
    // Confirm and release find each reservation in its bucket.
    const ids = [...won];
    const confirmed = await Promise.all(ids.slice(0, 100).map((id) => b.confirm("hot", id)));
    expect(confirmed.every((c) => c.ok)).toBe(true);
    const released = await Promise.all(ids.slice(100, 150).map((id) => a.release("hot", id)));
    expect(released.every((c) => c.ok)).toBe(true);
    expect(await b.snapshot("hot")).toMatchObject({
      initial: 3000,
      available: 50,
      held: 2850,
      confirmed: 100,
    });
    const { meta, buckets } = a.bucketKeys("hot", 3);
    for (const k of [meta, ...buckets.flatMap((x) => Object.values(x))]) await redis.del(k);
  }, 60_000);
});
