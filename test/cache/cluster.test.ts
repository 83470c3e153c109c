// The cache module on a local 3-master Redis Cluster: a filter split over several keys stays on one slot,
// its scripts, mirror (MULTI) and rebuild work unchanged; the read-through cache's entries spread over the
// masters and breakdown protection holds across 4 cluster clients; L1 is emptied across processes by the
// messages the scripts publish on whichever master owns the id.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Cluster } from "ioredis";
import { PenetrationGuard, ReadThroughCache, RedisBloomFilter } from "../../src/cache/index.js";
import { startCluster, type LocalCluster } from "../support/cluster.js";
import { randomPrefix } from "../support/redis.js";

let cluster: LocalCluster;
let redis: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ masters: 3 });
  redis = cluster.client();
}, 60_000);
afterAll(async () => cluster?.stop());

const slotOf = (key: string) => redis.cluster("KEYSLOT", key) as Promise<number>;

describe("cache on Redis Cluster", () => {
  it("a split filter keeps all its keys on one slot; add, check, mirror and rebuild work", async () => {
    const prefix = randomPrefix();
    const opts = { capacity: 20_000, errorRate: 0.01, prefix, bitsPerKey: 2 ** 14 };
    const f = new RedisBloomFilter(redis, "catalog", opts);
    expect(f.segmentCount).toBeGreaterThan(5);
    const items = Array.from({ length: 5000 }, (_, i) => `sku-${i}`);
    await f.addMany(items);
    expect((await f.mightContainMany(items)).every(Boolean)).toBe(true);
    const { meta, pending, segments } = f.keys();
    const slots = new Set(await Promise.all([meta, pending, ...segments].map(slotOf)));
    expect(slots.size).toBe(1);

    const m = new RedisBloomFilter(cluster.client(), "catalog", { ...opts, mirror: true });
    await m.refresh();
    expect((await m.mightContainMany(items)).every(Boolean)).toBe(true);

    const r = await f.rebuild(items.slice(0, 100));
    expect(r.ok).toBe(true);
    expect(await f.mightContainMany(["sku-1", "sku-4999"])).toEqual([true, false]);
    await m.refresh();
    expect(m.mightContainLocal("sku-4999")).toBe(false);
    m.close();
  });

  it("1,000 concurrent gets of one cold key from 4 cluster clients call load once; entries spread over slots", async () => {
    const prefix = randomPrefix();
    let loads = 0;
    const load = async (id: string) => {
      loads++;
      await new Promise((r) => setTimeout(r, 100));
      return { id };
    };
    const caches = Array.from(
      { length: 4 },
      () => new ReadThroughCache<{ id: string }>({ redis: cluster.client(), prefix, ttlMs: 60_000, load }),
    );
    const values = await Promise.all(Array.from({ length: 1000 }, (_, i) => caches[i % 4]!.get("hot")));
    expect(loads).toBe(1);
    expect(values.every((v) => v?.id === "hot")).toBe(true);

    const filter = new RedisBloomFilter(redis, "ids", { capacity: 1000, errorRate: 0.01, prefix });
    const guard = new PenetrationGuard({ filter, redis, prefix });
    const guarded = new ReadThroughCache({ redis, prefix, ttlMs: 60_000, load, guard, name: "guarded" });
    const ids = Array.from({ length: 30 }, (_, i) => `p${i}`);
    expect(await guarded.prewarm(ids.map((id) => [id, { id }] as const))).toBe(30);
    expect(await guarded.get("p3")).toEqual({ id: "p3" });
    expect(await guarded.get("unknown")).toBeUndefined();
    await guarded.invalidate("p3");
    expect(await guarded.get("p3")).toEqual({ id: "p3" });
    const slots = new Set(await Promise.all(ids.map((id) => slotOf(guarded.keys(id).entry))));
    expect(slots.size).toBeGreaterThan(10);
  });

  it("L1: an invalidation by another process reaches this one's L1 from any master", async () => {
    const prefix = randomPrefix();
    const db = new Map<string, number>();
    const make = () => {
      const subscriber = cluster.client();
      const cache = new ReadThroughCache<{ v: number }>({
        redis: cluster.client(),
        prefix,
        name: "hot",
        ttlMs: 3_600_000,
        load: async (id) => ({ v: db.get(id) ?? 0 }),
        l1: { subscriber, maxStaleMs: 3_600_000 },
      });
      return { cache, subscriber };
    };
    const [a, b] = [make(), make()];
    await Promise.all([a.cache.ready(), b.cache.ready()]);
    const channel = `${prefix}:c:hot:changed`;
    const ids = Array.from({ length: 12 }, (_, i) => `id${i}`);
    const slots = new Set(await Promise.all(ids.map((id) => slotOf(a.cache.keys(id).entry))));
    expect(slots.size).toBeGreaterThan(3); // the ids live on several masters
    const messages = (n: number) =>
      new Promise<string[]>((resolve) => {
        const got: string[] = [];
        const on = (ch: string, m: string) => {
          if (ch === channel && got.push(m) === n) {
            a.subscriber.off("message", on);
            resolve(got);
          }
        };
        a.subscriber.on("message", on);
      });
    for (const id of ids) db.set(id, 1);
    let seen = messages(ids.length);
    await b.cache.prewarm(ids.map((id) => [id, { v: 1 }]));
    expect((await seen).sort()).toEqual([...ids].sort());
    for (const id of ids) expect(await a.cache.get(id)).toEqual({ v: 1 }); // into a's L1
    for (const id of ids) await redis.set(a.cache.keys(id).entry, 'v{"v":9}', "PX", 3_600_000); // no message
    for (const id of ids) expect(await a.cache.get(id)).toEqual({ v: 1 }); // answered by L1
    for (const id of ids) db.set(id, 2);
    seen = messages(ids.length);
    for (const id of ids) await b.cache.invalidate(id);
    expect((await seen).sort()).toEqual([...ids].sort());
    // Every id was dropped from a's L1, whichever master published it: a loads the new values.
    for (const id of ids) expect(await a.cache.get(id)).toEqual({ v: 2 });
    await Promise.all([a.cache.close(), b.cache.close()]);
  });
});
