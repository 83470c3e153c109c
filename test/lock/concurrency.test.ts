// Many clients at once: mutual exclusion with exact invariants, and how fast a waiter gets a released lock.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { SpinLock, type LockHandle } from "../../src/lock/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let admin: Redis;
beforeAll(async () => {
  srv = await startRedis();
  admin = srv.client();
});
afterAll(async () => srv?.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Acquirer {
  acquire(resource: string): Promise<Pick<LockHandle, "fence" | "release">>;
}

/**
 * `clients` × `rounds` acquisitions over `resources`; each critical section records entry and exit (one
 * process, so JavaScript's event order is a total order) and does a read-modify-write on Redis that a
 * second occupant would corrupt.
 */
async function crowd(lockers: Acquirer[], rounds: number, resources: number, prefix: string) {
  const occupant = new Map<string, number>();
  const lastFence = new Map<string, number>();
  let overlaps = 0;
  let fenceRegressions = 0;
  await Promise.all(
    lockers.map(async (locker, client) => {
      for (let i = 0; i < rounds; i++) {
        const resource = `res-${(client * 7 + i * 3 + (i % 5)) % resources}`;
        const handle = await locker.acquire(resource);
        if (occupant.has(resource)) overlaps++;
        occupant.set(resource, client);
        if (handle.fence <= (lastFence.get(resource) ?? 0)) fenceRegressions++;
        lastFence.set(resource, handle.fence);
        const counter = `{${prefix}:${resource}}:count`;
        const n = Number(await admin.get(counter));
        if (i % 4 === 0) await sleep(1);
        await admin.set(counter, n + 1);
        if (occupant.get(resource) !== client) overlaps++;
        occupant.delete(resource);
        await handle.release();
      }
    }),
  );
  let counted = 0;
  for (let r = 0; r < resources; r++) counted += Number(await admin.get(`{${prefix}:res-${r}}:count`));
  return { overlaps, fenceRegressions, counted };
}

describe("SpinLock under contention", () => {
  it("8 clients × 2,000 acquisitions over 10 resources: 0 overlaps, fences increase, no lost update", async () => {
    const prefix = randomPrefix();
    const lockers = Array.from(
      { length: 8 },
      // separate connections and instances: only Redis can keep them apart; half wake by pub/sub
      (_, i) =>
        new SpinLock(srv.client(), {
          prefix,
          ttlMs: 10_000,
          retryDelayMs: 20,
          subscriber: i % 2 === 0 ? srv.client() : undefined,
        }),
    );
    const r = await crowd(lockers, 2_000, 10, prefix);
    expect(r).toEqual({ overlaps: 0, fenceRegressions: 0, counted: 16_000 });
    let fences = 0;
    for (let i = 0; i < 10; i++) fences += Number(await admin.get(lockers[0]!.keys(`res-${i}`).fence));
    expect(fences).toBe(16_000);
  }, 120_000);

  it("the detector catches a lock that does not exclude (control)", async () => {
    const prefix = randomPrefix();
    let fence = 0;
    const broken: Acquirer = {
      acquire: async () => ({ fence: ++fence, release: async () => true }),
    };
    const r = await crowd([broken, broken, broken, broken], 50, 2, prefix);
    expect(r.overlaps).toBeGreaterThan(0);
    expect(r.counted).toBeLessThan(200);
  });
});

describe("hand-off after a release", () => {
  const subscribed = new Set<SpinLock>();
  /** Median ms from the start of `release()` to the waiter holding the lock, over `n` trials. */
  async function handOff(holder: SpinLock, waiter: SpinLock, n: number): Promise<number[]> {
    const times: number[] = [];
    const flag = holder.keys("r").waiters;
    for (let i = 0; i < n; i++) {
      const h = await holder.acquire("r");
      await admin.del(flag);
      const waiting = waiter.acquire("r");
      await sleep(40 + (i % 3) * 7); // the waiter has failed and is pausing
      // wait until a subscribed waiter has flagged the lock (its attempt after the acknowledgement)
      for (let w = 0; w < 100 && subscribed.has(waiter) && (await admin.exists(flag)) === 0; w++)
        await sleep(10);
      const t0 = performance.now();
      await h.release();
      const next = await waiting;
      times.push(performance.now() - t0);
      await next.release();
    }
    return times;
  }

  it("a waiter in another process (pub/sub subscriber) gets in well under retryDelayMs", async () => {
    const retryDelayMs = 100;
    const prefix = randomPrefix();
    const holder = new SpinLock(srv.client(), { prefix, retryDelayMs });
    const waiter = new SpinLock(srv.client(), { prefix, retryDelayMs, subscriber: srv.client() });
    subscribed.add(waiter);
    const spinner = new SpinLock(srv.client(), { prefix, retryDelayMs });
    const woken = median(await handOff(holder, waiter, 31));
    const spun = median(await handOff(holder, spinner, 15));
    console.info(
      `hand-off median, retryDelayMs ${retryDelayMs}: ${woken.toFixed(2)} ms with a subscriber, ` +
        `${spun.toFixed(2)} ms spinning`,
    );
    expect(woken).toBeLessThan(retryDelayMs / 5);
    expect(spun).toBeGreaterThan(woken);
  }, 60_000);

  it("the flag makes releases publish only while someone waits", async () => {
    const prefix = randomPrefix();
    const lock = new SpinLock(srv.client(), { prefix, subscriber: srv.client() });
    const listener = srv.client();
    let messages = 0;
    await listener.subscribe(lock.keys("r").channel);
    listener.on("message", () => messages++);
    for (let i = 0; i < 5; i++) await (await lock.acquire("r")).release();
    await sleep(100);
    expect(messages).toBe(0);
    expect(await admin.exists(lock.keys("r").waiters)).toBe(0);
    const h = await lock.acquire("r");
    const other = new SpinLock(srv.client(), { prefix, subscriber: srv.client() });
    const waiting = other.acquire("r");
    // the waiter fails once, subscribes, and on the acknowledgement attempts again with the flag
    for (let i = 0; i < 200 && (await admin.exists(lock.keys("r").waiters)) === 0; i++) await sleep(10);
    expect(await admin.exists(lock.keys("r").waiters)).toBe(1);
    await h.release(); // publishes: a waiter is registered
    await (await waiting).release(); // publishes too: the flag outlives its waiter by up to waitFlagMs
    for (let i = 0; i < 100 && messages < 2; i++) await sleep(10);
    expect(messages).toBe(2);
    await sleep(1_000); // max(1000, 4 × retryDelayMs): the flag has expired
    expect(await admin.exists(lock.keys("r").waiters)).toBe(0);
    await (await lock.acquire("r")).release();
    await sleep(100);
    expect(messages).toBe(2);
  });
});
