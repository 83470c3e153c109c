// RateLimits on standalone Redis: every limit decided in one script, so a refusal writes nothing at all.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { InvalidArgumentError } from "../../src/errors.js";
import { RateLimits, TokenBucket } from "../../src/ratelimit/index.js";
import { keyspace, randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";
import { rateLimitsContract, threeLimits } from "./contract.js";

let srv: PrivateRedis;
let other: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  [srv, other] = await Promise.all([startRedis(), startRedis()]);
  redis = srv.client();
});
afterAll(async () => Promise.all([srv?.stop(), other?.stop()]));

describe("RateLimits (standalone Redis)", () => {
  rateLimitsContract({ redis: () => redis, exactRaw: true });

  it("a refusal leaves the whole keyspace byte for byte as it was", async () => {
    const t = threeLimits(redis, { user: 5, ip: 2, api: 100 });
    await t.limits.check({ user: "u", ip: "1.1.1.1" });
    await t.limits.check({ user: "v", ip: "1.1.1.1" });
    const dump = async () =>
      Object.fromEntries(
        Object.entries(await keyspace(redis)).map(([k, v]) => [k, v.split(":").slice(0, 2).join(":")]),
      );
    const before = await dump();
    const r = await t.limits.check({ user: "u", ip: "1.1.1.1" });
    expect(r).toMatchObject({ ok: false, rejectedBy: "ip" });
    expect(await dump()).toEqual(before);
  });

  it("runs all limits in one script call", async () => {
    const c = srv.client();
    const t = threeLimits(c);
    await t.limits.check({ user: "warm", ip: "9.9.9.9" });
    const calls = async () => {
      const info = await redis.info("commandstats");
      let n = 0;
      // Script calls only: commandstats also counts the commands a script runs inside.
      for (const m of info.matchAll(/^cmdstat_(eval|evalsha):calls=(\d+)/gm)) n += Number(m[2]);
      return n;
    };
    const before = await calls();
    expect((await t.limits.check({ user: "one-call", ip: "9.9.9.8" })).ok).toBe(true);
    expect(await calls()).toBe(before + 1);
  });

  it("two limits on the same bucket and key count jointly", async () => {
    const b = new TokenBucket(redis, { capacity: 3, refillPerSecond: 0.0001, prefix: randomPrefix() });
    const limits = new RateLimits<string>([
      { name: "a", bucket: b, key: (k) => k, cost: 2 },
      { name: "b", bucket: b, key: (k) => k, cost: 2 },
    ]);
    const r = await limits.check("k");
    expect(r).toMatchObject({ ok: false, rejectedBy: "b" });
    expect((await b.peek("k")).remaining).toBe(3);
  });

  it("limits on two Redis servers: take-then-refund across clients", async () => {
    const elsewhere = other.client();
    const tag = randomPrefix();
    const user = new TokenBucket(redis, { capacity: 5, refillPerSecond: 0.0001, prefix: `${tag}u` });
    // Not refused in process, so that the second check runs the take-then-refund path.
    const ip = new TokenBucket(elsewhere, {
      capacity: 1,
      refillPerSecond: 0.0001,
      prefix: `${tag}i`,
      localRefusals: false,
    });
    const limits = new RateLimits<{ user: string; ip: string }>([
      { name: "user", bucket: user, key: (c) => c.user },
      { name: "ip", bucket: ip, key: (c) => c.ip },
    ]);
    expect((await limits.check({ user: "u", ip: "1.2.3.4" })).ok).toBe(true);
    const r = await limits.check({ user: "u", ip: "1.2.3.4" });
    expect(r).toMatchObject({ ok: false, rejectedBy: "ip" });
    expect(r.limits[0]).toMatchObject({ name: "user", ok: true, remaining: 4 });
    expect((await user.peek("u")).remaining).toBe(4);
  });

  it("peek reads every applicable limit without taking", async () => {
    const t = threeLimits(redis);
    await t.limits.check({ user: "p", ip: "5.5.5.5" });
    const states = await t.limits.peek({ user: "p", ip: "5.5.5.5" });
    expect(states.map((s) => [s.name, s.remaining])).toEqual([
      ["user", 4],
      ["ip", 2],
      ["api", 99],
    ]);
    expect((await t.limits.peek({ user: "p", ip: "5.5.5.5" })).map((s) => s.remaining)).toEqual([4, 2, 99]);
    // It judges the request's real cost: the IP limit has 2 left, so a second request of 3 would not pass.
    await t.limits.check({ user: "q", ip: "5.5.5.5" });
    await t.limits.check({ user: "r", ip: "5.5.5.5" });
    const empty = await t.limits.peek({ user: "p", ip: "5.5.5.5" });
    expect(empty.map((s) => [s.name, s.ok])).toEqual([
      ["user", true],
      ["ip", false],
      ["api", true],
    ]);
    expect(empty[1]!.retryAfterMs).toBeGreaterThan(0);
    const big = await t.limits.peek({ user: "p", ip: "6.6.6.6", cost: 98 });
    expect(big.find((s) => s.name === "api")).toMatchObject({ ok: false, remaining: 97 });
    expect((await t.limits.check({ user: "p", ip: "6.6.6.6", cost: 98 })).ok).toBe(false);
  });

  it("a cost function's answer is checked like a fixed cost (0 would turn the limit off)", async () => {
    const t = threeLimits(redis, { user: 5, ip: 3, api: 1 });
    await t.limits.check({ user: "a", ip: "1.1.1.1" }); // the api bucket is empty now
    for (const cost of [0, -0, -1, 1.5, Number.NaN])
      await expect(t.limits.check({ user: "a", ip: "1.1.1.1", cost })).rejects.toThrow(/api.cost/);
    expect((await t.limits.check({ user: "a", ip: "1.1.1.1" })).ok).toBe(false);
  });

  it("policies describe each limit for the RateLimit-Policy header", () => {
    const t = threeLimits(redis);
    const b = new TokenBucket(redis, { capacity: 10, refillPerSecond: 2, prefix: randomPrefix() });
    expect(new RateLimits([{ name: "x", bucket: b, key: () => "k" }]).policies()).toEqual([
      { name: "x", capacity: 10, refillPerSecond: 2, windowSeconds: 5 },
    ]);
    expect(t.limits.policies().map((p) => p.name)).toEqual(["user", "ip", "api"]);
  });

  it("refuses misuse", async () => {
    const b = new TokenBucket(redis, { capacity: 3, refillPerSecond: 1, prefix: randomPrefix() });
    const same = new TokenBucket(redis, { capacity: 9, refillPerSecond: 1, prefix: b.prefix });
    const key = () => "k";
    expect(() => new RateLimits([])).toThrow(InvalidArgumentError);
    const many = Array.from({ length: 65 }, (_, i) => ({
      name: `l${i}`,
      bucket: new TokenBucket(other.client(), {
        capacity: i + 1,
        refillPerSecond: 1,
        prefix: `${b.prefix}-${i}`,
      }),
      key,
    }));
    expect(() => new RateLimits(many)).toThrow(/at most 64 limits/);
    expect(() => new RateLimits(many.slice(0, 64))).not.toThrow();
    expect(() => new RateLimits([{ name: "a b", bucket: b, key }])).toThrow(/name/);
    expect(() => new RateLimits([{ name: 'a"', bucket: b, key }])).toThrow(/name/);
    expect(
      () =>
        new RateLimits([
          { name: "a", bucket: b, key },
          { name: "a", bucket: b, key },
        ]),
    ).toThrow(/repeats/);
    expect(
      () =>
        new RateLimits([
          { name: "a", bucket: b, key },
          { name: "b", bucket: same, key },
        ]),
    ).toThrow(/shares the prefix/);
    // A prefix that is another's "<prefix>:" extension can make the same keys ("rl" + "ip:1" = "rl:ip" + "1").
    const nested = new TokenBucket(redis, { capacity: 9, refillPerSecond: 1, prefix: `${b.prefix}:ip` });
    for (const pair of [
      [b, nested],
      [nested, b],
    ]) {
      expect(
        () =>
          new RateLimits([
            { name: "a", bucket: pair[0]!, key },
            { name: "b", bucket: pair[1]!, key },
          ]),
      ).toThrow(/can make the same keys/);
    }
    expect(nested.keys("1").bucket).toBe(b.keys("ip:1").bucket);
    // A bucket on another client in between does not hide the first one.
    const elsewhere = new TokenBucket(other.client(), { capacity: 9, refillPerSecond: 1, prefix: b.prefix });
    expect(
      () =>
        new RateLimits([
          { name: "a", bucket: b, key },
          { name: "b", bucket: elsewhere, key },
          { name: "c", bucket: same, key },
        ]),
    ).toThrow(/shares the prefix/);
    // Prefixes that merely start alike do not collide: allowed.
    const sibling = new TokenBucket(redis, { capacity: 9, refillPerSecond: 1, prefix: `${b.prefix}ip` });
    expect(
      () =>
        new RateLimits([
          { name: "a", bucket: b, key },
          { name: "b", bucket: sibling, key },
        ]),
    ).not.toThrow();
    expect(() => new RateLimits([{ name: "a", bucket: {} as TokenBucket, key }])).toThrow(/TokenBucket/);
    expect(() => new RateLimits([{ name: "a", bucket: b, key, cost: 0 }])).toThrow(/cost/);
    const limits = new RateLimits<string>([{ name: "a", bucket: b, key: (k) => k, cost: () => 4 }]);
    await expect(limits.check("k")).rejects.toThrow(/at most the bucket's capacity/);
    await expect(new RateLimits([{ name: "a", bucket: b, key: () => "x y" }]).check(null)).rejects.toThrow(
      InvalidArgumentError,
    );
  });
});
