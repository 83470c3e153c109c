// The clean-up of a timed-out SpinLock acquire must never remove the lock that a later, successful acquire of the same process (same client)
// holds, nor a lock another owner holds.
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { RedisUnavailableError } from "../../src/errors.js";
import { SpinLock } from "../../src/lock/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let admin: Redis;
beforeAll(async () => {
  srv = await startRedis();
  admin = srv.client();
});
afterAll(async () => srv?.stop());

describe("review-b: a timed-out acquire's clean-up and the locks acquired after it", () => {
  it("leaves the later holder's lock (same process) and another owner's lock in place", async () => {
    const redis = srv.client({ commandTimeout: 200, maxRetriesPerRequest: 0 });
    if (redis.status !== "ready") await once(redis, "ready");
    const prefix = randomPrefix("lc");
    const lock = new SpinLock(redis, { prefix, ttlMs: 60_000, acquireTimeoutMs: 8_000, retryDelayMs: 20 });
    const other = new SpinLock(admin, { prefix, ttlMs: 60_000 });
    await admin.client("PAUSE", 800, "ALL");
    const err = await lock.tryAcquire("r").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisUnavailableError);
    // Once Redis answers again (the admin connection has no command timeout), while the clean-up retries:
    // the same process waits for the same resource and gets it.
    await admin.ping();
    const later = await lock.acquire("r");
    const keys = lock.keys("r");
    // Let every clean-up retry run out (they stop within the TTL, retrying at most every second; here they
    // find the release done on their first answer): poll 2 s for the lock to change hands.
    const deadline = Date.now() + 2_000;
    while (Date.now() < deadline) {
      expect(await admin.get(keys.lock)).toBe(later.token);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await later.extend()).toBe(true);
    expect(await later.release()).toBe(true);
    // Another owner's lock, with a timed-out attempt of ours queued behind it.
    const held = await other.tryAcquire("s");
    expect(held).not.toBeNull();
    await admin.client("PAUSE", 500, "ALL");
    expect(await lock.tryAcquire("s").catch((e: unknown) => e)).toBeInstanceOf(RedisUnavailableError);
    await admin.ping();
    const until = Date.now() + 1_500;
    while (Date.now() < until) {
      expect(await admin.get(lock.keys("s").lock)).toBe(held!.token);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await held!.release()).toBe(true);
    await admin.del(...Object.values(keys), ...Object.values(lock.keys("s")));
    redis.disconnect();
  });
});
