// RedisBloomFilter on a private standalone redis-server: sizing, no false negatives, the measured
// false-positive rate (through Redis and through the mirror), splitting over keys, rebuild, the mirror.
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { BloomFilter } from "bloom-filters";
import { ConflictError, InvalidArgumentError } from "../../src/errors.js";
import { RedisBloomFilter } from "../../src/cache/index.js";
import { keyspace, randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const range = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i));
const count = (xs: boolean[], v: boolean) => xs.filter((x) => x === v).length;

/** A UUID-shaped id derived from `seed` (SHA-256), so "random" ids repeat across runs. */
function uuidLike(seed: string): string {
  const h = createHash("sha256").update(seed).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

describe("RedisBloomFilter sizing", () => {
  it("takes the textbook optimum: m = ceil(-n ln p / (ln 2)^2), k = round(m/n ln 2)", () => {
    const size = (capacity: number, errorRate: number) => {
      const f = new RedisBloomFilter(redis, "s", { capacity, errorRate });
      return [f.bits, f.hashes];
    };
    expect(size(1_000_000, 0.01)).toEqual([9_585_059, 7]);
    expect(size(1000, 0.001)).toEqual([14_378, 10]);
    expect(size(100, 0.5)).toEqual([145, 1]); // round(1.005), where a ceil would give 2
    expect(size(10, 0.01)).toEqual([96, 7]);
    // bloom-filters' public factory sizes its bitmap by the same formula.
    for (const [n, p] of [
      [1_000_000, 0.01],
      [30_000, 0.001],
      [777, 0.05],
    ] as const) {
      expect(size(n, p)[0]).toBe(BloomFilter.create(n, p).size);
    }
    const f = new RedisBloomFilter(redis, "s", { capacity: 1_000_000, errorRate: 0.01 });
    expect(f.segmentCount).toBe(1);
    const split = new RedisBloomFilter(redis, "s", {
      capacity: 1_000_000,
      errorRate: 0.01,
      bitsPerKey: 2 ** 20,
    });
    expect(split.segmentCount).toBe(Math.ceil(f.bits / 2 ** 20));
  });

  it("rejects bad options, naming the option", () => {
    const make = (o: object, name = "f") =>
      new RedisBloomFilter(redis, name, { capacity: 10, errorRate: 0.01, ...o });
    const arg = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        expect(err).toBeInstanceOf(InvalidArgumentError);
        return (err as InvalidArgumentError).argument;
      }
      throw new Error("did not throw");
    };
    expect(arg(() => make({ capacity: 0 }))).toBe("capacity");
    expect(arg(() => make({ capacity: 1.5 }))).toBe("capacity");
    expect(arg(() => make({ errorRate: 0 }))).toBe("errorRate");
    expect(arg(() => make({ errorRate: 0.9 }))).toBe("errorRate");
    expect(arg(() => make({ errorRate: Number.NaN }))).toBe("errorRate");
    expect(arg(() => make({ capacity: 2 ** 40, errorRate: 0.001 }))).toBe("capacity");
    expect(arg(() => make({ bitsPerKey: 1001 }))).toBe("bitsPerKey");
    expect(arg(() => make({ bitsPerKey: 1028 }))).toBe("bitsPerKey");
    expect(arg(() => make({ capacity: 10_000_000, bitsPerKey: 1024 }))).toBe("bitsPerKey");
    expect(arg(() => make({ mirror: { refreshIntervalMs: 0 } }))).toBe("mirror.refreshIntervalMs");
    expect(arg(() => make({ mirror: { refreshIntervalMS: 50 } }))).toBe("mirror.refreshIntervalMS");
    expect(arg(() => make({ mirror: "yes" }))).toBe("mirror");
    expect(arg(() => make({ errorrate: 0.01 }))).toBe("options.errorrate");
    expect(arg(() => make({ onError: "log" }))).toBe("onError");
    expect(arg(() => make({}, "a{b}"))).toBe("name");
    expect(arg(() => make({}, ""))).toBe("name");
    expect(arg(() => new RedisBloomFilter({} as Redis, "f", { capacity: 1, errorRate: 0.1 }))).toBe("redis");
  });
});

describe("RedisBloomFilter through Redis", () => {
  it("adds and checks single items and batches; clear empties it", async () => {
    const f = new RedisBloomFilter(redis, "p", { capacity: 1000, errorRate: 0.01, prefix: randomPrefix() });
    expect(await f.mightContain("a")).toBe(false);
    await f.add("a");
    await f.addMany(["b", "c", "", "ünïcødé", "🚀"]);
    expect(await f.mightContain("a")).toBe(true);
    expect(await f.mightContainMany(["a", "b", "c", "", "ünïcødé", "🚀"])).toEqual(Array(6).fill(true));
    await f.clear();
    expect(await f.mightContainMany(["a", "b", "c"])).toEqual([false, false, false]);
    await expect(f.add(42 as unknown as string)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(f.mightContain(undefined as unknown as string)).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it("checks of one tick share script calls (at most 32 items each), each with its own answer", async () => {
    const f = new RedisBloomFilter(redis, "batch", {
      capacity: 1000,
      errorRate: 0.01,
      prefix: randomPrefix(),
    });
    const members = range(50, (i) => `m${i}`);
    await f.addMany(members);
    await f.mightContain("warm-up"); // the first call also checks the stored shape
    await redis.config("RESETSTAT");
    const probes = [...members, ...range(50, (i) => `x${i}`)];
    const got = await Promise.all(probes.map((p) => f.mightContain(p)));
    expect(got.slice(0, 50).every(Boolean)).toBe(true);
    expect(count(got.slice(50), true)).toBeLessThan(5);
    const info = await redis.info("commandstats");
    const calls =
      Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0) +
      Number(/cmdstat_eval:calls=(\d+)/.exec(info)?.[1] ?? 0);
    expect(calls).toBe(4); // 100 checks: 32 + 32 + 32 + 4
  });

  it("keeps every key under the filter's hash tag", async () => {
    const prefix = randomPrefix();
    const f = new RedisBloomFilter(redis, "tags", {
      capacity: 20_000,
      errorRate: 0.01,
      prefix,
      bitsPerKey: 8192,
    });
    await f.addMany(range(2000, (i) => `x${i}`));
    const keys = await redis.keys(`*${prefix}*`);
    expect(keys.length).toBeGreaterThan(3);
    for (const key of keys) expect(key.startsWith(`{${prefix}:bf:tags}:`)).toBe(true);
    expect(f.keys().segments).toHaveLength(f.segmentCount);
  });

  it("0 false negatives over 100,000 members; FP rate over 100,000 non-members at most 1.5x the target", async () => {
    const errorRate = 0.01;
    const prefix = randomPrefix();
    const f = new RedisBloomFilter(redis, "fp", { capacity: 100_000, errorRate, prefix });
    const members = range(100_000, (i) => `sku-${i}`);
    await f.addMany(members);
    const hits = await f.mightContainMany(members);
    expect(count(hits, false)).toBe(0);
    const others = await f.mightContainMany(range(100_000, (i) => `sku-${i + 100_000}`));
    const rate = count(others, true) / 100_000;
    expect(rate).toBeLessThanOrEqual(1.5 * errorRate);
    expect(rate).toBeGreaterThan(0); // it is a Bloom filter, not a set

    // The same bitmap through a mirror in another "process" (its own client).
    const other = srv.client();
    const m = new RedisBloomFilter(other, "fp", {
      capacity: 100_000,
      errorRate,
      prefix: f.keys().meta.slice(1).split(":")[0],
      mirror: true,
    });
    await m.refresh();
    expect(m.mightContainLocal("sku-1")).toBe(true);
    expect(count(await m.mightContainMany(members), false)).toBe(0);
    const mirrored = await m.mightContainMany(range(100_000, (i) => `sku-${i + 100_000}`));
    expect(mirrored).toEqual(others); // same hashing, same bits: the same answers
    m.close();
  }, 120_000);

  it("differential: the FP rate is no worse than bloom-filters' at the same capacity and rate", async () => {
    const capacity = 50_000;
    const errorRate = 0.01;
    const f = new RedisBloomFilter(redis, "diff", { capacity, errorRate, prefix: randomPrefix() });
    const reference = BloomFilter.create(capacity, errorRate);
    const members = range(capacity, (i) => `order-${i}`);
    await f.addMany(members);
    for (const m of members) reference.add(m);
    const others = range(100_000, (i) => `order-${i + capacity}`);
    const ours = count(await f.mightContainMany(others), true) / others.length;
    const theirs = others.filter((o) => reference.has(o)).length / others.length;
    expect(ours).toBeGreaterThan(0);
    expect(ours).toBeLessThanOrEqual(1.5 * errorRate);
    // Both near the target: ours at most a quarter above the reference's measured rate.
    expect(ours).toBeLessThanOrEqual(theirs * 1.25);
  }, 120_000);

  it("FP rate holds for random ids and a tight target, split over many keys", async () => {
    const errorRate = 0.001;
    const opts = { capacity: 30_000, errorRate, bitsPerKey: 2 ** 14, prefix: randomPrefix() };
    const f = new RedisBloomFilter(redis, "split", opts);
    expect(f.segmentCount).toBeGreaterThan(20);
    // Ids that look random but are the same every run (a hash of the index): the measured rate is a
    // property of the filter, not of one run's luck.
    const members = range(30_000, (i) => uuidLike(`member-${i}`));
    await f.addMany(members);
    expect(count(await f.mightContainMany(members), false)).toBe(0);
    const probes = range(30_000, (i) => uuidLike(`probe-${i}`));
    const others = await f.mightContainMany(probes);
    expect(count(others, true) / 30_000).toBeLessThanOrEqual(1.5 * errorRate);
    const m = new RedisBloomFilter(srv.client(), "split", { ...opts, mirror: true });
    await m.refresh();
    expect(count(await m.mightContainMany(members), false)).toBe(0);
    expect(await m.mightContainMany(probes)).toEqual(others);
    m.close();
  }, 120_000);

  it("refuses a client configured with another shape, writing nothing", async () => {
    const prefix = randomPrefix();
    const a = new RedisBloomFilter(redis, "shape", { capacity: 1000, errorRate: 0.01, prefix });
    await a.add("x");
    const before = await keyspace(redis, `*${prefix}*`);
    const b = new RedisBloomFilter(srv.client(), "shape", { capacity: 2000, errorRate: 0.01, prefix });
    await expect(b.add("y")).rejects.toMatchObject({ code: "BLOOM_SHAPE_MISMATCH" });
    await expect(b.mightContain("x")).rejects.toBeInstanceOf(ConflictError);
    await expect(b.rebuild(["y"])).rejects.toBeInstanceOf(ConflictError);
    await expect(b.clear()).rejects.toBeInstanceOf(ConflictError);
    const c = new RedisBloomFilter(srv.client(), "shape", {
      capacity: 2000,
      errorRate: 0.01,
      prefix,
      mirror: true,
    });
    await expect(c.refresh()).rejects.toBeInstanceOf(ConflictError);
    expect(await keyspace(redis, `*${prefix}*`)).toEqual(before);
  });

  it("keeps working after SCRIPT FLUSH", async () => {
    const f = new RedisBloomFilter(redis, "flush", {
      capacity: 100,
      errorRate: 0.01,
      prefix: randomPrefix(),
    });
    await f.add("a");
    await redis.script("FLUSH");
    expect(await f.mightContain("a")).toBe(true);
    await redis.script("FLUSH");
    await f.add("b");
    expect(await f.mightContainMany(["a", "b"])).toEqual([true, true]);
  });
});

describe("RedisBloomFilter mirror", () => {
  it("answers locally, sees its own adds at once and other processes' adds after a refresh", async () => {
    const prefix = randomPrefix();
    const opts = { capacity: 10_000, errorRate: 0.01, prefix, mirror: { refreshIntervalMs: 50 } };
    const a = new RedisBloomFilter(srv.client(), "m", opts);
    const b = new RedisBloomFilter(srv.client(), "m", opts);
    expect(a.mightContainLocal("x")).toBeUndefined(); // starts loading
    await a.refresh();
    await b.refresh();
    expect(a.mightContainLocal("x")).toBe(false);
    await a.add("x");
    expect(a.mightContainLocal("x")).toBe(true); // own add: no reload needed
    expect(b.mightContainLocal("x")).toBe(false); // not yet
    const deadline = Date.now() + 20_000; // polled: b's timer picks up a's add
    while (!b.mightContainLocal("x") && Date.now() < deadline) await sleep(20);
    expect(b.mightContainLocal("x")).toBe(true);
    // A clear bumps the version: both mirrors empty themselves.
    await b.clear();
    expect(b.mightContainLocal("x")).toBe(false);
    while (a.mightContainLocal("x") && Date.now() < deadline + 20_000) await sleep(20);
    expect(a.mightContainLocal("x")).toBe(false);
    a.close();
    b.close();
    const plain = new RedisBloomFilter(redis, "m", { capacity: 10_000, errorRate: 0.01, prefix });
    await expect(plain.refresh()).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(plain.mightContainLocal("x")).toBeUndefined();
  });

  it("keeps the last good copy while Redis is unreachable and reports the error", async () => {
    const own = await startRedis();
    try {
      const errors: unknown[] = [];
      const client = own.client({ maxRetriesPerRequest: 0 });
      client.on("error", () => {}); // the outage is the point
      const f = new RedisBloomFilter(client, "down", {
        capacity: 100,
        errorRate: 0.01,
        mirror: { refreshIntervalMs: 20 },
        onError: (e) => errors.push(e),
      });
      await f.add("a");
      await f.refresh();
      await own.server.stop();
      // The refresh fails once ioredis gives up on the queued command: when depends on its reconnect timer.
      for (let waited = 0; errors.length === 0 && waited < 10_000; waited += 50) await sleep(50);
      expect(errors.length).toBeGreaterThan(0);
      expect(await f.mightContain("a")).toBe(true);
      expect(await f.mightContain("b")).toBe(false);
      f.close();
    } finally {
      await own.stop().catch(() => {});
    }
  });
});

describe("RedisBloomFilter.rebuild", () => {
  it("replaces the contents in one switch and bumps the version", async () => {
    const prefix = randomPrefix();
    const f = new RedisBloomFilter(redis, "r", {
      capacity: 1000,
      errorRate: 0.001,
      prefix,
      bitsPerKey: 4096,
    });
    await f.addMany(["old-1", "old-2", "both"]);
    const r = await f.rebuild(["both", "new-1"]);
    expect(r).toEqual({ ok: true, version: 1, items: 2 });
    expect(await f.mightContainMany(["old-1", "old-2", "both", "new-1"])).toEqual([false, false, true, true]);
    const keys = (await redis.keys(`*${prefix}*`)).sort();
    expect(keys.some((k) => k.includes(":build:"))).toBe(false); // staging renamed away
    expect(await redis.hget(f.keys().meta, "version")).toBe("1");
    expect(await redis.hget(f.keys().meta, "building")).toBeNull();
    // Live segments carry no TTL after the switch.
    for (const key of f.keys().segments) expect(await redis.pttl(key)).toBeLessThan(0);
    expect((await f.rebuild((async function* (): AsyncGenerator<string> {})())).ok).toBe(true);
    expect(await f.mightContain("both")).toBe(false);
  });

  it("keeps items added by any process while it runs", async () => {
    const prefix = randomPrefix();
    const f = new RedisBloomFilter(redis, "r2", { capacity: 1000, errorRate: 0.01, prefix, batchSize: 10 });
    const g = new RedisBloomFilter(srv.client(), "r2", { capacity: 1000, errorRate: 0.01, prefix });
    async function* slowly() {
      for (let i = 0; i < 50; i++) {
        if (i === 25) await g.add("added-meanwhile");
        yield `item-${i}`;
      }
    }
    const r = await f.rebuild(slowly());
    expect(r.ok).toBe(true);
    expect(await f.mightContainMany(["added-meanwhile", "item-0", "item-49"])).toEqual([true, true, true]);
    expect(await redis.exists(f.keys().pending)).toBe(0);
  });

  it("keeps an item added early in a rebuild that runs for many leases after it (the queue lives as long as the lease)", async () => {
    const prefix = randomPrefix();
    const opts = { capacity: 1000, errorRate: 0.01, prefix, rebuildLeaseMs: 200, batchSize: 1 };
    const f = new RedisBloomFilter(redis, "r6", opts);
    const g = new RedisBloomFilter(srv.client(), "r6", opts);
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    let added!: () => void;
    const addedNow = new Promise<void>((r) => (added = r));
    async function* slowSource() {
      started(); // read lazily: the rebuild has begun
      yield "first";
      await addedNow;
      await sleep(1000); // 5 leases with no add: only the heartbeat keeps the rebuild (and its queue) alive
      yield "last";
    }
    const rebuilding = f.rebuild(slowSource());
    await running;
    await g.add("added-during-rebuild");
    expect(await redis.llen(f.keys().pending)).toBe(f.hashes); // queued for the running rebuild
    added();
    expect(await rebuilding).toMatchObject({ ok: true, items: 2 });
    expect(await f.mightContainMany(["added-during-rebuild", "first", "last"])).toEqual([true, true, true]);
    expect(await redis.exists(f.keys().pending)).toBe(0);
  });

  it("the rebuild started last wins; the other is told and leaves nothing behind", async () => {
    const prefix = randomPrefix();
    const f = new RedisBloomFilter(redis, "r3", { capacity: 1000, errorRate: 0.01, prefix, batchSize: 5 });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let began!: () => void;
    const begun = new Promise<void>((r) => (began = r));
    async function* first() {
      began(); // read lazily: the rebuild has begun
      yield "first-0";
      await gate;
      for (let i = 1; i < 20; i++) yield `first-${i}`;
    }
    const a = f.rebuild(first());
    await begun;
    const b = await f.rebuild(["second"]);
    release();
    expect(b.ok).toBe(true);
    expect(await a).toEqual({ ok: false, reason: "SUPERSEDED" });
    expect(await f.mightContainMany(["second", "first-0", "first-19"])).toEqual([true, false, false]);
    expect((await redis.keys(`*${prefix}*build*`)).length).toBe(0);
  });

  it("clear() during a rebuild ends it: the rebuild is told SUPERSEDED and the filter stays empty", async () => {
    const prefix = randomPrefix();
    const f = new RedisBloomFilter(redis, "r3c", { capacity: 1000, errorRate: 0.01, prefix, batchSize: 5 });
    await f.add("before");
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let began!: () => void;
    const begun = new Promise<void>((r) => (began = r));
    async function* items() {
      began(); // read lazily: the rebuild has begun
      yield "rebuilt-0";
      await gate;
      for (let i = 1; i < 20; i++) yield `rebuilt-${i}`;
    }
    const running = f.rebuild(items());
    await begun;
    await f.clear();
    await f.add("after-clear");
    release();
    expect(await running).toEqual({ ok: false, reason: "SUPERSEDED" });
    expect(await f.mightContainMany(["after-clear", "before", "rebuilt-0", "rebuilt-19"])).toEqual([
      true,
      false,
      false,
      false,
    ]);
    expect((await redis.keys(`*${prefix}*build*`)).length).toBe(0);
    expect(await redis.exists(f.keys().pending)).toBe(0);
    // The next rebuild runs normally.
    expect(await f.rebuild(["next"])).toMatchObject({ ok: true, items: 1 });
    expect(await f.mightContainMany(["next", "after-clear"])).toEqual([true, false]);
  });

  it("an aborted rebuild leaves the live filter untouched", async () => {
    const prefix = randomPrefix();
    const f = new RedisBloomFilter(redis, "r4", { capacity: 1000, errorRate: 0.01, prefix, batchSize: 2 });
    await f.add("live");
    const ac = new AbortController();
    async function* items() {
      yield "a";
      yield "b";
      ac.abort(new Error("stop"));
      yield "c";
      yield "d";
    }
    await expect(f.rebuild(items(), { signal: ac.signal })).rejects.toThrow("stop");
    expect(await f.mightContainMany(["live", "a"])).toEqual([true, false]);
    expect((await redis.keys(`*${prefix}*build*`)).length).toBe(0);
  });

  it("a crashed rebuild expires with its lease: staging keys vanish, adds stop queueing, a new one runs", async () => {
    const prefix = randomPrefix();
    const opts = { capacity: 1000, errorRate: 0.01, prefix, rebuildLeaseMs: 200, batchSize: 1 };
    const f = new RedisBloomFilter(redis, "r5", opts);
    await f.add("live");
    const deadClient = srv.client();
    const dead = new RedisBloomFilter(deadClient, "r5", { ...opts, onError: () => {} });
    let stall!: () => void;
    const stalled = new Promise<void>((r) => (stall = r));
    async function* dies() {
      yield "dead-0";
      yield "dead-1";
      stall();
      await new Promise(() => {}); // never yields again
    }
    void dead.rebuild(dies()).catch(() => {});
    await stalled; // with batchSize 1, both items' build calls completed before the source stalled
    expect((await redis.keys(`*${prefix}*build*`)).length).toBe(1);
    await f.add("during");
    expect(await redis.llen(f.keys().pending)).toBe(f.hashes); // queued for the running rebuild
    deadClient.disconnect(); // the crash: no more lease renewals
    const deadline = Date.now() + 20_000; // polled: the staging keys expire with the lease, on Redis's clock
    const leftovers = async () =>
      (await redis.keys(`*${prefix}*build*`)).length + (await redis.exists(f.keys().pending));
    while ((await leftovers()) > 0 && Date.now() < deadline) await sleep(20);
    expect((await redis.keys(`*${prefix}*build*`)).length).toBe(0);
    expect(await redis.exists(f.keys().pending)).toBe(0);
    await f.add("after");
    expect(await redis.exists(f.keys().pending)).toBe(0);
    expect(await f.mightContainMany(["live", "during", "after", "dead-0"])).toEqual([
      true,
      true,
      true,
      false,
    ]);
    expect(await f.rebuild(["fresh"])).toMatchObject({ ok: true });
    expect(await f.mightContainMany(["live", "fresh"])).toEqual([false, true]);
  });

  it("no reader sees a false negative for an item in both the old and the new set (4 clients)", async () => {
    const prefix = randomPrefix();
    const opts = { capacity: 50_000, errorRate: 0.01, prefix, bitsPerKey: 2 ** 16, batchSize: 500 };
    const writer = new RedisBloomFilter(redis, "live", opts);
    const both = range(2000, (i) => `both-${i}`);
    await writer.addMany([...both, ...range(20_000, (i) => `old-${i}`)]);
    const readers = range(4, () => "").map(() => new RedisBloomFilter(srv.client(), "live", opts));
    const mirrors = range(4, () => "").map(
      () => new RedisBloomFilter(srv.client(), "live", { ...opts, mirror: { refreshIntervalMs: 10 } }),
    );
    await Promise.all(mirrors.map((m) => m.refresh()));
    let done = false;
    let checks = 0;
    let misses = 0;
    const read = async (f: RedisBloomFilter, r: number) => {
      for (let i = r; !done; i += 7) {
        await new Promise(setImmediate); // a mirror answers without I/O: let the writer run
        const batch = both.slice(i % 1900, (i % 1900) + 100);
        const ans = await f.mightContainMany(batch);
        checks += batch.length;
        misses += count(ans, false);
        if (!(await f.mightContain(both[i % both.length]!))) misses++;
        checks++;
      }
    };
    const reading = [...readers, ...mirrors].map((f, r) => read(f, r));
    const versions: number[] = [];
    for (let round = 0; round < 3; round++) {
      const r = await writer.rebuild([...both, ...range(20_000, (i) => `new${round}-${i}`)]);
      expect(r.ok).toBe(true);
      if (r.ok) versions.push(r.version);
    }
    // Keep reading until every mirror has loaded the last version (it holds items only that version has).
    const last = range(20, (i) => `new2-${i}`);
    const deadline = Date.now() + 20_000;
    const loaded = () => mirrors.every((m) => last.every((item) => m.mightContainLocal(item) === true));
    while (!loaded() && Date.now() < deadline) await sleep(10);
    expect(loaded()).toBe(true);
    done = true;
    await Promise.all(reading);
    mirrors.forEach((m) => m.close());
    expect(versions).toEqual([1, 2, 3]);
    expect(checks).toBeGreaterThan(1000);
    expect(misses).toBe(0);
    // And the old-only items are gone (up to false positives).
    const gone = await writer.mightContainMany(range(20_000, (i) => `old-${i}`));
    expect(count(gone, true) / 20_000).toBeLessThan(0.02);
  });
});
