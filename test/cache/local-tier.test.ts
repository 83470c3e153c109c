// ReadThroughCache's in-process tier (L1) and its stale-while-revalidate hit path on a private redis-server:
// invalidation across processes through pub/sub, the entry-count and staleness bounds, no L1 answers while
// the subscriber is not subscribed, bad options refused with nothing changed, and an SWR hit that costs one
// MGET like a plain hit.
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { InvalidArgumentError } from "../../src/errors.js";
import { ReadThroughCache, type ReadThroughCacheOptions } from "../../src/cache/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());

interface Item {
  v: number;
}

const HOUR = 3_600_000;

/** A "process": its own client and subscriber, one cache over a shared source of truth. */
function processOf(
  prefix: string,
  db: Map<string, number>,
  l1: Partial<NonNullable<ReadThroughCacheOptions<Item>["l1"]>> | false = {},
  extra: Partial<ReadThroughCacheOptions<Item>> = {},
) {
  const subscriber = srv.client();
  const cache = new ReadThroughCache<Item>({
    redis: srv.client(),
    prefix,
    name: "items",
    ttlMs: HOUR,
    load: async (id) => (db.has(id) ? { v: db.get(id)! } : undefined),
    ...(l1 === false ? {} : { l1: { subscriber, maxStaleMs: HOUR, ...l1 } }),
    ...extra,
  });
  return { cache, subscriber };
}

/** Writes an entry behind the caches' backs (no pub/sub message): only Redis reads can see it. */
async function overwrite(cache: ReadThroughCache<Item>, id: string, v: number): Promise<void> {
  await redis.set(cache.keys(id).entry, `v${JSON.stringify({ v })}`, "PX", HOUR);
}

/** Resolves when `subscriber` has delivered the next message on `channel` to its listeners. */
function nextMessage(subscriber: Redis, channel: string): Promise<string> {
  return new Promise((resolve) => {
    const on = (ch: string, message: string) => {
      if (ch !== channel) return;
      subscriber.off("message", on);
      resolve(message);
    };
    subscriber.on("message", on);
  });
}

/** Runs `write` and resolves once `subscriber` delivered the `n` messages it publishes (its own stores too). */
async function published<T>(
  subscriber: Redis,
  prefix: string,
  n: number,
  write: () => Promise<T>,
): Promise<T> {
  const channel = `${prefix}:c:items:changed`;
  let seen = 0;
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  const on = (ch: string) => {
    if (ch === channel && ++seen === n) done();
  };
  subscriber.on("message", on);
  try {
    const result = await write();
    await all;
    return result;
  } finally {
    subscriber.off("message", on);
  }
}

async function calls(command: string): Promise<number> {
  const info = await redis.info("commandstats");
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
}

describe("ReadThroughCache L1", () => {
  it("answers a hot id in process, and drops it when another process invalidates or stores it", async () => {
    const prefix = randomPrefix();
    const db = new Map([["x", 1]]);
    const a = processOf(prefix, db);
    const b = processOf(prefix, db, false); // a process without L1 still tells the others
    await a.cache.ready();
    const channel = `${prefix}:c:items:changed`;
    // A miss: loaded and stored. The store's own message empties L1 of x too, so wait for it.
    expect(await published(a.subscriber, prefix, 1, () => a.cache.get("x"))).toEqual({ v: 1 });
    expect(await a.cache.get("x")).toEqual({ v: 1 }); // a Redis hit: now in L1
    await overwrite(a.cache, "x", 7);
    const gets = await calls("mget");
    expect(await a.cache.get("x")).toEqual({ v: 1 }); // from L1: Redis not asked
    expect(await calls("mget")).toBe(gets);

    // Another process invalidates: once a's subscriber has delivered the message, a reads Redis again.
    db.set("x", 2);
    let delivered = nextMessage(a.subscriber, channel);
    await b.cache.invalidate("x");
    expect(await delivered).toBe("x");
    expect(await published(a.subscriber, prefix, 1, () => a.cache.get("x"))).toEqual({ v: 2 }); // loaded again
    await a.cache.get("x"); // and in L1 again
    await overwrite(a.cache, "x", 8);
    expect(await a.cache.get("x")).toEqual({ v: 2 });

    // Another process prewarms (stores) a new value: dropped the same way.
    delivered = nextMessage(a.subscriber, channel);
    await b.cache.prewarm([["x", { v: 3 }]]);
    expect(await delivered).toBe("x");
    expect(await a.cache.get("x")).toEqual({ v: 3 });

    // Another process's load stores the id: dropped too.
    await published(a.subscriber, prefix, 1, () => a.cache.get("y")); // missing: the marker is stored
    expect(await a.cache.get("y")).toBeUndefined(); // and cached in L1
    db.set("y", 4);
    await redis.del(a.cache.keys("y").entry); // expired, say: b's next read loads and stores it
    delivered = nextMessage(a.subscriber, channel);
    expect(await b.cache.get("y")).toEqual({ v: 4 });
    expect(await delivered).toBe("y");
    expect(await a.cache.get("y")).toEqual({ v: 4 });
    await a.cache.close();
  });

  it("a get that starts after invalidate() resolved in this process never answers from L1", async () => {
    const prefix = randomPrefix();
    const db = new Map([["x", 1]]);
    const a = processOf(prefix, db);
    await a.cache.ready();
    await published(a.subscriber, prefix, 1, () => a.cache.get("x"));
    await a.cache.get("x"); // in L1
    await overwrite(a.cache, "x", 1); // the same value, behind its back: L1 answers without a read
    const gets = await calls("mget");
    expect(await a.cache.get("x")).toEqual({ v: 1 });
    expect(await calls("mget")).toBe(gets);
    db.set("x", 2);
    await a.cache.invalidate("x");
    expect(await a.cache.get("x")).toEqual({ v: 2 }); // no wait for its own message
    await a.cache.close();
  });

  it("holds at most maxEntries ids, dropping the least recently used", async () => {
    const prefix = randomPrefix();
    const a = processOf(prefix, new Map(), { maxEntries: 3 });
    await a.cache.ready();
    const ids = ["p0", "p1", "p2", "p3", "p4"];
    await published(a.subscriber, prefix, 5, () => a.cache.prewarm(ids.map((id, i) => [id, { v: i }])));
    for (const id of ids) expect(await a.cache.get(id)).toEqual({ v: ids.indexOf(id) });
    expect(await a.cache.get("p2")).toEqual({ v: 2 }); // p2 becomes the most recently used
    for (const id of ids) await overwrite(a.cache, id, 99);
    // L1 holds p3, p4, p2; p0 and p1 were pushed out and come from Redis.
    expect(await a.cache.get("p3")).toEqual({ v: 3 });
    expect(await a.cache.get("p4")).toEqual({ v: 4 });
    expect(await a.cache.get("p2")).toEqual({ v: 2 });
    expect(await a.cache.get("p0")).toEqual({ v: 99 });
    expect(await a.cache.get("p1")).toEqual({ v: 99 });
    await a.cache.close();
  });

  it("never serves a value more than maxStaleMs after the read that filled it began", async () => {
    const prefix = randomPrefix();
    const maxStaleMs = 300;
    const a = processOf(prefix, new Map([["x", 1]]), { maxStaleMs });
    await a.cache.ready();
    await published(a.subscriber, prefix, 1, () => a.cache.get("x")); // loaded and stored
    await a.cache.get("x"); // read from Redis into L1
    const filledBy = performance.now(); // that read began before this
    await overwrite(a.cache, "x", 2); // no message: only the staleness bound can end the old value
    const answers: { at: number; v: number }[] = [];
    const deadline = performance.now() + 30_000;
    for (;;) {
      const at = performance.now();
      const v = (await a.cache.get("x"))!.v;
      answers.push({ at, v });
      if (v === 2 || performance.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(answers.at(-1)!.v).toBe(2);
    // Every old answer came from a call that began before the L1 entry's bound ran out.
    for (const { at, v } of answers) if (v === 1) expect(at).toBeLessThan(filledBy + maxStaleMs);
    await a.cache.close();
  });

  it("does not answer from L1 while the subscriber is disconnected, and again once it is subscribed", async () => {
    const prefix = randomPrefix();
    const a = processOf(prefix, new Map([["x", 1]]));
    await a.cache.ready();
    await published(a.subscriber, prefix, 1, () => a.cache.get("x"));
    await a.cache.get("x"); // in L1
    await overwrite(a.cache, "x", 2);
    expect(await a.cache.get("x")).toEqual({ v: 1 });
    const closed = once(a.subscriber, "close");
    a.subscriber.disconnect(); // messages sent from now on are lost
    await closed;
    expect(await a.cache.get("x")).toEqual({ v: 2 }); // L1 was emptied
    await overwrite(a.cache, "x", 3);
    expect(await a.cache.get("x")).toEqual({ v: 3 }); // and is not filled while unsubscribed
    await a.subscriber.connect();
    await a.cache.ready();
    expect(await a.cache.get("x")).toEqual({ v: 3 }); // in L1 again
    await overwrite(a.cache, "x", 4);
    expect(await a.cache.get("x")).toEqual({ v: 3 });
    await a.cache.close();
    expect(await a.cache.get("x")).toEqual({ v: 4 }); // closed: every get reads Redis
  });

  it("close() unsubscribes the channel only when no other cache on the subscriber uses it", async () => {
    const prefix = randomPrefix();
    const subscriber = srv.client();
    const make = () =>
      new ReadThroughCache<Item>({
        redis,
        prefix,
        name: "items",
        ttlMs: HOUR,
        load: async () => ({ v: 1 }),
        l1: { subscriber },
      });
    const [one, two] = [make(), make()];
    await Promise.all([one.ready(), two.ready()]);
    const channel = `${prefix}:c:items:changed`;
    const subs = async () => (await redis.pubsub("NUMSUB", channel))[1];
    expect(await subs()).toBe(1);
    await one.close();
    expect(await subs()).toBe(1);
    await two.close();
    expect(await subs()).toBe(0);
    expect(subscriber.listenerCount("message")).toBe(0);
  });

  it("refuses bad l1 options with InvalidArgumentError, subscribing nothing", async () => {
    const prefix = randomPrefix();
    const subscriber = srv.client();
    await subscriber.ping();
    const base = { redis, prefix, name: "items", ttlMs: 10_000, load: async () => ({ v: 1 }) };
    const arg = (o: object) => {
      try {
        new ReadThroughCache<Item>({ ...base, ...o } as ReadThroughCacheOptions<Item>);
      } catch (err) {
        expect(err).toBeInstanceOf(InvalidArgumentError);
        return (err as InvalidArgumentError).argument;
      }
      return "none";
    };
    expect(arg({ l1: { subscriber, maxStaleMs: -1 } })).toBe("l1.maxStaleMs");
    expect(arg({ l1: { subscriber, maxStaleMs: Number.NaN } })).toBe("l1.maxStaleMs");
    expect(arg({ l1: { subscriber, maxStaleMs: 1.5 } })).toBe("l1.maxStaleMs");
    expect(arg({ l1: { subscriber, maxStaleMs: 10_001 } })).toBe("l1.maxStaleMs"); // over ttlMs
    expect(arg({ l1: { subscriber, maxEntries: 0 } })).toBe("l1.maxEntries");
    expect(arg({ l1: { subscriber, maxEntries: Number.NaN } })).toBe("l1.maxEntries");
    expect(arg({ l1: { subscriber: {} } })).toBe("l1.subscriber");
    expect(arg({ l1: { subscriber: () => subscriber } })).toBe("l1.subscriber");
    expect(arg({ l1: { subscriber: redis } })).toBe("l1.subscriber");
    expect(arg({ l1: { subscriber, maxStale: 100 } })).toBe("l1.maxStale");
    expect(arg({ l1: null })).toBe("l1");
    expect(arg({ l1: 5 })).toBe("l1");
    expect(arg({ l1: { subscriber }, onError: "log" })).toBe("onError");
    expect(arg({ l1: { subscriber }, staleWhileRevalidateMs: -5 })).toBe("staleWhileRevalidateMs");
    expect(arg({ l1: { subscriber }, load: 42 })).toBe("load");
    // Nothing changed: no listener on the subscriber, no subscription, no keys.
    expect(subscriber.listenerCount("message")).toBe(0);
    expect(await redis.pubsub("NUMSUB", `${prefix}:c:items:changed`)).toEqual([
      `${prefix}:c:items:changed`,
      0,
    ]);
    expect(await redis.keys(`*${prefix}*`)).toEqual([]);
  });
});

describe("ReadThroughCache stale-while-revalidate hit path", () => {
  it("a hit is one MGET shared by the tick, with no PTTL, and the entry carries its stale time", async () => {
    const prefix = randomPrefix();
    const a = processOf(prefix, new Map(), false, { staleWhileRevalidateMs: 60_000, jitterMs: 0 });
    const ids = Array.from({ length: 20 }, (_, i) => `s${i}`);
    await a.cache.prewarm(ids.map((id, i) => [id, { v: i }]));
    const [time] = await redis.time();
    const raw = await redis.get(a.cache.keys("s1").entry);
    const staleAt = Number(/^s(\d+)\|v/.exec(raw!)![1]);
    // Stamped with Redis time + ttlMs (jitter 0), within the moments around the prewarm.
    expect(Math.abs(staleAt - (Number(time) * 1000 + HOUR))).toBeLessThan(5_000);
    const [mget, pttl, get] = [await calls("mget"), await calls("pttl"), await calls("get")];
    const values = await Promise.all(ids.map((id) => a.cache.get(id)));
    expect(values).toEqual(ids.map((_, i) => ({ v: i })));
    expect(await calls("pttl")).toBe(pttl);
    expect(await calls("get")).toBe(get);
    expect(await calls("mget")).toBe(mget + 1);
  });
});
