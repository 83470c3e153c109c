// The cache module's Lua scripts on their own: every refusal writes nothing, and the header names KEYS and
// ARGV in its first five lines.
import { readdirSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { LUA } from "../../src/internal/embedded.generated.js";
import { LuaScript } from "../../src/internal/scripts.js";
import { keyspace, randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());

/** Keys and values (type + dump) without the ever-shrinking TTLs. */
async function contents(pattern: string): Promise<Record<string, string>> {
  const all = await keyspace(redis, pattern);
  return Object.fromEntries(Object.entries(all).map(([k, v]) => [k, v.replace(/:-?\d+$/, "")]));
}

const script = (path: keyof typeof LUA, keys: number) =>
  new LuaScript(`${path}/test${keys}`, LUA[path], keys);
const SHAPE = "64:3:32:c53ed1";

function keysOf(prefix: string) {
  const tag = `{${prefix}:bf:f}`;
  return {
    meta: `${tag}:meta`,
    pending: `${tag}:pending`,
    seg: [`${tag}:bits:0`, `${tag}:bits:1`],
    staging: [`${tag}:build:b1:0`, `${tag}:build:b1:1`],
  };
}

describe("lua/cache headers", () => {
  it("name KEYS and ARGV in the first five lines of every script", () => {
    const dir = new URL("../../lua/cache/", import.meta.url);
    const files = readdirSync(dir).filter((f) => f.endsWith(".lua"));
    expect(files.length).toBeGreaterThanOrEqual(9);
    for (const f of files) {
      const head = readFileSync(new URL(f, dir), "utf8").split("\n").slice(0, 5).join("\n");
      expect(head, f).toMatch(/^-- KEYS:/m);
      expect(head, f).toMatch(/^-- ARGV:/m);
    }
  });
});

describe("cache/bloom scripts", () => {
  it("bloom-add sets bits across segments, records the shape, and refuses another shape writing nothing", async () => {
    const prefix = randomPrefix();
    const k = keysOf(prefix);
    const add = script("cache/bloom-add", 4);
    expect(await add.run(redis, [k.meta, k.pending, ...k.seg], [SHAPE, 32, 0, 31, 32, 63])).toEqual([
      0, 4, 1,
    ]);
    expect(await add.run(redis, [k.meta, k.pending, ...k.seg], [SHAPE, 32, 0, 63])).toEqual([0, 0, 1]);
    expect([
      await redis.getbit(k.seg[0]!, 31),
      await redis.getbit(k.seg[1]!, 0),
      await redis.getbit(k.seg[1]!, 31),
    ]).toEqual([1, 1, 1]);
    expect(await redis.hget(k.meta, "shape")).toBe(SHAPE);
    const before = await contents(`*${prefix}*`);
    expect(await add.run(redis, [k.meta, k.pending, ...k.seg], ["other", 32, 5])).toEqual([1, SHAPE]);
    expect(await contents(`*${prefix}*`)).toEqual(before);
    const check = script("cache/bloom-check", 2);
    expect(await check.run(redis, k.seg, [32, 2, 0, 63, 0, 1, 31, 32])).toEqual([1, 0, 1]);
  });

  it("bloom-build and bloom-commit refuse a build that is not the current one, writing nothing", async () => {
    const prefix = randomPrefix();
    const k = keysOf(prefix);
    const begin = script("cache/bloom-begin", 2);
    const build = script("cache/bloom-build", 4);
    const commit = script("cache/bloom-commit", 6);
    await redis.setbit(k.seg[0]!, 1, 1);
    expect(await build.run(redis, [k.meta, k.pending, ...k.staging], ["b1", 32, 3])).toBe(1); // never begun
    expect(await commit.run(redis, [k.meta, k.pending, ...k.seg, ...k.staging], ["b1", 32, 2])).toEqual([
      1, 0,
    ]);
    expect(await redis.exists(...k.staging)).toBe(0);
    expect(await begin.run(redis, [k.meta, k.pending], [SHAPE, "b1", 10_000])).toEqual([0, 0]);
    expect(await build.run(redis, [k.meta, k.pending, ...k.staging], ["b1", 32, 3, 40])).toBe(0);
    expect(await redis.pttl(k.staging[0]!)).toBeGreaterThan(10_000);
    expect(await begin.run(redis, [k.meta, k.pending], [SHAPE, "b2", 10_000])).toEqual([0, 0]); // supersedes b1
    const before = await contents(`*${prefix}*`);
    expect(await build.run(redis, [k.meta, k.pending, ...k.staging], ["b1", 32, 5])).toBe(1);
    expect(await commit.run(redis, [k.meta, k.pending, ...k.seg, ...k.staging], ["b1", 32, 2])).toEqual([
      1, 0,
    ]);
    expect(await contents(`*${prefix}*`)).toEqual(before);
  });

  it("bloom-build renews the queue of adds with the staging keys, so it lives as long as the lease", async () => {
    const prefix = randomPrefix();
    const k = keysOf(prefix);
    const build = script("cache/bloom-build", 4);
    expect(
      await script("cache/bloom-begin", 2).run(redis, [k.meta, k.pending], [SHAPE, "b1", 10_000]),
    ).toEqual([0, 0]);
    expect(await build.run(redis, [k.meta, k.pending, ...k.staging], ["b1", 32, 3])).toBe(0);
    expect(await redis.exists(k.pending)).toBe(0); // nothing queued yet: renewing creates nothing
    await script("cache/bloom-add", 4).run(redis, [k.meta, k.pending, ...k.seg], [SHAPE, 32, 7]);
    await redis.pexpire(k.pending, 50); // as if the last add were long ago
    await redis.pexpire(k.staging[0]!, 50);
    expect(await build.run(redis, [k.meta, k.pending, ...k.staging], ["b1", 32])).toBe(0); // a heartbeat
    expect(await redis.pttl(k.pending)).toBeGreaterThan(10_000);
    expect(await redis.pttl(k.staging[0]!)).toBeGreaterThan(10_000);
    expect(await redis.lrange(k.pending, 0, -1)).toEqual(["7"]);
  });

  it("bloom-commit replays queued adds, renames staging over live (deleting empty segments), bumps the version", async () => {
    const prefix = randomPrefix();
    const k = keysOf(prefix);
    const staging = [`{${prefix}:bf:f}:build:b9:0`, `{${prefix}:bf:f}:build:b9:1`];
    await redis.setbit(k.seg[0]!, 1, 1);
    await redis.setbit(k.seg[1]!, 1, 1);
    await script("cache/bloom-begin", 2).run(redis, [k.meta, k.pending], [SHAPE, "b9", 10_000]);
    await script("cache/bloom-build", 4).run(redis, [k.meta, k.pending, ...staging], ["b9", 32, 2]);
    await script("cache/bloom-add", 4).run(redis, [k.meta, k.pending, ...k.seg], [SHAPE, 32, 7]);
    expect(await redis.lrange(k.pending, 0, -1)).toEqual(["7"]);
    const out = await script("cache/bloom-commit", 6).run(
      redis,
      [k.meta, k.pending, ...k.seg, ...staging],
      ["b9", 32, 2],
    );
    expect(out).toEqual([0, 1]);
    expect([
      await redis.getbit(k.seg[0]!, 1),
      await redis.getbit(k.seg[0]!, 2),
      await redis.getbit(k.seg[0]!, 7),
    ]).toEqual([0, 1, 1]);
    expect(await redis.exists(k.seg[1]!)).toBe(0); // the new version has nothing in segment 1
    expect(await redis.pttl(k.seg[0]!)).toBe(-1);
    expect(await redis.exists(k.pending, ...staging)).toBe(0);
    expect(await redis.hmget(k.meta, "building", "deadline", "lease", "version")).toEqual([
      null,
      null,
      null,
      "1",
    ]);
  });
});

describe("cache/cache-set and cache/cache-invalidate", () => {
  it("store only while the generation is unchanged", async () => {
    const prefix = randomPrefix();
    const [entry, gen] = [`{${prefix}:a}:c:x`, `{${prefix}:a}:c:x:gen`];
    const set = script("cache/cache-set", 2);
    const invalidate = script("cache/cache-invalidate", 2);
    expect(await set.run(redis, [entry, gen], ["", "v1", 5_000])).toBe(1);
    expect(await redis.get(entry)).toBe("v1");
    expect(await invalidate.run(redis, [entry, gen], [60_000])).toBe(1);
    expect(await redis.exists(entry)).toBe(0);
    expect(await redis.pttl(gen)).toBeGreaterThan(59_000);
    const before = await contents(`*${prefix}*`);
    expect(await set.run(redis, [entry, gen], ["", "stale", 5_000])).toBe(0);
    expect(await contents(`*${prefix}*`)).toEqual(before);
    expect(await set.run(redis, [entry, gen], ["1", "v2", 5_000])).toBe(1);
    expect(await redis.get(entry)).toBe("v2");
  });

  it("stamp the stale time from Redis TIME and publish the id, only when they write", async () => {
    const prefix = randomPrefix();
    const [entry, gen] = [`{${prefix}:a}:c:x`, `{${prefix}:a}:c:x:gen`];
    const channel = `${prefix}:changed`;
    const set = script("cache/cache-set", 2);
    const invalidate = script("cache/cache-invalidate", 2);
    const sub = srv.client();
    const messages: string[] = [];
    sub.on("message", (_ch: string, m: string) => messages.push(m));
    await sub.subscribe(channel);
    const [sec] = await redis.time();
    expect(await set.run(redis, [entry, gen], ["", "v1", 5_000, 1_000, channel, "a"])).toBe(1);
    const stamped = /^s(\d+)\|v1$/.exec((await redis.get(entry))!);
    expect(Number(stamped![1]) - Number(sec) * 1000).toBeGreaterThanOrEqual(1_000);
    expect(Number(stamped![1]) - Number(sec) * 1000).toBeLessThan(3_000);
    expect(await invalidate.run(redis, [entry, gen], [60_000, "", "", "", channel, "b"])).toBe(1);
    expect(await set.run(redis, [entry, gen], ["", "stale", 5_000, "", channel, "c"])).toBe(0); // refused
    expect(await invalidate.run(redis, [entry, gen], [60_000, "v2", 5_000, "", channel, "d"])).toBe(2);
    expect(await redis.get(entry)).toBe("v2"); // no stamp asked for
    await sub.ping(); // replies come in order: the messages published before are delivered by now
    expect(messages).toEqual(["a", "b", "d"]);
  });
});
