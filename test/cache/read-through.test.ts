// ReadThroughCache and PenetrationGuard on a private standalone redis-server: hits and misses, breakdown
// across 4 clients ("processes"), a dying loader, bounded waits, penetration, invalidation races, TTL jitter,
// stale-while-revalidate, bad input and outages.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { InvalidArgumentError, RedisUnavailableError } from "../../src/errors.js";
import {
  CacheWaitTimeoutError,
  PenetrationGuard,
  ReadThroughCache,
  type PenetrationGuardOptions,
  RedisBloomFilter,
  type ReadThroughCacheOptions,
} from "../../src/cache/index.js";
import { SpinLock } from "../../src/lock/index.js";
import { keyspace, randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Product {
  id: string;
  price: number;
}

/** A "database" that counts loads per id. */
function source(rows: Record<string, Product>, delayMs = 0) {
  const calls = new Map<string, number>();
  return {
    calls,
    total: () => [...calls.values()].reduce((a, b) => a + b, 0),
    load: async (id: string): Promise<Product | undefined> => {
      calls.set(id, (calls.get(id) ?? 0) + 1);
      if (delayMs > 0) await sleep(delayMs);
      return rows[id];
    },
  };
}

function cache(
  client: Redis,
  prefix: string,
  o: Partial<ReadThroughCacheOptions<Product>> & Pick<ReadThroughCacheOptions<Product>, "load">,
) {
  return new ReadThroughCache<Product>({ redis: client, ttlMs: 60_000, prefix, name: "products", ...o });
}

describe("ReadThroughCache basics", () => {
  it("loads a miss once, then serves hits from Redis with TTL plus jitter", async () => {
    const prefix = randomPrefix();
    const db = source({ a: { id: "a", price: 10 } });
    const c = cache(redis, prefix, { load: db.load, ttlMs: 10_000, jitterMs: 2_000 });
    expect(await c.get("a")).toEqual({ id: "a", price: 10 });
    expect(await c.get("a")).toEqual({ id: "a", price: 10 });
    expect(db.calls.get("a")).toBe(1);
    const k = c.keys("a");
    expect(k.entry).toBe(`{${prefix}:a}:c:products`);
    expect(await redis.get(k.entry)).toBe('v{"id":"a","price":10}');
    const pttl = await redis.pttl(k.entry);
    expect(pttl).toBeGreaterThan(9_000);
    expect(pttl).toBeLessThanOrEqual(12_000);
    // The lock is gone and left no fencing counter behind: only the entry remains.
    expect(Object.keys(await keyspace(redis, `*${prefix}*`))).toEqual([k.entry]);
  });

  it("reads the hits of one tick with one MGET, each caller getting its own value", async () => {
    const prefix = randomPrefix();
    const rows = Object.fromEntries(
      Array.from({ length: 10 }, (_, i) => [`p${i}`, { id: `p${i}`, price: i }]),
    );
    const db = source(rows);
    const c = cache(redis, prefix, { load: db.load });
    await c.prewarm(Object.entries(rows));
    await redis.config("RESETSTAT");
    const got = await Promise.all([...Object.keys(rows), "p3", "p3"].map((id) => c.get(id)));
    expect(got).toEqual([...Object.values(rows), rows.p3, rows.p3]);
    const info = await redis.info("commandstats");
    expect(/cmdstat_mget:calls=(\d+)/.exec(info)?.[1]).toBe("1");
    expect(/cmdstat_get:calls=(\d+)/.exec(info)).toBeNull();
    expect(db.total()).toBe(0);
  });

  it("negative-caches ids that do not exist, for negativeTtlMs", async () => {
    const prefix = randomPrefix();
    const db = source({});
    const c = cache(redis, prefix, { load: db.load, negativeTtlMs: 300 });
    expect(await c.get("nope")).toBeUndefined();
    expect(await c.get("nope")).toBeUndefined();
    expect(db.calls.get("nope")).toBe(1);
    expect(await redis.get(c.keys("nope").entry)).toBe("n");
    expect(await redis.pttl(c.keys("nope").entry)).toBeLessThanOrEqual(300);
    await sleep(400);
    expect(await c.get("nope")).toBeUndefined();
    expect(db.calls.get("nope")).toBe(2);
  });

  it("shares one load among concurrent gets in one process, and a load error among them", async () => {
    const prefix = randomPrefix();
    let fail = true;
    const calls: string[] = [];
    const c = cache(redis, prefix, {
      load: async (id) => {
        calls.push(id);
        await sleep(50);
        if (fail) throw new Error("db down");
        return { id, price: 1 };
      },
    });
    const results = await Promise.allSettled(Array.from({ length: 50 }, () => c.get("x")));
    expect(results.every((r) => r.status === "rejected" && (r.reason as Error).message === "db down")).toBe(
      true,
    );
    expect(calls).toEqual(["x"]);
    expect(await redis.exists(c.keys("x").entry)).toBe(0); // nothing cached on failure
    fail = false;
    expect(await c.get("x")).toEqual({ id: "x", price: 1 });
    expect(calls).toEqual(["x", "x"]);
  });

  it("uses a custom serializer", async () => {
    const prefix = randomPrefix();
    const c = new ReadThroughCache<Date>({
      redis,
      prefix,
      ttlMs: 1000,
      load: async () => new Date(86_400_000),
      serializer: { serialize: (d) => String(d.getTime()), deserialize: (s) => new Date(Number(s)) },
    });
    expect(await c.get("d")).toEqual(new Date(86_400_000));
    expect(await redis.get(c.keys("d").entry)).toBe("v86400000");
    expect((await c.get("d"))?.getTime()).toBe(86_400_000);
  });

  it("rejects bad ids and options, changing nothing", async () => {
    const prefix = randomPrefix();
    const db = source({});
    const c = cache(redis, prefix, { load: db.load });
    for (const bad of ["", "a{b}", "a b", "x".repeat(201), "\u0000", 5 as unknown as string]) {
      await expect(c.get(bad)).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(c.invalidate(bad)).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    await expect(c.prewarm([["a{", { id: "a", price: 1 }]])).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(c.prewarm([["a", null as unknown as Product]])).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(db.total()).toBe(0);
    expect(await redis.keys(`*${prefix}*`)).toEqual([]);
    const opts = { redis, load: db.load, ttlMs: 1000 };
    const arg = (o: object) => {
      try {
        new ReadThroughCache({ ...opts, ...o } as ReadThroughCacheOptions<Product>);
      } catch (err) {
        expect(err).toBeInstanceOf(InvalidArgumentError);
        return (err as InvalidArgumentError).argument;
      }
      return "none";
    };
    expect(arg({ ttlMs: 0 })).toBe("ttlMs");
    expect(arg({ ttlMs: 1.5 })).toBe("ttlMs");
    expect(arg({ jitterMs: -1 })).toBe("jitterMs");
    expect(arg({ load: "x" })).toBe("load");
    expect(arg({ redis: {} })).toBe("redis");
    expect(arg({ lock: {} })).toBe("lock");
    expect(arg({ serializer: { serialize: JSON.stringify } })).toBe("serializer");
    expect(arg({ name: "a b" })).toBe("name");
    expect(arg({ waitTimeoutMs: 0 })).toBe("waitTimeoutMs");
    expect(arg({ ttlMS: 1000 })).toBe("options.ttlMS"); // a misspelled option is no silent default
    expect(arg({ staleWhileRevalidateMs: Number.NaN })).toBe("staleWhileRevalidateMs");
    expect(arg({ onError: "log" })).toBe("onError");
    expect(arg({})).toBe("none");
  });

  it("throws RedisUnavailableError when Redis is down, and never loads", async () => {
    const own = await startRedis();
    const client = own.client({ maxRetriesPerRequest: 0 });
    client.on("error", () => {});
    const db = source({ a: { id: "a", price: 1 } });
    const c = cache(client, randomPrefix(), { load: db.load });
    expect(await c.get("a")).toEqual({ id: "a", price: 1 });
    await own.server.stop();
    await expect(c.get("b")).rejects.toBeInstanceOf(RedisUnavailableError);
    await expect(c.get("a")).rejects.toBeInstanceOf(RedisUnavailableError);
    expect(db.total()).toBe(1);
    await own.stop().catch(() => {});
  });
});

describe("ReadThroughCache across processes (breakdown)", () => {
  it("1,000 concurrent gets of one cold key from 4 clients call load exactly once", async () => {
    const prefix = randomPrefix();
    const db = source({ hot: { id: "hot", price: 99 } }, 200);
    const caches = Array.from({ length: 4 }, () => cache(srv.client(), prefix, { load: db.load }));
    const gets = Array.from({ length: 1000 }, (_, i) => caches[i % 4]!.get("hot"));
    const values = await Promise.all(gets);
    expect(db.calls.get("hot")).toBe(1);
    expect(values.every((v) => v?.price === 99)).toBe(true);
  });

  it("many cold keys at once from 4 clients: exactly one load per key, missing ids included", async () => {
    const prefix = randomPrefix();
    const rows = Object.fromEntries(
      Array.from({ length: 40 }, (_, i) => [`k${i}`, { id: `k${i}`, price: i }]),
    );
    const db = source(rows, 30);
    const caches = Array.from({ length: 4 }, () => cache(srv.client(), prefix, { load: db.load }));
    const ids = [...Object.keys(rows), ...Array.from({ length: 20 }, (_, i) => `missing${i}`)];
    const gets = [];
    for (let round = 0; round < 5; round++) {
      for (const [n, id] of ids.entries())
        gets.push(caches[(n + round) % 4]!.get(id).then((v) => [id, v] as const));
    }
    for (const [id, v] of await Promise.all(gets)) expect(v).toEqual(rows[id]);
    expect(db.calls.size).toBe(ids.length);
    expect([...db.calls.values()].every((n) => n === 1)).toBe(true);
  });

  it("when the loading process dies, a waiting process loads (once) after its lock expires", async () => {
    const prefix = randomPrefix();
    const started: string[] = [];
    const deadClient = srv.client({ maxRetriesPerRequest: 0 });
    deadClient.on("error", () => {});
    const dying = cache(deadClient, prefix, {
      lockTtlMs: 300,
      load: async (id) => {
        started.push(`dying:${id}`);
        return new Promise<never>(() => {}); // hangs: the process is about to die
      },
    });
    const db = source({ k: { id: "k", price: 5 } });
    const survivor = cache(srv.client(), prefix, { lockTtlMs: 300, waitTimeoutMs: 5_000, load: db.load });
    void dying.get("k").catch(() => {});
    for (let i = 0; i < 100 && started.length === 0; i++) await sleep(10);
    expect(started).toEqual(["dying:k"]);
    const waiting = survivor.get("k");
    await sleep(100); // an observation window: however long, the holder's lock is extended meanwhile
    expect(db.total()).toBe(0); // still waiting for the holder
    deadClient.disconnect(); // the crash: its lock is no longer extended
    expect(await waiting).toEqual({ id: "k", price: 5 });
    expect(db.calls.get("k")).toBe(1);
  });

  it("bounds the wait for a slow loader in another process with CacheWaitTimeoutError", async () => {
    const prefix = randomPrefix();
    let loads = 0;
    let loading!: () => void;
    const started = new Promise<void>((r) => (loading = r));
    let finish!: () => void;
    const released = new Promise<void>((r) => (finish = r));
    const load = async (id: string) => {
      loads++;
      loading();
      await released; // the holder's load lasts until the waiter has given up
      return { id, price: 1 };
    };
    const holder = cache(srv.client(), prefix, { load });
    const waiter = cache(srv.client(), prefix, { load, waitTimeoutMs: 300 });
    const first = holder.get("slow");
    await started; // the holder is loading
    const err = await waiter.get("slow").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CacheWaitTimeoutError);
    expect(err).toMatchObject({ code: "CACHE_WAIT_TIMEOUT", id: "slow" });
    finish();
    expect(await first).toEqual({ id: "slow", price: 1 });
    expect(loads).toBe(1);
    expect(await waiter.get("slow")).toEqual({ id: "slow", price: 1 });
  });

  it("works with a lock passed in (a SpinLock of the caller's)", async () => {
    const prefix = randomPrefix();
    const db = source({ a: { id: "a", price: 3 } }, 50);
    const caches = Array.from({ length: 4 }, () => {
      const client = srv.client();
      return cache(client, prefix, { load: db.load, lock: new SpinLock(client, { prefix, ttlMs: 2_000 }) });
    });
    const values = await Promise.all(Array.from({ length: 200 }, (_, i) => caches[i % 4]!.get("a")));
    expect(values.every((v) => v?.price === 3)).toBe(true);
    expect(db.calls.get("a")).toBe(1);
  });
});

describe("ReadThroughCache invalidation, prewarm, jitter, stale-while-revalidate", () => {
  it("a load that began before invalidate cannot store the old value", async () => {
    const prefix = randomPrefix();
    let version = 1;
    let loads = 0;
    let read!: () => void;
    const hasRead = new Promise<void>((r) => (read = r));
    let finish!: () => void;
    const released = new Promise<void>((r) => (finish = r));
    const c = cache(redis, prefix, {
      load: async (id) => {
        loads++;
        const seen = version;
        read();
        if (seen === 1) await released;
        return { id, price: seen };
      },
    });
    const inFlight = c.get("p");
    await hasRead;
    version = 2; // the database changes …
    await c.invalidate("p"); // … and the writer invalidates, while the old read is still in flight
    finish();
    expect(await inFlight).toEqual({ id: "p", price: 1 }); // that caller gets what was read
    expect(await redis.exists(c.keys("p").entry)).toBe(0); // but it was not stored
    expect(await c.get("p")).toEqual({ id: "p", price: 2 });
    expect(loads).toBe(2);
    expect(await redis.get(c.keys("p").generation)).toBe("1");
  });

  it("invalidate drops values and missing markers alike", async () => {
    const prefix = randomPrefix();
    const rows: Record<string, Product> = {};
    const db = source(rows);
    const c = cache(redis, prefix, { load: db.load });
    expect(await c.get("new")).toBeUndefined();
    rows.new = { id: "new", price: 7 };
    expect(await c.get("new")).toBeUndefined(); // negative-cached
    await c.invalidate("new");
    expect(await c.get("new")).toEqual({ id: "new", price: 7 });
  });

  it("prewarm fills entries with jittered TTLs so they do not expire together", async () => {
    const prefix = randomPrefix();
    const db = source({});
    const c = cache(redis, prefix, { load: db.load, ttlMs: 100_000, jitterMs: 50_000 });
    const entries = Array.from({ length: 300 }, (_, i) => [`w${i}`, { id: `w${i}`, price: i }] as const);
    expect(await c.prewarm(new Map(entries))).toBe(300);
    const ttls = await Promise.all(entries.map(([id]) => redis.pttl(c.keys(id).entry)));
    expect(Math.min(...ttls)).toBeGreaterThan(95_000);
    expect(Math.max(...ttls)).toBeLessThanOrEqual(150_000);
    expect(Math.max(...ttls) - Math.min(...ttls)).toBeGreaterThan(30_000);
    expect(new Set(ttls.map((t) => Math.floor(t / 1000))).size).toBeGreaterThan(30);
    expect(await c.get("w7")).toEqual({ id: "w7", price: 7 });
    expect(db.total()).toBe(0);
  });

  it("stale-while-revalidate serves the old value once and refreshes it in the background, once", async () => {
    const prefix = randomPrefix();
    let price = 1;
    const calls: number[] = [];
    let finish!: () => void;
    const released = new Promise<void>((r) => (finish = r));
    const load = async (id: string) => {
      calls.push(price);
      if (calls.length > 1) await released; // the refresh lasts until the stale reads are done
      return { id, price };
    };
    const opts = { load, ttlMs: 200, jitterMs: 0, staleWhileRevalidateMs: 30_000 };
    const a = cache(srv.client(), prefix, opts);
    const b = cache(srv.client(), prefix, opts);
    expect(await a.get("s")).toEqual({ id: "s", price: 1 });
    const staleAt = async () => Number(/^s(\d+)\|/.exec((await redis.get(a.keys("s").entry))!)![1]);
    const firstStaleAt = await staleAt();
    price = 2;
    await sleep(300); // time passes: past ttlMs, within the stale window
    const stale = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).get("s")));
    expect(stale.every((v) => v?.price === 1)).toBe(true); // served at once, no waiting on the load
    finish();
    const deadline = Date.now() + 20_000; // polled: the refresh stores in the background
    while ((await a.get("s"))?.price !== 2 && Date.now() < deadline) await sleep(20);
    expect(await a.get("s")).toEqual({ id: "s", price: 2 });
    expect(calls).toEqual([1, 2]); // one background refresh across both processes
    // Stored again, stamped with a later stale time (Redis TIME at the refresh + ttlMs).
    expect(await staleAt()).toBeGreaterThanOrEqual(firstStaleAt + 300);
  });
});

describe("ReadThroughCache with a PenetrationGuard (penetration)", () => {
  async function setup(prefix: string, client: Redis = redis) {
    const filter = new RedisBloomFilter(client, "products", {
      capacity: 10_000,
      errorRate: 0.01,
      prefix,
      mirror: true,
    });
    const guard = new PenetrationGuard({ filter, redis: client, prefix, negativeTtlMs: 60_000 });
    return { filter, guard };
  }

  it("10,000 gets of random unknown ids: 0 loads for ids the filter rejects, at most 1 per id that slips through", async () => {
    const prefix = randomPrefix();
    const rows = Object.fromEntries(
      Array.from({ length: 5000 }, (_, i) => [`sku-${i}`, { id: `sku-${i}`, price: i }]),
    );
    const db = source(rows);
    const { filter, guard } = await setup(prefix);
    await filter.addMany(Object.keys(rows));
    await filter.refresh();
    // Two processes share the negative cache.
    const other = srv.client();
    const second = await setup(prefix, other);
    await second.filter.refresh();
    const caches = [
      cache(redis, prefix, { load: db.load, guard }),
      cache(other, prefix, { load: db.load, guard: second.guard }),
    ];
    const unknown = Array.from({ length: 10_000 }, () => randomUUID());
    for (let round = 0; round < 2; round++) {
      const results = await Promise.all(unknown.map((id, i) => caches[(i + round) % 2]!.get(id)));
      expect(results.every((r) => r === undefined)).toBe(true);
    }
    const rejected = unknown.filter((id) => filter.mightContainLocal(id) === false);
    const slipped = unknown.filter((id) => filter.mightContainLocal(id) === true);
    expect(rejected.length + slipped.length).toBe(10_000);
    for (const id of rejected) expect(db.calls.get(id)).toBeUndefined();
    for (const id of slipped) expect(db.calls.get(id)).toBe(1);
    expect(db.total()).toBe(slipped.length);
    expect(slipped.length).toBeLessThan(300); // about errorRate × 10,000 at a half-full filter
    // Rejected ids never touched the cache's keys.
    const entryKeys = await redis.keys(`*${prefix}*:c:products`);
    expect(entryKeys.length).toBe(slipped.length);
    // Real products are still served.
    expect(await caches[0]!.get("sku-42")).toEqual({ id: "sku-42", price: 42 });
    filter.close();
    second.filter.close();
  }, 120_000);

  it("honours the guard's negative cache, and invalidate lets a newly created item through", async () => {
    const prefix = randomPrefix();
    const rows: Record<string, Product> = { a: { id: "a", price: 1 } };
    const db = source(rows);
    const { filter, guard } = await setup(prefix);
    await filter.add("a");
    await filter.add("gone");
    await filter.refresh();
    const c = cache(redis, prefix, { load: db.load, guard });
    expect(await guard.check("a")).toBe("maybe");
    expect(await guard.check("brand-new")).toBe("absent");
    await guard.rememberMissing("gone");
    expect(await guard.check("gone")).toBe("absent");
    expect(await c.get("gone")).toBeUndefined();
    expect(db.calls.get("gone")).toBeUndefined(); // the guard said absent: no load
    rows["brand-new"] = { id: "brand-new", price: 2 };
    expect(await c.get("brand-new")).toBeUndefined(); // not in the filter yet
    await c.invalidate("brand-new");
    expect(await guard.check("brand-new")).toBe("maybe");
    expect(await c.get("brand-new")).toEqual({ id: "brand-new", price: 2 });
    // prewarm adds ids to the filter and clears their negative entries
    await guard.rememberMissing("late");
    await c.prewarm([["late", { id: "late", price: 3 }]]);
    expect(await guard.check("late")).toBe("maybe");
    expect(await c.get("late")).toEqual({ id: "late", price: 3 });
    expect(db.calls.get("late")).toBeUndefined();
    filter.close();
  });

  it("PenetrationGuard validates its input and options", async () => {
    const prefix = randomPrefix();
    const { filter, guard } = await setup(prefix);
    await expect(guard.check("a{b}")).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(guard.rememberMissing("")).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(() => new PenetrationGuard({ filter, redis, negativeTtlMs: 0 })).toThrow(InvalidArgumentError);
    expect(() => new PenetrationGuard({ filter: {} as RedisBloomFilter, redis })).toThrow(
      InvalidArgumentError,
    );
    expect(
      () => new PenetrationGuard({ filter, redis, negativeTTLMs: 5 } as unknown as PenetrationGuardOptions),
    ).toThrow(/negativeTTLMs is not a known option \(did you mean negativeTtlMs\?\)/);
    expect(guard.negativeKey("x")).toBe(`{${prefix}:x}:miss:products`);
    expect(await redis.keys(`*${prefix}*`)).toEqual([]);
    filter.close();
  });
});
