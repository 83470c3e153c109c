// TokenBucket on a private redis-server: refill on Redis time, all-or-nothing takes, idle expiry, batching.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { Redis } from "ioredis";
import { InvalidArgumentError, RedisCommandError, RedisUnavailableError } from "../../src/errors.js";
import { TokenBucket } from "../../src/ratelimit/index.js";
import { keyspace, randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());
afterEach(() => {
  vi.useRealTimers();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every key's type and value (keyspace() without the TTL, which moves on its own). */
async function contents(pattern: string): Promise<Record<string, string>> {
  const all = await keyspace(redis, pattern);
  return Object.fromEntries(Object.entries(all).map(([k, v]) => [k, v.split(":").slice(0, 2).join(":")]));
}

describe("TokenBucket.take", () => {
  it("starts full, takes one token per call and refuses once empty", async () => {
    const b = new TokenBucket(redis, { capacity: 3, refillPerSecond: 0.001, prefix: randomPrefix() });
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await b.take("u1"));
    expect(results.map((r) => [r.ok, r.remaining])).toEqual([
      [true, 2],
      [true, 1],
      [true, 0],
      [false, 0],
    ]);
    expect(results.every((r) => r.limit === 3)).toBe(true);
    expect(results[0]!.retryAfterMs).toBe(0);
    // One token at 0.001/s takes 1,000 s to come back.
    expect(results[3]!.retryAfterMs).toBeGreaterThan(990_000);
    expect(results[3]!.retryAfterMs).toBeLessThanOrEqual(1_000_000);
    // Other keys have their own bucket.
    expect((await b.take("u2")).remaining).toBe(2);
  });

  it("a rejected multi-token take writes nothing (no negative balance)", async () => {
    const prefix = randomPrefix();
    const b = new TokenBucket(redis, { capacity: 10, refillPerSecond: 0.001, prefix });
    expect((await b.take("k", { cost: 8 })).remaining).toBe(2);
    const before = await contents(`{${prefix}:*`);
    const raw = await redis.get(b.keys("k").bucket);
    const r = await b.take("k", { cost: 5 });
    expect(r).toMatchObject({ ok: false, remaining: 2, limit: 10 });
    expect(r.retryAfterMs).toBeGreaterThan(2_900_000); // 3 more tokens at 0.001/s
    expect(await redis.get(b.keys("k").bucket)).toBe(raw);
    expect(await contents(`{${prefix}:*`)).toEqual(before);
    // The two tokens are still there for a smaller request.
    expect((await b.take("k", { cost: 2 })).ok).toBe(true);
    expect((await b.take("k")).ok).toBe(false);
  });

  it("refills continuously and reports when it will be full", async () => {
    const b = new TokenBucket(redis, { capacity: 4, refillPerSecond: 20, prefix: randomPrefix() });
    const first = await b.take("k", { cost: 4 });
    expect(first).toMatchObject({ ok: true, remaining: 0 });
    expect(first.resetMs).toBeGreaterThan(150);
    expect(first.resetMs).toBeLessThanOrEqual(200);
    const denied = await b.take("k", { cost: 2 });
    if (!denied.ok) expect(denied.retryAfterMs).toBeLessThanOrEqual(100);
    await sleep(120); // 20/s: at least 2 tokens back
    expect((await b.take("k", { cost: 2 })).ok).toBe(true);
  });

  it("idle keys expire exactly when the bucket is full again", async () => {
    const b = new TokenBucket(redis, { capacity: 5, refillPerSecond: 10, prefix: randomPrefix() });
    const key = b.keys("idle").bucket;
    const r = await b.take("idle", { cost: 2 }); // 2 tokens at 10/s: full in 200 ms
    expect(r.resetMs).toBe(200);
    // Exact on Redis time: stored "<units> <µs>", expiring (PXAT, rounded up to the next ms, so never early)
    // when the missing units have refilled.
    const [units, at] = (await redis.get(key))!.split(" ").map(Number) as [number, number];
    expect(units).toBe(3_000_000);
    expect(await redis.call("PEXPIRETIME", key)).toBe(Math.ceil((at + 2_000_000 / 10) / 1000));
    // Then the key is gone, which reads as a full bucket.
    await redis.pexpireat(key, 1); // as if those 200 ms had passed
    expect(await redis.exists(key)).toBe(0);
    expect(await b.peek("idle")).toEqual({ remaining: 5, resetMs: 0, limit: 5 });
  });

  it("peek reads without writing; reset refills at once", async () => {
    const prefix = randomPrefix();
    const b = new TokenBucket(redis, { capacity: 5, refillPerSecond: 0.001, prefix });
    await b.take("k", { cost: 3 });
    const before = await contents(`{${prefix}:*`);
    const p = await b.peek("k");
    expect(p.remaining).toBe(2);
    expect(p.limit).toBe(5);
    expect(p.resetMs).toBeGreaterThan(2_990_000);
    expect(await contents(`{${prefix}:*`)).toEqual(before);
    expect(await b.peek("never")).toEqual({ remaining: 5, resetMs: 0, limit: 5 });
    expect(await redis.exists(b.keys("never").bucket)).toBe(0);
    await b.reset("k");
    expect((await b.peek("k")).remaining).toBe(5);
  });

  it("fractional refill rates", async () => {
    const b = new TokenBucket(redis, { capacity: 1, refillPerSecond: 0.5, prefix: randomPrefix() });
    expect((await b.take("k")).ok).toBe(true);
    const r = await b.take("k");
    expect(r.ok).toBe(false);
    expect(r.retryAfterMs).toBeGreaterThan(1900);
    expect(r.retryAfterMs).toBeLessThanOrEqual(2000);
  });

  it("under a crowd exactly `capacity` takes succeed", async () => {
    const prefix = randomPrefix();
    const clients = [srv.client(), srv.client(), srv.client(), srv.client()];
    const buckets = clients.map((c) => new TokenBucket(c, { capacity: 50, refillPerSecond: 0.0001, prefix }));
    const results = await Promise.all(Array.from({ length: 800 }, (_, i) => buckets[i % 4]!.take("hot")));
    expect(results.filter((r) => r.ok)).toHaveLength(50);
    // Multi-token takes in a crowd: 100 tokens, takes of 3: exactly 33 succeed, 1 token is left.
    const multi = await Promise.all(
      Array.from({ length: 200 }, (_, i) => buckets[i % 4]!.take("multi", { cost: 3 })),
    );
    const b100 = new TokenBucket(clients[0]!, {
      capacity: 100,
      refillPerSecond: 0.0001,
      prefix: randomPrefix(),
    });
    const multi100 = await Promise.all(Array.from({ length: 200 }, () => b100.take("m", { cost: 3 })));
    expect(multi.filter((r) => r.ok)).toHaveLength(16); // capacity 50
    expect(multi100.filter((r) => r.ok)).toHaveLength(33);
    expect((await b100.peek("m")).remaining).toBe(1);
  });

  it("batched and unbatched takes give the same answers in the same order", async () => {
    const run = async (batch: boolean) => {
      const b = new TokenBucket(redis, {
        capacity: 5,
        refillPerSecond: 0.0001,
        prefix: randomPrefix(),
        batch,
      });
      const costs = [1, 3, 2, 1, 1, 4, 1, 1];
      const rs = await Promise.all(costs.map((cost, i) => b.take(i % 3 === 0 ? "a" : "b", { cost })));
      return rs.map((r) => [r.ok, r.remaining]);
    };
    expect(await run(true)).toEqual(await run(false));
  });

  it("reset() lands after the takes issued before it, batched or not", async () => {
    for (const batch of [true, false]) {
      const b = new TokenBucket(redis, {
        capacity: 5,
        refillPerSecond: 0.001,
        prefix: randomPrefix(),
        batch,
      });
      const took = b.take("k", { cost: 5 });
      await b.reset("k");
      expect(await took).toMatchObject({ ok: true });
      expect((await b.peek("k")).remaining).toBe(5);
    }
  });

  it("refuses bad input before touching Redis", async () => {
    const prefix = randomPrefix();
    const b = new TokenBucket(redis, { capacity: 5, refillPerSecond: 1, prefix });
    await expect(b.take("a{b}")).rejects.toThrow(InvalidArgumentError);
    await expect(b.take("a b")).rejects.toThrow(InvalidArgumentError);
    await expect(b.take("x".repeat(201))).rejects.toThrow(InvalidArgumentError);
    await expect(b.take("k", { cost: 0 })).rejects.toThrow(/cost/);
    await expect(b.take("k", { cost: 1.5 })).rejects.toThrow(/cost must be an integer/);
    await expect(b.take("k", { cost: 6 })).rejects.toThrow(/at most the bucket's capacity/);
    expect(await redis.keys(`{${prefix}:*`)).toEqual([]);
    expect(() => new TokenBucket(redis, { capacity: 0, refillPerSecond: 1 })).toThrow(/capacity/);
    expect(() => new TokenBucket(redis, { capacity: 1.5, refillPerSecond: 1 })).toThrow(/capacity/);
    expect(() => new TokenBucket(redis, { capacity: 1, refillPerSecond: 0 })).toThrow(/refillPerSecond/);
    expect(() => new TokenBucket(redis, { capacity: 1, refillPerSecond: Infinity })).toThrow(
      /refillPerSecond/,
    );
    expect(() => new TokenBucket(redis, { capacity: 1, refillPerSecond: 1, prefix: "a{" })).toThrow(/prefix/);
    // Full again only after 1e16 s: the key's expiry would overflow, so the settings are refused.
    expect(() => new TokenBucket(redis, { capacity: 1e9, refillPerSecond: 1e-7 })).toThrow(
      /refill the whole/,
    );
    expect(() => new TokenBucket(redis, null as never)).toThrow(InvalidArgumentError);
    await expect(b.take("k", null as never)).rejects.toThrow(InvalidArgumentError);
    expect(() => new TokenBucket({} as Redis, { capacity: 1, refillPerSecond: 1 })).toThrow(/redis/);
  });

  it("a key overwritten by another program fails its own requests only, never resets silently", async () => {
    const b = new TokenBucket(redis, { capacity: 5, refillPerSecond: 1, prefix: randomPrefix() });
    await redis.set(b.keys("k").bucket, "garbage");
    await redis.hset(b.keys("h").bucket, "a", "1");
    // Batched with healthy takes: those still get their answers.
    const [bad, hash, good] = await Promise.allSettled([b.take("k"), b.take("h"), b.take("fine")]);
    expect(bad.status === "rejected" && bad.reason).toBeInstanceOf(RedisCommandError);
    expect(bad.status === "rejected" && String(bad.reason)).toMatch(
      /holds something other than a token bucket/,
    );
    expect(hash.status).toBe("rejected");
    expect(good.status === "fulfilled" && good.value.remaining).toBe(4);
    expect(await redis.get(b.keys("k").bucket)).toBe("garbage");
  });

  it("a closed connection is a RedisUnavailableError", async () => {
    const c = srv.client({ maxRetriesPerRequest: 0 });
    const b = new TokenBucket(c, { capacity: 5, refillPerSecond: 1, prefix: randomPrefix() });
    await b.take("k");
    c.disconnect();
    await expect(b.take("k")).rejects.toThrow(RedisUnavailableError);
  });

  it("works under an ioredis keyPrefix", async () => {
    const c = srv.client({ keyPrefix: "app:" });
    const b = new TokenBucket(c, { capacity: 2, refillPerSecond: 0.001, prefix: randomPrefix() });
    await b.take("k");
    expect(await redis.exists(`app:${b.keys("k").bucket}`)).toBe(1);
    expect((await b.take("k")).remaining).toBe(0);
  });
});

// The acceptance test: a bucket refilling R/s, hammered by 4 clients (4 TokenBuckets with their own in-process
// refusals, as 4 processes would be), never admits more than it refilled, whatever the application servers'
// clocks say. "Jumping" moves the application clock between 5 s behind and 5 s ahead every 100 ms during the
// run, as requests spread over servers with bad clocks would see it: a bucket that trusted Date.now() would
// hand out 50 extra tokens at every jump forward.
//
// Exact on Redis time, with no timing tolerance: the bucket is first drained by one take, which stores
// "0 <t_a>" (Redis µs); every admission writes "<units> <t>" and refusals write nothing, so the stored state
// after the run, "<units_b> <t_b>", pins the admissions down: admitted × 1e6 + units_b = R × (t_b − t_a),
// less under a unit per write for the rounding down of stored units (the bucket never refills to full
// while hammered, so no refill is capped).
describe.each([
  ["in step with Redis", 0],
  ["5 s ahead", 5_000],
  ["5 s behind", -5_000],
  ["jumping between 5 s behind and 5 s ahead", "jump"],
] as const)("hammered by 4 clients, application clock %s", (_label, skew) => {
  it("admits exactly what refilled on Redis time, never more", async () => {
    const C = 10;
    const R = 10;
    const WANTED = 15; // admissions to wait for: 1.5 s of refill
    const prefix = randomPrefix();
    const clients = [srv.client(), srv.client(), srv.client(), srv.client()];
    const buckets = clients.map((c) => new TokenBucket(c, { capacity: C, refillPerSecond: R, prefix }));
    const drain = new TokenBucket(redis, { capacity: C, refillPerSecond: R, prefix, localRefusals: false });
    const key = drain.keys("hammer").bucket;
    expect((await drain.take("hammer", { cost: C })).ok).toBe(true);
    const [, start] = (await redis.get(key))!.split(" ").map(Number) as [number, number];
    let jumper: NodeJS.Timeout | undefined;
    if (skew !== 0) {
      const real = Date.now();
      vi.useFakeTimers({ toFake: ["Date"], shouldAdvanceTime: true });
      if (skew === "jump") {
        let n = 0;
        jumper = setInterval(() => vi.setSystemTime(real + (n++ % 2 ? 5_000 : -5_000) + 100 * n), 100);
      } else vi.setSystemTime(real + skew);
    }
    const before = await evalCalls();
    let admitted = 0;
    let calls = 0;
    await Promise.all(
      buckets.map(async (b) => {
        while (admitted < WANTED) {
          const r = await b.take("hammer");
          calls++;
          if (r.ok) admitted++;
          // In-process refusals resolve at once: let the other clients' replies in.
          else await new Promise((resolve) => setImmediate(resolve));
        }
      }),
    );
    const redisCalls = (await evalCalls()) - before;
    clearInterval(jumper);
    const [units, end] = (await redis.get(key))!.split(" ").map(Number) as [number, number];
    expect(admitted).toBe(Math.floor((R * (end - start) - units) / 1_000_000));
    expect(admitted * 1_000_000).toBeLessThanOrEqual(R * (end - start));
    expect(admitted).toBeGreaterThanOrEqual(WANTED);
    // Really hammered, and most refusals never reached Redis.
    expect(calls).toBeGreaterThan(200);
    expect(redisCalls).toBeLessThan(calls / 10);
  });
});

/** Script calls the private server has run so far. */
async function evalCalls(): Promise<number> {
  const info = await redis.info("commandstats");
  return (
    Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0) +
    Number(/cmdstat_eval:calls=(\d+)/.exec(info)?.[1] ?? 0)
  );
}
