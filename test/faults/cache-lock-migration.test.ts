// A cache miss whose double-check (MGET of the entry and its generation key, both missing) lands on a slot
// being migrated: the read now waits the migration out (untilServed, up to 10 s), and it does so while the
// loader lock is held but before its keep-alive starts. A migration open longer than the lock's TTL (5 s by
// default) lets the lock expire under the waiting loader: another process takes it and the source is
// loaded twice, the stampede the lock exists to prevent.
import type { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReadThroughCache } from "../../src/cache/index.js";
import { SpinLock } from "../../src/lock/index.js";
import { keySlot } from "../../src/internal/slot.js";
import { startCluster, type LocalCluster } from "../support/cluster.js";
import { randomPrefix } from "../support/redis.js";

let cluster: LocalCluster;
let a: Cluster;
let b: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ masters: 3 });
  // Two processes, each with its own client and its own cache instance (ioredis's defaults).
  a = cluster.client({ redisOptions: {} });
  b = cluster.client({ redisOptions: {} });
}, 120_000);
afterAll(async () => cluster?.stop());

describe("cache loader lock during a slot migration", () => {
  it("loads once across processes when the double-check waits out a migration longer than the lock TTL", async () => {
    const prefix = randomPrefix("clm");
    const id = "item-1";
    let loads = 0;
    const make = (redis: Cluster) =>
      new ReadThroughCache<{ id: string }>({
        redis,
        prefix,
        name: "products",
        ttlMs: 60_000,
        // lockTtlMs, waitTimeoutMs, pollIntervalMs: the defaults (5 s, 10 s, 20 ms).
        load: async (x) => {
          loads++;
          await new Promise((r) => setTimeout(r, 1_000)); // a database query of a busy source
          return { id: x };
        },
      });
    const cacheA = make(a);
    const cacheB = make(b);
    const keys = cacheA.keys(id);
    const slot = keySlot(keys.entry);
    const lockKey = new SpinLock(a, { prefix }).keys(keys.lockResource).lock;
    expect(keySlot(lockKey)).not.toBe(slot); // only the entry's slot migrates

    // Open the entry's slot (IMPORTING / MIGRATING) and keep it open until `close` resolves.
    let close!: () => void;
    const closed = new Promise<void>((r) => (close = r));
    let opened!: () => void;
    const isOpen = new Promise<void>((r) => (opened = r));
    const from = await cluster.ownerOf(slot);
    const to = cluster.ports.find((p) => p !== from)!;
    const migration = cluster.migrateSlot(slot, to, {
      between: async (batch) => {
        if (batch === 0) {
          opened();
          await closed;
        }
      },
    });
    await isOpen;

    try {
      // Process A misses, takes the loader lock, and its double-check waits for the slot.
      let aDone = false;
      const getA = cacheA.get(id).finally(() => (aDone = true));
      const started = Date.now();
      while ((await a.exists(lockKey)) === 0 && Date.now() - started < 5_000) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(await a.exists(lockKey)).toBe(1);
      // Watch A's lock while A is still waiting: it must not expire under it (8 s > the 5 s TTL).
      let lockLost = false;
      while (Date.now() - started < 8_000) {
        if ((await a.exists(lockKey)) === 0) {
          lockLost = true;
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(aDone).toBe(false); // A is still in its double-check
      // Process B misses now: with A's lock gone it takes the lock and loads as well.
      const getB = cacheB.get(id);
      // With A's lock gone, B takes it (its own double-check then waits too); with A's held, B polls.
      const bStarted = Date.now();
      while (lockLost && (await a.exists(lockKey)) === 0 && Date.now() - bStarted < 5_000) {
        await new Promise((r) => setTimeout(r, 20));
      }
      close();
      await migration;
      expect(await getA).toEqual({ id });
      expect(await getB).toEqual({ id });
      expect({ lockLost, loads }).toEqual({ lockLost: false, loads: 1 });
    } finally {
      close();
      await migration.catch(() => undefined);
    }
  }, 120_000);
});
