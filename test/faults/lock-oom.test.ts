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
  srv = await startRedis(["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]);
  redis = srv.client();
});
afterAll(async () => srv?.stop());

/**
 * Writes values until the server refuses them with OOM: 16 KB ones, then 512-byte and 8-byte ones (a refused
 * big write frees its own query buffer, which can bring the server back under the limit for small ones).
 */
async function fillMemory(client: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for (const size of [16 * 1024, 512, 8]) {
    const value = "x".repeat(size);
    // Bounded: 4 MB needs about 256 16 KB values; 20,000 writes of one size means no OOM came.
    let refused = false;
    for (let i = 0; i < 20_000 && !refused; i++) {
      const key = `${prefix}:fill:${size}:${i}`;
      try {
        await client.set(key, value);
        keys.push(key);
      } catch (err) {
        expect(String(err)).toMatch(/OOM/);
        refused = true;
      }
    }
    if (!refused) throw new Error("the server never refused a write: maxmemory is not in effect");
  }
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
    for (let i = 0; i < filled.length; i += 100) await redis.del(...filled.slice(i, i + 100));
    const again = await lock.tryAcquire("used");
    expect(again?.fence).toBe(2);
    await again!.release();
    await redis.del(...Object.values(lock.keys("held")), ...Object.values(lock.keys("used")));
    await redis.del(...Object.values(lock.keys("fresh")));
  });
});
