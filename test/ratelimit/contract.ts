// RateLimits behaviour shared by the standalone and Cluster test files: the same assertions on both.
import { expect, it } from "vitest";
import type { Cluster, Redis } from "ioredis";
import { RateLimits, TokenBucket } from "../../src/ratelimit/index.js";
import { randomPrefix } from "../support/redis.js";

interface Ctx {
  readonly user?: string;
  readonly ip: string;
  readonly cost?: number;
}

/** The three limits of the issue: per user, per IP, per API, each with its own prefix. */
export function threeLimits(
  redis: Redis | Cluster,
  sizes = { user: 5, ip: 3, api: 100 },
  localRefusals = true,
) {
  const tag = randomPrefix();
  const mk = (capacity: number, prefix: string) =>
    new TokenBucket(redis, { capacity, refillPerSecond: 0.0001, prefix, localRefusals });
  const user = mk(sizes.user, `${tag}u`);
  const ip = mk(sizes.ip, `${tag}i`);
  const api = mk(sizes.api, `${tag}a`);
  const limits = new RateLimits<Ctx>([
    { name: "user", bucket: user, key: (c) => c.user },
    { name: "ip", bucket: ip, key: (c) => c.ip },
    { name: "api", bucket: api, key: () => "buy", cost: (c) => c.cost ?? 1 },
  ]);
  return { limits, user, ip, api };
}

/** Where every bucket of the three stands: remaining tokens and the raw stored state. */
async function stand(redis: Redis | Cluster, t: ReturnType<typeof threeLimits>, user: string, ip: string) {
  const [u, i, a] = await Promise.all([t.user.peek(user), t.ip.peek(ip), t.api.peek("buy")]);
  const raw = await Promise.all([
    redis.get(t.user.keys(user).bucket),
    redis.get(t.ip.keys(ip).bucket),
    redis.get(t.api.keys("buy").bucket),
  ]);
  return {
    remaining: [u.remaining, i.remaining, a.remaining],
    reset: [u.resetMs, i.resetMs, a.resetMs],
    raw,
  };
}

export function rateLimitsContract(opts: { redis: () => Redis | Cluster; exactRaw: boolean }): void {
  it("passes only when every limit has room, and takes from each", async () => {
    const t = threeLimits(opts.redis());
    const r = await t.limits.check({ user: "u1", ip: "10.0.0.1" });
    expect(r.ok).toBe(true);
    expect(r.limits.map((l) => [l.name, l.ok, l.remaining, l.limit])).toEqual([
      ["user", true, 4, 5],
      ["ip", true, 2, 3],
      ["api", true, 99, 100],
    ]);
  });

  it.each([
    ["decided by Redis", false],
    ["refused in process", true],
  ] as const)(
    "a request refused by the IP limit leaves the user and API buckets unchanged (peek), %s",
    async (_label, local) => {
      const redis = opts.redis();
      const t = threeLimits(redis, undefined, local);
      // Spend the IP's 3 tokens with other users, and drain the API bucket partly.
      for (const u of ["a", "b", "c"])
        expect((await t.limits.check({ user: u, ip: "10.0.0.9" })).ok).toBe(true);
      expect((await t.limits.check({ user: "u1", ip: "10.0.0.8", cost: 10 })).ok).toBe(true);
      const before = await stand(redis, t, "u1", "10.0.0.9");
      expect(before.remaining).toEqual([4, 0, 87]);

      const r = await t.limits.check({ user: "u1", ip: "10.0.0.9" });
      expect(r.ok).toBe(false);
      if (r.ok) return;
      expect(r.rejectedBy).toBe("ip");
      expect(r.retryAfterMs).toBeGreaterThan(9_000_000); // one token at 0.0001/s
      // In process only the limit known to be empty answers; the others were not asked.
      expect(r.limits.map((l) => [l.name, l.ok, l.remaining])).toEqual(
        local
          ? [["ip", false, 0]]
          : [
              ["user", true, 4],
              ["ip", false, 0],
              ["api", true, 87],
            ],
      );

      const after = await stand(redis, t, "u1", "10.0.0.9");
      expect(after.remaining).toEqual(before.remaining);
      for (let i = 0; i < 3; i++)
        expect(Math.abs(after.reset[i]! - before.reset[i]!)).toBeLessThanOrEqual(1_000);
      // On one script nothing was written at all; take-then-refund rewrites the refunded keys to the same state.
      if (opts.exactRaw) expect(after.raw).toEqual(before.raw);
      else expect(after.raw.map((v) => v === null)).toEqual(before.raw.map((v) => v === null));
    },
  );

  it("a refusal of a full bucket's neighbour leaves no key behind", async () => {
    const redis = opts.redis();
    const t = threeLimits(redis, { user: 5, ip: 1, api: 100 });
    expect((await t.limits.check({ user: "x", ip: "10.1.1.1" })).ok).toBe(true);
    // User "fresh" and the API limit of a fresh set are full (no keys): a refusal must not create them.
    const t2 = threeLimits(redis, { user: 5, ip: 1, api: 100 });
    await t2.ip.take("10.1.1.1");
    const r = await t2.limits.check({ user: "fresh", ip: "10.1.1.1" });
    expect(r.ok).toBe(false);
    expect(await redis.exists(t2.user.keys("fresh").bucket)).toBe(0);
    expect(await redis.exists(t2.api.keys("buy").bucket)).toBe(0);
  });

  it("names the first refusing limit in declared order and waits for the slowest", async () => {
    const t = threeLimits(opts.redis(), { user: 1, ip: 1, api: 100 });
    expect((await t.limits.check({ user: "u", ip: "1.2.3.4" })).ok).toBe(true);
    const r = await t.limits.check({ user: "u", ip: "1.2.3.4" });
    expect(r).toMatchObject({ ok: false, rejectedBy: "user" });
    expect(r.limits.filter((l) => !l.ok).map((l) => l.name)).toEqual(["user", "ip"]);
  });

  it("skips limits whose key is null or undefined", async () => {
    const t = threeLimits(opts.redis());
    const r = await t.limits.check({ ip: "10.2.0.1" });
    expect(r.ok).toBe(true);
    expect(r.limits.map((l) => l.name)).toEqual(["ip", "api"]);
  });

  it("under a crowd no limit goes below zero and refusals take nothing", async () => {
    const redis = opts.redis();
    const t = threeLimits(redis, { user: 1000, ip: 40, api: 1000 });
    // 200 requests from 4 IPs by 1 user: each IP allows exactly 40, so 160 pass; the user and API
    // buckets lose exactly 160 tokens, not 200.
    const rs = await Promise.all(
      Array.from({ length: 200 }, (_, i) => t.limits.check({ user: "crowd", ip: `10.3.0.${i % 4}` })),
    );
    const passed = rs.filter((r) => r.ok).length;
    expect(passed).toBe(160);
    expect((await t.user.peek("crowd")).remaining).toBe(1000 - passed);
    expect((await t.api.peek("buy")).remaining).toBe(1000 - passed);
    for (let i = 0; i < 4; i++) expect((await t.ip.peek(`10.3.0.${i}`)).remaining).toBeGreaterThanOrEqual(0);
  });
}
