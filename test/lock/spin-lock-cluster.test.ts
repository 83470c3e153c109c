// SpinLock on a local 3-master Redis Cluster: one slot per resource, resources spread over the masters,
// exclusion, fencing, using, and release wake-ups through the Cluster's own subscriber connection.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Cluster } from "ioredis";
import { SpinLock } from "../../src/lock/index.js";
import { startCluster, type LocalCluster } from "../support/cluster.js";
import { randomPrefix } from "../support/redis.js";

let cluster: LocalCluster;
let redis: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ masters: 3 });
  redis = cluster.client();
}, 60_000);
afterAll(async () => cluster?.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("SpinLock (3-master Redis Cluster)", () => {
  it("keeps each resource's keys on one slot and spreads resources over the masters", async () => {
    const lock = new SpinLock(redis, { prefix: randomPrefix() });
    const slots = new Set<number>();
    for (let i = 0; i < 12; i++) {
      const resource = `order:${i}`;
      const h = await lock.acquire(resource);
      expect(h.fence).toBe(1);
      expect(await lock.tryAcquire(resource)).toBeNull();
      expect(await h.extend()).toBe(true);
      expect(await h.release()).toBe(true);
      const { lock: l, fence, waiters, channel } = lock.keys(resource);
      const keySlots = await Promise.all(
        [l, fence, waiters, channel].map((key) => redis.cluster("KEYSLOT", key) as Promise<number>),
      );
      expect(new Set(keySlots).size).toBe(1);
      slots.add(keySlots[0]!);
    }
    const shards = (await redis.cluster("SLOTS")) as unknown as [number, number, [string, number]][];
    const owners = new Set(
      [...slots].map((slot) => String(shards.find(([a, b]) => slot >= a && slot <= b)?.[2][1])),
    );
    expect(owners.size).toBeGreaterThan(1);
  });

  it("excludes across clients and keeps fences increasing", async () => {
    const prefix = randomPrefix();
    const lockers = Array.from(
      { length: 4 },
      () => new SpinLock(cluster.client(), { prefix, retryDelayMs: 10 }),
    );
    const occupant = new Map<string, number>();
    const last = new Map<string, number>();
    let overlaps = 0;
    let regressions = 0;
    await Promise.all(
      lockers.map(async (lock, c) => {
        for (let i = 0; i < 300; i++) {
          const resource = `r${(i + c) % 6}`;
          await lock.using(resource, async (_signal, { fence }) => {
            if (occupant.has(resource)) overlaps++;
            occupant.set(resource, c);
            if (fence <= (last.get(resource) ?? 0)) regressions++;
            last.set(resource, fence);
            await redis.incr(`{${prefix}:${resource}}:n`);
            occupant.delete(resource);
          });
        }
      }),
    );
    expect({ overlaps, regressions }).toEqual({ overlaps: 0, regressions: 0 });
    let total = 0;
    for (let r = 0; r < 6; r++) total += Number(await redis.get(lockers[0]!.keys(`r${r}`).fence));
    expect(total).toBe(1_200);
  }, 60_000);

  it("wakes a waiter on another client by pub/sub (a Cluster may be its own subscriber)", async () => {
    const prefix = randomPrefix();
    const retryDelayMs = 500;
    const holder = new SpinLock(cluster.client(), { prefix, retryDelayMs });
    const other = cluster.client();
    const waiter = new SpinLock(other, { prefix, retryDelayMs, subscriber: other });
    const times: number[] = [];
    for (let i = 0; i < 9; i++) {
      const h = await holder.acquire(`res-${i}`);
      const waiting = waiter.acquire(`res-${i}`);
      await sleep(80);
      const flag = waiter.keys(`res-${i}`).waiters; // flagged once its subscription is acknowledged
      for (let w = 0; w < 100 && (await redis.exists(flag)) === 0; w++) await sleep(10);
      const t0 = performance.now();
      await h.release();
      const next = await waiting;
      times.push(performance.now() - t0);
      expect(next.fence).toBe(2);
      await next.release();
    }
    const median = [...times].sort((a, b) => a - b)[4]!;
    expect(median).toBeLessThan(retryDelayMs / 5);
  }, 60_000);
});
