// What a process answers without Redis: refusals of buckets known to be short (0 commands, counted with
// INFO commandstats on a private server), bans, and the insurance limiter of failMode "local" while Redis is
// stopped; and bad input to those options.
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import Fastify, { type FastifyRequest } from "fastify";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError, RedisUnavailableError } from "../../src/errors.js";
import {
  RateLimits,
  TokenBucket,
  fastifyRateLimit,
  type TokenBucketOptions,
} from "../../src/ratelimit/index.js";
import { keyspace, randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());

/** Commands the server has run, all kinds but INFO itself (so reading the count costs nothing). */
async function commands(client: Redis = redis): Promise<number> {
  const info = await client.info("commandstats");
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) if (m[1] !== "info") n += Number(m[2]);
  return n;
}

const bucket = (options: Partial<TokenBucketOptions> = {}, client: Redis = redis) =>
  new TokenBucket(client, { capacity: 2, refillPerSecond: 0.001, prefix: randomPrefix(), ...options });

describe("in-process refusals", () => {
  it("a key known to be empty is refused with 0 Redis commands until it may have refilled", async () => {
    const b = bucket();
    expect((await b.take("bot")).ok).toBe(true);
    expect((await b.take("bot")).ok).toBe(true); // the reply shows the bucket empty
    const before = await commands();
    const rs = await Promise.all(Array.from({ length: 1000 }, () => b.take("bot")));
    expect(await commands()).toBe(before);
    expect(rs.every((r) => !r.ok && r.remaining === 0 && r.limit === 2)).toBe(true);
    // One token at 0.001/s: about 1,000 s away (never later than Redis says).
    expect(Math.min(...rs.map((r) => r.retryAfterMs))).toBeGreaterThan(990_000);
    expect(Math.max(...rs.map((r) => r.retryAfterMs))).toBeLessThanOrEqual(1_000_000);
    // Other keys and larger costs are not affected: they go to Redis.
    expect((await b.take("human")).ok).toBe(true);
    expect(await commands()).toBeGreaterThan(before);
  });

  it("a refused larger cost is answered in process while a smaller one still goes to Redis", async () => {
    const b = new TokenBucket(redis, { capacity: 5, refillPerSecond: 0.001, prefix: randomPrefix() });
    expect((await b.take("k", { cost: 3 })).ok).toBe(true);
    expect((await b.take("k", { cost: 4 })).ok).toBe(false); // 2 left: a 4 is refused by Redis
    const before = await commands();
    const r = await b.take("k", { cost: 3 });
    expect(r).toMatchObject({ ok: false, remaining: 2 });
    expect(await commands()).toBe(before);
    expect((await b.take("k", { cost: 2 })).ok).toBe(true); // 2 tokens are there: Redis decides
    expect(await commands()).toBeGreaterThan(before);
  });

  it("localRefusals: false sends every refusal to Redis", async () => {
    const b = bucket({ localRefusals: false });
    await b.take("k");
    await b.take("k");
    const before = await commands();
    expect((await b.take("k")).ok).toBe(false);
    expect(await commands()).toBeGreaterThan(before);
    expect(b.localKeys).toBe(0);
  });

  it("the refusal ends when the bucket may have refilled: the next take goes to Redis and passes", async () => {
    const b = new TokenBucket(redis, { capacity: 1, refillPerSecond: 20, prefix: randomPrefix() });
    expect((await b.take("k")).ok).toBe(true);
    // A busy machine may let a token refill between two calls: take until one is refused.
    let refused = await b.take("k");
    for (let i = 0; refused.ok && i < 1_000; i++) refused = await b.take("k");
    expect(refused.ok).toBe(false);
    // Waiting the advertised retryAfterMs is what a well-behaved client does: then it must pass.
    await new Promise((r) => setTimeout(r, refused.retryAfterMs));
    const before = await commands();
    expect((await b.take("k")).ok).toBe(true);
    expect(await commands()).toBeGreaterThan(before);
  });

  it("reset() in this process forgets what it knew", async () => {
    const b = bucket();
    await b.take("k");
    await b.take("k");
    expect((await b.take("k")).ok).toBe(false);
    await b.reset("k");
    expect((await b.take("k")).ok).toBe(true);
  });

  it("remembers at most maxLocalKeys keys", async () => {
    const b = bucket({ capacity: 1, maxLocalKeys: 10 });
    for (let i = 0; i < 50; i++) await b.take(`k${i}`);
    expect(b.localKeys).toBeLessThanOrEqual(10);
    // The last ones are still known: refused with no command.
    const before = await commands();
    expect((await b.take("k49")).ok).toBe(false);
    expect(await commands()).toBe(before);
  });

  it("RateLimits: a limit known to be empty refuses in process, consumes nothing anywhere", async () => {
    const tag = randomPrefix();
    const mk = (capacity: number, p: string) =>
      new TokenBucket(redis, { capacity, refillPerSecond: 0.001, prefix: `${tag}${p}` });
    const [user, ip] = [mk(2, "u"), mk(50, "i")];
    const limits = new RateLimits<{ user: string; ip: string }>([
      { name: "ip", bucket: ip, key: (c) => c.ip },
      { name: "user", bucket: user, key: (c) => c.user },
    ]);
    expect((await limits.check({ user: "bot", ip: "1.1.1.1" })).ok).toBe(true);
    expect((await limits.check({ user: "bot", ip: "1.1.1.1" })).ok).toBe(true);
    const dump = await keyspace(redis, `{${tag}*`);
    const before = await commands();
    for (let i = 0; i < 200; i++) {
      const r = await limits.check({ user: "bot", ip: "1.1.1.1" });
      expect(r).toMatchObject({ ok: false, rejectedBy: "user" });
      if (!r.ok) expect(r.limits.map((l) => [l.name, l.ok, l.remaining])).toEqual([["user", false, 0]]);
    }
    expect(await commands()).toBe(before);
    expect((await ip.peek("1.1.1.1")).remaining).toBe(48);
    // Nothing written (PTTL aside, which moves on its own).
    const strip = (d: Record<string, string>) =>
      Object.fromEntries(Object.entries(d).map(([k, v]) => [k, v.split(":").slice(0, 2).join(":")]));
    expect(strip(await keyspace(redis, `{${tag}*`))).toEqual(strip(dump));
  });

  it("RateLimits hammered by 4 clients: the user limit admits exactly what refilled on Redis time", async () => {
    const tag = randomPrefix();
    const R = 10;
    const make = (c: Redis) =>
      new RateLimits<string>([
        {
          name: "api",
          bucket: new TokenBucket(c, { capacity: 1e6, refillPerSecond: 0.01, prefix: `${tag}a` }),
          key: () => "api",
        },
        {
          name: "user",
          bucket: new TokenBucket(c, { capacity: 5, refillPerSecond: R, prefix: `${tag}u` }),
          key: (u) => u,
        },
      ]);
    const drain = new TokenBucket(redis, {
      capacity: 5,
      refillPerSecond: R,
      prefix: `${tag}u`,
      localRefusals: false,
    });
    expect((await drain.take("bot", { cost: 5 })).ok).toBe(true);
    const key = drain.keys("bot").bucket;
    const [, start] = (await redis.get(key))!.split(" ").map(Number) as [number, number];
    const sets = [srv.client(), srv.client(), srv.client(), srv.client()].map(make);
    let admitted = 0;
    await Promise.all(
      sets.map(async (s) => {
        while (admitted < 10) {
          const r = await s.check("bot");
          if (r.ok) admitted++;
          else await new Promise((resolve) => setImmediate(resolve));
        }
      }),
    );
    const [units, end] = (await redis.get(key))!.split(" ").map(Number) as [number, number];
    expect(admitted).toBe(Math.floor((R * (end - start) - units) / 1_000_000));
    // The API limit lost exactly the admitted requests: refusals took nothing from it.
    expect((await sets[0]!.peek("bot"))[0]!.remaining).toBe(1e6 - admitted);
  });
});

describe("ban", () => {
  it("after `after` refusals in a row the key is refused for forMs, even with tokens, at 0 commands", async () => {
    const b = new TokenBucket(redis, {
      capacity: 1,
      refillPerSecond: 0.001,
      prefix: randomPrefix(),
      ban: { after: 3, forMs: 2_000_000 }, // longer than a token's refill (1,000 s), so the ban is what shows
    });
    expect((await b.take("bot")).ok).toBe(true);
    // Three refusals in a row: the first from Redis... or all in process, it counts the same.
    for (let i = 0; i < 3; i++) expect((await b.take("bot")).ok).toBe(false);
    await redis.del(b.keys("bot").bucket); // the bucket is full again behind this process's back
    expect((await b.peek("bot")).remaining).toBe(1);
    const before = await commands();
    const r = await b.take("bot");
    expect(r.ok).toBe(false);
    expect(r.retryAfterMs).toBeGreaterThan(1_990_000);
    expect(r.retryAfterMs).toBeLessThanOrEqual(2_000_000);
    expect(await commands()).toBe(before);
    // Another key is not banned.
    expect((await b.take("human")).ok).toBe(true);
  });

  it("an admission between refusals starts the count over; the ban ends after forMs", async () => {
    const b = new TokenBucket(redis, {
      capacity: 1,
      refillPerSecond: 20,
      prefix: randomPrefix(),
      ban: { after: 2, forMs: 300 },
    });
    // A client that waits the retryAfterMs it was told finds its token (in-process refusals included). The
    // wait is measured on the monotonic clock: a timer can fire a little early (its start is the event
    // loop's cached time), which would be a client that did not wait what it was told.
    const wait = async (ms: number) => {
      const end = performance.now() + ms;
      while (performance.now() < end)
        await new Promise((r) => setTimeout(r, Math.max(1, end - performance.now())));
    };
    // Sent in one tick, decided by one script: an admission, then strike 1.
    const [a, r1] = await Promise.all([b.take("k"), b.take("k")]);
    expect([a.ok, r1.ok]).toEqual([true, false]);
    await wait(r1.retryAfterMs);
    expect((await b.take("k")).ok).toBe(true); // the count starts over
    const r2 = await b.take("k"); // strike 1 again, not 2
    expect(r2.ok).toBe(false);
    expect(r2.retryAfterMs).toBeLessThanOrEqual(50);
    await wait(r2.retryAfterMs);
    expect((await b.take("k")).ok).toBe(true);
    // Two refusals in a row: banned for 300 ms although a token is back after 50.
    const [x, y] = await Promise.all([b.take("k"), b.take("k")]);
    expect([x.ok, y.ok]).toEqual([false, false]);
    expect(y.retryAfterMs).toBeGreaterThan(200);
    expect(y.retryAfterMs).toBeLessThanOrEqual(300);
    await wait(y.retryAfterMs);
    expect((await b.take("k")).ok).toBe(true);
  });

  it("RateLimits: a banned limit refuses the whole check in process", async () => {
    const user = new TokenBucket(redis, {
      capacity: 1,
      refillPerSecond: 1000,
      prefix: randomPrefix(),
      ban: { after: 1, forMs: 600_000 },
    });
    const limits = new RateLimits<string>([{ name: "user", bucket: user, key: (u) => u }]);
    await limits.check("u");
    while ((await limits.check("u")).ok);
    const before = await commands();
    const r = await limits.check("u");
    expect(r).toMatchObject({ ok: false, rejectedBy: "user" });
    if (!r.ok) expect(r.retryAfterMs).toBeGreaterThan(590_000);
    expect(await commands()).toBe(before);
  });
});

describe("failMode local", () => {
  let down: PrivateRedis;
  let client: Redis;
  let other: Redis;
  let app: ReturnType<typeof Fastify>;
  let url = "";
  const warnings: Error[] = [];
  const onWarning = (w: Error) => void warnings.push(w);
  const tag = randomPrefix();
  let bucketLocal: TokenBucket;
  let half: TokenBucket;
  let thrower: TokenBucket;
  let limits: RateLimits<{ user: string; ip: string }>;

  beforeAll(async () => {
    down = await startRedis();
    client = down.client({ maxRetriesPerRequest: 0 });
    other = down.client({ enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    for (const c of [client, other]) c.on("error", () => {});
    await Promise.all([client, other].map((c) => (c.status === "ready" ? undefined : once(c, "ready"))));
    bucketLocal = new TokenBucket(client, {
      capacity: 3,
      refillPerSecond: 0.001,
      prefix: `${tag}b`,
      failMode: "local",
    });
    half = new TokenBucket(client, {
      capacity: 4,
      refillPerSecond: 0.001,
      prefix: `${tag}h`,
      failMode: "local",
      localShare: 0.5,
    });
    thrower = new TokenBucket(client, { capacity: 3, refillPerSecond: 0.001, prefix: `${tag}t` });
    limits = new RateLimits(
      [
        {
          name: "user",
          bucket: new TokenBucket(client, { capacity: 5, refillPerSecond: 0.001, prefix: `${tag}u` }),
          key: (c) => c.user,
        },
        {
          name: "ip",
          bucket: new TokenBucket(client, { capacity: 2, refillPerSecond: 0.001, prefix: `${tag}i` }),
          key: (c) => c.ip,
        },
      ],
      { failMode: "local" },
    );
    const mwLimits = new RateLimits<FastifyRequest>([
      {
        name: "user",
        bucket: new TokenBucket(other, { capacity: 2, refillPerSecond: 0.001, prefix: `${tag}m` }),
        key: (req) => req.headers["x-user"] as string,
      },
    ]);
    app = Fastify();
    await app.register(fastifyRateLimit({ limits: mwLimits, failMode: "local", timeoutMs: 200 }));
    app.get("/", async () => ({ ok: true }));
    await app.listen({ port: 0, host: "127.0.0.1" });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/`;
    process.on("warning", onWarning);
  });
  afterAll(async () => {
    process.off("warning", onWarning);
    await app?.close();
    await down?.stop();
  });

  it("limits while Redis is down: the insurance bucket, all or nothing, and the middleware answers 200 / 429", async () => {
    // Healthy first: Redis decides.
    expect((await bucketLocal.take("k")).ok).toBe(true);
    expect((await fetch(url, { headers: { "x-user": "m" } })).status).toBe(200);
    expect(warnings).toEqual([]);
    const closed = Promise.all([once(client, "close"), once(other, "close")]);
    await down.server.stop();
    await closed;

    // TokenBucket: a full in-process bucket of capacity 3, then refusals.
    const rs = [];
    for (let i = 0; i < 5; i++) rs.push((await bucketLocal.take("k")).ok);
    expect(rs).toEqual([true, true, true, false, false]);
    // localShare 0.5 of capacity 4: 2.
    const hs = [];
    for (let i = 0; i < 4; i++) hs.push((await half.take("k")).ok);
    expect(hs).toEqual([true, true, false, false]);
    // Without failMode local, the outage is an error.
    await expect(thrower.take("k")).rejects.toThrow(RedisUnavailableError);

    // RateLimits: the IP allows 2; a refusal by the IP takes nothing from the user's insurance bucket.
    const cs = [];
    for (let i = 0; i < 4; i++) cs.push(await limits.check({ user: "u", ip: "1.1.1.1" }));
    expect(cs.map((c) => c.ok)).toEqual([true, true, false, false]);
    expect(cs[2]).toMatchObject({ ok: false, rejectedBy: "ip" });
    const next = await limits.check({ user: "u", ip: "2.2.2.2" });
    expect(next.ok).toBe(true);
    expect(next.limits.map((l) => [l.name, l.remaining])).toEqual([
      ["user", 2],
      ["ip", 1],
    ]);

    // Middleware: user "m" already spent 1 token on Redis, but the insurance bucket is its own: 2, then 429.
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await fetch(url, { headers: { "x-user": "m" } })).status);
    expect(codes).toEqual([200, 200, 429]);
    // No onError: one warning for the outage, not one per request.
    const ours = warnings.filter((w) => (w as { code?: string }).code === "FSK_RATELIMIT_UNAVAILABLE");
    expect(ours).toHaveLength(1);
    expect(ours[0]!.message).toMatch(/failMode "local"/);
  });
});

describe("before the client has connected", () => {
  it("fail-closed answers 503 and says so once (a warning); failMode local answers from the insurance bucket", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => void warnings.push(w);
    process.on("warning", onWarning);
    // lazyConnect: the client stays in "wait", as one just created is until its connection is up.
    const idle = srv.client({ lazyConnect: true, enableOfflineQueue: false });
    idle.on("error", () => {});
    const mk = (failMode: "closed" | "local") =>
      fastifyRateLimit({
        limits: new RateLimits<FastifyRequest>([
          {
            name: "api",
            bucket: new TokenBucket(idle, { capacity: 1, refillPerSecond: 0.001, prefix: randomPrefix() }),
            key: () => "api",
          },
        ]),
        failMode,
      });
    const apps = [];
    try {
      for (const mode of ["closed", "local"] as const) {
        const app = Fastify();
        await app.register(mk(mode));
        app.get("/", async () => ({ ok: true }));
        apps.push(app);
      }
      const closed = [];
      for (let i = 0; i < 3; i++) closed.push((await apps[0]!.inject({ url: "/" })).statusCode);
      expect(closed).toEqual([503, 503, 503]);
      const ours = warnings.filter((w) => (w as { code?: string }).code === "FSK_RATELIMIT_UNAVAILABLE");
      expect(ours).toHaveLength(1);
      expect(ours[0]!.message).toMatch(/answered 503/);
      const local = [];
      for (let i = 0; i < 2; i++) local.push((await apps[1]!.inject({ url: "/" })).statusCode);
      expect(local).toEqual([200, 429]);
    } finally {
      process.off("warning", onWarning);
      for (const app of apps) await app.close();
    }
  });
});

describe("bad input to the new options changes nothing", () => {
  it("is refused with InvalidArgumentError", async () => {
    const prefix = randomPrefix();
    const ok = { capacity: 2, refillPerSecond: 1, prefix };
    const bad: unknown[] = [
      { ban: { after: 0, forMs: 10 } },
      { ban: { after: 2, forMs: -1 } },
      { ban: { after: 2, forMs: Number.NaN } },
      { ban: { after: Number.NaN, forMs: 10 } },
      { ban: { after: 2 } },
      { ban: { after: 2, forMs: 10, forSeconds: 1 } },
      { ban: "forever" },
      { localShare: 0 },
      { localShare: -0.5 },
      { localShare: 1.5 },
      { localShare: Number.NaN },
      { maxLocalKeys: 0 },
      { maxLocalKeys: Number.NaN },
      { failMode: "open" },
      { localRefusals: "yes" },
      { capacityy: 3 },
    ];
    for (const extra of bad) {
      expect(() => new TokenBucket(redis, { ...ok, ...(extra as object) })).toThrow(InvalidArgumentError);
    }
    const b = new TokenBucket(redis, ok);
    await expect(b.take("k", { cost: 1, costs: 2 } as never)).rejects.toThrow(/costs is not a known option/);
    const limit = { name: "a", bucket: b, key: () => "k" };
    expect(() => new RateLimits([limit], { failMode: "closed" as never })).toThrow(InvalidArgumentError);
    expect(() => new RateLimits([limit], { onRefundError: "log" as never })).toThrow(InvalidArgumentError);
    expect(() => new RateLimits([limit], { onRefundErorr: () => {} } as never)).toThrow(
      /did you mean onRefundError/,
    );
    expect(() => new RateLimits([{ ...limit, weight: 2 } as never])).toThrow(/weight is not a known option/);
    const limits = new RateLimits([limit]);
    expect(() => fastifyRateLimit({ limits, onError: "log" as never })).toThrow(InvalidArgumentError);
    expect(() => fastifyRateLimit({ limits, body: 42 as never })).toThrow(InvalidArgumentError);
    expect(() => fastifyRateLimit({ limits, timeoutMs: Number.NaN })).toThrow(InvalidArgumentError);
    expect(() => fastifyRateLimit({ limits, timeoutMs: -5 })).toThrow(InvalidArgumentError);
    expect(() => fastifyRateLimit({ limits, failmode: "local" } as never)).toThrow(/did you mean failMode/);
    expect(() => fastifyRateLimit({ limits, failMode: "ban" as never })).toThrow(InvalidArgumentError);
    expect(await redis.keys(`{${prefix}*`)).toEqual([]);
  });
});
