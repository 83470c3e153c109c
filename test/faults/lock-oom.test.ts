// SpinLock on a private redis-server whose memory is full (`maxmemory` with `noeviction`): an acquire that
// needs a new fence fails with a typed error that says OOM (the server's error kept as its cause) and writes
// nothing, while release and extend (which free memory or change none) keep working, even after the script
// cache was flushed (the fallback EVAL is not refused either).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { RedisCommandError } from "../../src/errors.js";
import { LockTimeoutError, SpinLock } from "../../src/lock/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis(["--maxmemory-policy", "noeviction"]);
  redis = srv.client();
});
afterAll(async () => srv?.stop());

/**
 * Writes 2 MB of values, then sets `maxmemory` 1 MB below what the server uses: every write that may grow
 * memory is refused with OOM, with a margin that the server's own buffer housekeeping cannot undo. Returns
 * the keys written (deleting them brings the server back under the limit).
 */
async function fillMemory(client: Redis, prefix: string): Promise<string[]> {
  const keys = Array.from({ length: 128 }, (_, i) => `${prefix}:fill:${i}`);
  const value = "x".repeat(16 * 1024);
  for (const key of keys) await client.set(key, value);
  const used = Number(/used_memory:(\d+)/.exec(await client.info("memory"))![1]);
  await client.config("SET", "maxmemory", String(used - 1024 * 1024));
  await expect(client.set(`${prefix}:probe`, "1")).rejects.toThrow(/^OOM /);
  return keys;
}

describe("SpinLock under OOM (maxmemory + noeviction)", () => {
  it("refuses a new grant with an error that says OOM, and still releases and extends", async () => {
    const prefix = randomPrefix("oom");
    const lock = new SpinLock(redis, { prefix, ttlMs: 30_000, acquireTimeoutMs: 0 });
    const held = await lock.acquire("held"); // taken before memory is full
    const used = await lock.acquire("used");
    expect(await used.release()).toBe(true); // its fence counter exists (1)
    const filled = await fillMemory(redis, prefix);

    for (const resource of ["fresh", "used"]) {
      const err = await lock.tryAcquire(resource).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RedisCommandError);
      expect((err as Error).message).toMatch(/OOM/);
      expect((err as Error).message).toContain(lock.keys(resource).fence);
      expect((err as Error).message).not.toMatch(/not a count/);
      const cause = (err as Error).cause;
      expect(cause).toBeInstanceOf(Error);
      expect((cause as Error).message).toMatch(/^OOM /);
      // Nothing written: no lock, the counter unchanged.
      expect(await redis.exists(lock.keys(resource).lock)).toBe(0);
    }
    expect(await redis.get(lock.keys("fresh").fence)).toBeNull();
    expect(await redis.get(lock.keys("used").fence)).toBe("1");
    // acquire with a single attempt rejects with the same typed error (not a timeout, not a corrupt fence).
    await expect(lock.acquire("fresh")).rejects.toThrow(/OOM/);

    // A held lock needs no write to refuse a second owner: the answer is still "held".
    expect(await lock.tryAcquire("held")).toBeNull();
    // A waiter's flag is best effort: under OOM it cannot be set, and the waiter still times out cleanly.
    const waiting = new SpinLock(redis, { prefix, acquireTimeoutMs: 200, retryDelayMs: 20 });
    await expect(waiting.acquire("held")).rejects.toBeInstanceOf(LockTimeoutError);

    // Extend and release change or free memory: both work, also through EVAL after a flushed script cache.
    expect(await held.extend(20_000)).toBe(true);
    await redis.script("FLUSH");
    expect(await held.release()).toBe(true);
    expect(await redis.exists(lock.keys("held").lock)).toBe(0);

    // Once memory is freed, grants come back with the next fences.
    await redis.del(...filled);
    const again = await lock.tryAcquire("used");
    expect(again?.fence).toBe(2);
    await again!.release();
    await redis.del(...Object.values(lock.keys("held")), ...Object.values(lock.keys("used")));
    await redis.del(...Object.values(lock.keys("fresh")));
  });
});
