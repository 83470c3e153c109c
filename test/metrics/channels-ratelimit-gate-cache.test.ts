// The diagnostics channels of the rate limits, the gate and the cache: each documented event fires with its
// documented payload, and nothing is published (or built) when nobody subscribes.
import { tracingChannel } from "node:diagnostics_channel";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { channels, events, type CacheLookupEvent, type TakeTrace } from "../../src/metrics/index.js";
import { RateLimits, TokenBucket } from "../../src/ratelimit/index.js";
import { PurchaseTokens, SaleGate } from "../../src/gate/index.js";
import { ReadThroughCache } from "../../src/cache/index.js";
import { InvalidArgumentError } from "../../src/errors.js";
import { redisTimeMs } from "../../src/internal/time.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";
import { at, recordEvents, recordTrace } from "./support.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());

describe("ratelimit.take", () => {
  it("publishes start, end, asyncStart and asyncEnd with bucket, key, cost and the result", async () => {
    const prefix = randomPrefix();
    const bucket = new TokenBucket(redis, {
      capacity: 2,
      refillPerSecond: 0.001,
      prefix,
      localRefusals: false,
    });
    const rec = recordTrace(channels.take);
    const before = performance.now();
    let between = 0;
    try {
      await bucket.take("u1", { cost: 2 });
      between = performance.now();
      await bucket.take("u1");
    } finally {
      rec.stop();
    }
    // Every event of a call carries the call's start time.
    const starts = rec.events.map((e) => e.startedAt as number);
    expect(new Set(starts.slice(0, 4)).size).toBe(1);
    expect(new Set(starts.slice(4)).size).toBe(1);
    expect(starts[0]).toBeGreaterThanOrEqual(before);
    expect(starts[0]).toBeLessThanOrEqual(between);
    expect(starts[4]).toBeGreaterThanOrEqual(between);
    expect(rec.events.map((e) => e.event)).toEqual([
      "start",
      "end",
      "asyncStart",
      "asyncEnd",
      "start",
      "end",
      "asyncStart",
      "asyncEnd",
    ]);
    expect(at(rec.events, "start")).toEqual([
      { bucket: prefix, key: "u1", cost: 2 },
      { bucket: prefix, key: "u1", cost: 1 },
    ]);
    const results = at(rec.events, "asyncEnd").map((p) => p.result as { ok: boolean; remaining: number });
    expect(results.map((r) => [r.ok, r.remaining])).toEqual([
      [true, 0],
      [false, 0],
    ]);
  });

  it("publishes error (and no result) for bad input, which changes nothing", async () => {
    const bucket = new TokenBucket(redis, { capacity: 2, refillPerSecond: 1, prefix: randomPrefix() });
    const rec = recordTrace(channels.take);
    try {
      await expect(bucket.take("u1", { cost: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
    } finally {
      rec.stop();
    }
    const errors = at(rec.events, "error");
    expect(errors).toHaveLength(1);
    expect(errors[0]!.error).toBeInstanceOf(InvalidArgumentError);
    expect(errors[0]!.result).toBeUndefined();
  });

  it("publishes asyncEnd alone, with the result or the error, to a subscriber of asyncEnd alone", async () => {
    // The Prometheus adapter's way: with nothing on start, the library publishes without tracePromise.
    const bucket = new TokenBucket(redis, {
      capacity: 1,
      refillPerSecond: 0.001,
      prefix: randomPrefix(),
      localRefusals: false,
    });
    const ch = tracingChannel<unknown, TakeTrace>(channels.take);
    const seen: { result: unknown; error: unknown; startedAt: unknown; key: string }[] = [];
    const onEnd = (message: unknown) => {
      const ctx = message as TakeTrace;
      seen.push({ result: ctx.result, error: ctx.error, startedAt: ctx.startedAt, key: ctx.key });
    };
    ch.asyncEnd.subscribe(onEnd);
    const before = performance.now();
    try {
      const first = await bucket.take("u1");
      const second = await bucket.take("u1");
      await expect(bucket.take("u1", { cost: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
      expect(seen.map((s) => s.result)).toEqual([first, second, undefined]);
      expect([first.ok, second.ok]).toEqual([true, false]);
    } finally {
      ch.asyncEnd.unsubscribe(onEnd);
    }
    expect(seen.map((s) => s.key)).toEqual(["u1", "u1", "u1"]);
    expect(seen[2]!.error).toBeInstanceOf(InvalidArgumentError);
    expect(seen.slice(0, 2).map((s) => s.error)).toEqual([undefined, undefined]);
    for (const s of seen) {
      expect(s.startedAt).toBeGreaterThanOrEqual(before);
      expect(s.startedAt).toBeLessThanOrEqual(performance.now());
    }
  });

  it("builds no payload when nobody subscribes", async () => {
    const bucket = new TokenBucket(redis, { capacity: 2, refillPerSecond: 1, prefix: randomPrefix() });
    // A getter counts reads of `cost`: building the payload reads it once more, and only with a subscriber.
    let reads = 0;
    const options = {
      get cost() {
        reads++;
        return 1;
      },
    };
    await bucket.take("u1", options);
    const withoutSubscriber = reads;
    const rec = recordTrace(channels.take);
    try {
      await bucket.take("u1", options);
    } finally {
      rec.stop();
    }
    expect(reads - withoutSubscriber).toBe(withoutSubscriber + 1);
  });
});

describe("ratelimit.check", () => {
  it("publishes the limit names, and a refusal's rejectedBy in the result", async () => {
    const user = new TokenBucket(redis, { capacity: 1, refillPerSecond: 0.001, prefix: randomPrefix() });
    const ip = new TokenBucket(redis, { capacity: 5, refillPerSecond: 0.001, prefix: randomPrefix() });
    const limits = new RateLimits<{ user: string; ip: string }>([
      { name: "ip", bucket: ip, key: (c) => c.ip },
      { name: "user", bucket: user, key: (c) => c.user },
    ]);
    const rec = recordTrace(channels.check);
    try {
      await limits.check({ user: "u1", ip: "1.2.3.4" });
      await limits.check({ user: "u1", ip: "1.2.3.4" });
    } finally {
      rec.stop();
    }
    expect(at(rec.events, "start")).toEqual([{ limits: ["ip", "user"] }, { limits: ["ip", "user"] }]);
    const results = at(rec.events, "asyncEnd").map((p) => p.result as { ok: boolean; rejectedBy?: string });
    expect(results.map((r) => [r.ok, r.rejectedBy])).toEqual([
      [true, undefined],
      [false, "user"],
    ]);
  });
});

describe("gate.admit", () => {
  it("publishes the gate's sale id and the admission result", async () => {
    const saleId = randomPrefix();
    const now = await redisTimeMs(redis);
    const tokens = new PurchaseTokens(redis, { secret: "x".repeat(40), prefix: randomPrefix() });
    const early = new SaleGate(redis, { saleId, startsAt: now + 600_000, tokens });
    const open = new SaleGate(redis, { saleId, startsAt: now - 1_000, tokens });
    const rec = recordTrace(channels.admit);
    try {
      await early.admit({ userId: "u1", sku: "s1" });
      await open.admit({ userId: "u1", sku: "s1" });
    } finally {
      rec.stop();
    }
    expect(at(rec.events, "start")).toEqual([{ gate: saleId }, { gate: saleId }]);
    const results = at(rec.events, "asyncEnd").map((p) => p.result as { ok: boolean; reason?: string });
    expect(results.map((r) => [r.ok, r.reason])).toEqual([
      [false, "NOT_STARTED"],
      [true, undefined],
    ]);
  });
});

describe("cache.lookup", () => {
  it("publishes miss, then hit, then l1 for one id", async () => {
    const prefix = randomPrefix();
    const cache = new ReadThroughCache<string>({
      redis,
      prefix,
      ttlMs: 60_000,
      load: async (id) => `value-${id}`,
      l1: { subscriber: srv.client(), maxEntries: 10 },
    });
    await cache.ready();
    const rec = recordEvents<CacheLookupEvent>(events.cacheLookup);
    try {
      expect(await cache.get("a")).toBe("value-a");
      expect(await cache.get("a")).toBe("value-a");
      // The L1 keeps entries read from Redis; poll until it answers in process (no timing assumption).
      const deadline = Date.now() + 10_000;
      while (!rec.messages.some((m) => m.outcome === "l1") && Date.now() < deadline) await cache.get("a");
    } finally {
      rec.stop();
      await cache.close();
    }
    expect(rec.messages.slice(0, 2)).toEqual([
      { cache: prefix, id: "a", outcome: "miss" },
      { cache: prefix, id: "a", outcome: "hit" },
    ]);
    expect(rec.messages.at(-1)).toEqual({ cache: prefix, id: "a", outcome: "l1" });
  });
});
