// Consistency edges of the cache module: a get after invalidate never joins a load that read the old value,
// prewarm wins over a load that read the source before the item existed, the mirror's refresh() reads after
// its call, close() stays closed, a shape conflict is thrown rather than answered from a stale copy, and bad
// input is refused before anything is written.
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PenetrationGuard, ReadThroughCache, RedisBloomFilter } from "../../src/cache/index.js";
import { ConflictError, InvalidArgumentError } from "../../src/errors.js";
import { keyspace, randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const shape = (prefix: string) => ({ capacity: 1000, errorRate: 0.01, prefix });

async function commandCalls(command: string): Promise<number> {
  const info = await redis.info("commandstats");
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
}

/** A promise and its resolver: a test waits for an event instead of sleeping. */
function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe("ReadThroughCache", () => {
  it("a get that starts after invalidate() resolved gets the new value, not a load begun before", async () => {
    let version = 1;
    const loads: { seen: number; release: () => void }[] = [];
    const firstRead = deferred();
    const cache = new ReadThroughCache<{ v: number }>({
      redis,
      prefix: randomPrefix(),
      ttlMs: 60_000,
      load: async () => {
        const seen = version;
        const gate = deferred();
        loads.push({ seen, release: gate.resolve });
        firstRead.resolve();
        if (seen === 1) await gate.promise; // held until the change is done
        return { v: seen };
      },
    });
    const before = cache.get("x");
    await firstRead.promise; // the first load has read version 1 and is still running
    version = 2;
    await cache.invalidate("x");
    const after = cache.get("x"); // must not join the load that read version 1
    loads[0]!.release(); // that load ends; its store is refused, and it releases the loader lock
    expect(await after).toEqual({ v: 2 });
    expect(loads.map((l) => l.seen)).toEqual([1, 2]);
    // The first caller gets what its load read; that load did not store it over the new value.
    expect(await before).toEqual({ v: 1 });
    expect(await cache.get("x")).toEqual({ v: 2 });
    expect(await redis.get(cache.keys("x").entry)).toBe('v{"v":2}');
    expect(loads).toHaveLength(2);
  });

  it("prewarm wins over a load that read the source before the item existed", async () => {
    const rows = new Map<string, { price: number }>();
    const read = deferred();
    const release = deferred();
    let loads = 0;
    const cache = new ReadThroughCache<{ price: number }>({
      redis,
      prefix: randomPrefix(),
      ttlMs: 60_000,
      negativeTtlMs: 60_000,
      load: async (id) => {
        loads++;
        const row = rows.get(id);
        read.resolve();
        await release.promise;
        return row;
      },
    });
    const early = cache.get("sku"); // a visitor before the product exists
    await read.promise;
    rows.set("sku", { price: 5 });
    await cache.prewarm([["sku", { price: 5 }]]);
    release.resolve();
    expect(await early).toBeUndefined();
    expect(await cache.get("sku")).toEqual({ price: 5 }); // not the early load's "missing" marker
    expect(loads).toBe(1);
  });

  it('refuses a name with \':\' ("products:gen" would be the generation key of "products")', () => {
    expect(
      () => new ReadThroughCache({ redis, ttlMs: 1_000, load: async () => 1, name: "products:gen" }),
    ).toThrow(/name must not contain ':'/);
  });

  it("prewarm refuses bad input before writing anything (filter included)", async () => {
    const prefix = randomPrefix();
    const filter = new RedisBloomFilter(redis, "p", shape(prefix));
    const guard = new PenetrationGuard({ filter, redis, prefix });
    const cache = new ReadThroughCache<unknown>({ redis, ttlMs: 10_000, load: async () => 1, prefix, guard });
    const before = await keyspace(redis, `*${prefix}*`);
    await expect(cache.prewarm(null as never)).rejects.toThrow(InvalidArgumentError);
    await expect(
      cache.prewarm([
        ["ok", { n: 1 }],
        ["bad", { n: 1n }],
      ]),
    ).rejects.toThrow(/value of bad could not be serialized/);
    expect(await keyspace(redis, `*${prefix}*`)).toEqual(before);
  });
});

describe("PenetrationGuard", () => {
  it("forget() wins over a stale miss reported after it (a lookup made before the item existed)", async () => {
    const prefix = randomPrefix();
    const filter = new RedisBloomFilter(redis, "products", shape(prefix));
    const guard = new PenetrationGuard({ filter, redis, negativeTtlMs: 30_000 });
    const cache = new ReadThroughCache<string>({
      redis,
      prefix,
      ttlMs: 60_000,
      guard,
      load: async () => "new",
    });
    await filter.add("sku-9");
    expect(await guard.check("sku-9")).toBe("maybe"); // a request looks it up: not in the database yet
    await cache.invalidate("sku-9"); // meanwhile it is created (invalidate calls guard.forget)
    await guard.rememberMissing("sku-9"); // the request reports its miss late
    expect(await guard.check("sku-9")).toBe("maybe");
    expect(await cache.get("sku-9")).toBe("new");
    // A real miss is still remembered.
    await filter.add("sku-10");
    await guard.rememberMissing("sku-10");
    expect(await guard.check("sku-10")).toBe("absent");
  });

  it("guards over same-named filters of two prefixes keep their negative entries apart", async () => {
    const [a, b] = [randomPrefix(), randomPrefix()];
    const shopA = new PenetrationGuard({ filter: new RedisBloomFilter(redis, "products", shape(a)), redis });
    const shopB = new PenetrationGuard({ filter: new RedisBloomFilter(redis, "products", shape(b)), redis });
    await shopA.filter.add("sku-1");
    await shopB.filter.add("sku-1");
    await shopA.rememberMissing("sku-1");
    expect(await shopA.check("sku-1")).toBe("absent");
    expect(await shopB.check("sku-1")).toBe("maybe");
  });
});

describe("RedisBloomFilter", () => {
  it("a mirror reloads when the filter's keys were deleted and built again to the same counts", async () => {
    const opts = shape(randomPrefix());
    const reader = new RedisBloomFilter(redis, "p", { ...opts, mirror: { refreshIntervalMs: 20 } });
    const writer = new RedisBloomFilter(srv.client(), "p", opts);
    try {
      await writer.add("a");
      await writer.add("b");
      await reader.refresh();
      const k = writer.keys();
      await redis.del(k.meta, k.pending, ...k.segments); // a Redis restarted empty, or deleted for good
      await writer.add("x");
      await writer.add("y"); // the same version and add counts as before
      // Polled with a deadline: the reader's timer picks up x, and y with the next tick.
      const both = () => reader.mightContainLocal("x") === true && reader.mightContainLocal("y") === true;
      const deadline = Date.now() + 10_000;
      while (!both() && Date.now() < deadline) await sleep(10);
      expect([reader.mightContainLocal("x"), reader.mightContainLocal("y")]).toEqual([true, true]);
    } finally {
      reader.close();
    }
  });

  it("await refresh() holds every add that completed before the call, even with a reload in flight", async () => {
    const prefix = randomPrefix();
    // A 2.4 MB bitmap: a reload's reply takes long enough for another client's add to land meanwhile.
    const opts = { capacity: 2_000_000, errorRate: 0.01, prefix };
    const writer = new RedisBloomFilter(srv.client(), "r", opts);
    await writer.addMany(Array.from({ length: 2000 }, (_, i) => `seed-${i}`));
    const reader = new RedisBloomFilter(srv.client(), "r", {
      ...opts,
      mirror: { refreshIntervalMs: 60_000 },
    });
    await reader.refresh();
    let misses = 0;
    for (let round = 0; round < 10; round++) {
      const inFlight = reader.refresh();
      await writer.add(`new-${round}`);
      await reader.refresh();
      if (reader.mightContainLocal(`new-${round}`) !== true) misses++;
      await inFlight;
    }
    reader.close();
    expect(misses).toBe(0);
  });

  it("close() stays closed: checks answer from the last copy without restarting the timer", async () => {
    const prefix = randomPrefix();
    const f = new RedisBloomFilter(srv.client({ connectionName: "closed-mirror" }), "m", {
      ...shape(prefix),
      mirror: { refreshIntervalMs: 20 },
    });
    await f.refresh();
    f.close();
    expect(f.mightContainLocal("x")).toBe(false);
    expect(await f.mightContain("x")).toBe(false);
    // A witness with the same interval keeps refreshing: once it has asked 5 times, a running timer of the
    // closed mirror would have asked too, and its connection's last command would be that HMGET.
    const witness = new RedisBloomFilter(srv.client(), "m", {
      ...shape(prefix),
      mirror: { refreshIntervalMs: 20 },
    });
    const before = await commandCalls("hmget");
    await witness.refresh();
    const deadline = Date.now() + 10_000;
    while ((await commandCalls("hmget")) < before + 5 && Date.now() < deadline) await sleep(10);
    witness.close();
    expect(await commandCalls("hmget")).toBeGreaterThanOrEqual(before + 5);
    const clients = await redis.client("LIST");
    const closed = String(clients)
      .split("\n")
      .find((line) => line.includes("name=closed-mirror"));
    expect(closed).toMatch(/ cmd=exec /); // its last command is still the reload of refresh()
    await f.refresh(); // starts it again
    f.close();
  });

  it("a mirror loaded before another client stored another shape throws the conflict instead of answering", async () => {
    const prefix = randomPrefix();
    const errors: unknown[] = [];
    const a = new RedisBloomFilter(srv.client(), "s", {
      ...shape(prefix),
      mirror: { refreshIntervalMs: 20 },
      onError: (e) => errors.push(e),
    });
    await a.refresh(); // nothing stored yet
    const b = new RedisBloomFilter(srv.client(), "s", { ...shape(prefix), capacity: 5000 });
    await b.add("x");
    const deadline = Date.now() + 5_000;
    while (!errors.some((e) => e instanceof ConflictError) && Date.now() < deadline) await sleep(10);
    expect(errors.some((e) => e instanceof ConflictError)).toBe(true);
    await expect(a.mightContain("x")).rejects.toThrow(ConflictError);
    a.close();
  });

  it("rebuild and addMany refuse what is no iterable of strings, before writing or superseding anything", async () => {
    const prefix = randomPrefix();
    const a = new RedisBloomFilter(srv.client(), "f", shape(prefix));
    const b = new RedisBloomFilter(srv.client(), "f", shape(prefix));
    await a.addMany(["sku-1", "sku-2"]);
    const started = deferred();
    const resume = deferred();
    async function* slow() {
      started.resolve(); // read only after the rebuild began
      yield "sku-1";
      await resume.promise;
      yield "sku-2";
    }
    const running = a.rebuild(slow()); // a legitimate rebuild elsewhere
    await started.promise;
    await expect(b.rebuild(null as never)).rejects.toThrow(InvalidArgumentError);
    await expect(b.rebuild("sku-3" as Iterable<string>)).rejects.toThrow(/not a string/);
    await expect(b.addMany(null as never)).rejects.toThrow(InvalidArgumentError);
    await expect(b.addMany("abc" as Iterable<string>)).rejects.toThrow(InvalidArgumentError);
    resume.resolve();
    expect(await running).toMatchObject({ ok: true, items: 2 });
    expect(await a.mightContainMany(["sku-1", "sku-2", "s", "a"])).toEqual([true, true, false, false]);
  });
});
