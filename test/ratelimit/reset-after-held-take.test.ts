// Review: TokenBucket.reset after a take held by maxInFlight (engine MAX_IN_FLIGHT = 1).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { TokenBucket } from "../../src/ratelimit/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());

/** Keeps Redis busy for a while (a script on the same connection: replies after it wait). */
const busy = (client: Redis) =>
  client.eval("local i = 0 while i < 20000000 do i = i + 1 end return 1", 0) as Promise<unknown>;

describe("TokenBucket.reset after a take issued before it", () => {
  it("lands after the take even when the take is held behind another take in flight", async () => {
    const b = new TokenBucket(redis, { capacity: 5, refillPerSecond: 0.0001, prefix: randomPrefix() });
    await b.take("warm"); // scripts loaded
    const slow = busy(redis);
    const other = b.take("other"); // sent at the end of this tick: in flight behind the busy script
    await new Promise((r) => setImmediate(r));
    const take = b.take("u1"); // a later tick: held until `other` comes back
    const reset = b.reset("u1"); // called after the take: must land after it
    await Promise.all([slow, other, take, reset]);
    expect((await take).ok).toBe(true);
    // The order of the calls: take, then reset. The bucket is full again.
    expect((await b.peek("u1")).remaining).toBe(5);
  });
});
