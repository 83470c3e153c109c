// failMode "local" steps in for an outage only: a client that has simply not connected yet (ioredis
// lazyConnect: status "wait", or "connecting" at start-up) sends its takes to Redis, so N processes admit
// what one Redis bucket holds, not N × capacity.
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { TokenBucket } from "../../src/ratelimit/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let admin: Redis;
beforeAll(async () => {
  srv = await startRedis();
  admin = srv.client();
});
afterAll(async () => srv?.stop());

it("four processes with lazyConnect clients admit no more than capacity while Redis is up", async () => {
  const prefix = randomPrefix();
  const shape = { capacity: 2, refillPerSecond: 0.001, prefix, failMode: "local" as const };
  const processes = Array.from(
    { length: 4 },
    () => new TokenBucket(srv.client({ lazyConnect: true }), shape),
  );
  let admitted = 0;
  for (let round = 0; round < 5; round++) for (const p of processes) if ((await p.take("k")).ok) admitted++;
  // Redis would have admitted 2 (capacity; a refill of 0.001/s adds nothing in this time).
  expect(admitted).toBeLessThanOrEqual(2);
  expect(await admin.exists(processes[0]!.keys("k").bucket)).toBe(1);
});
