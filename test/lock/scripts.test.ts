// Each lock script on its own, through plain EVAL: replies, what it writes, and what it leaves alone.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { LUA } from "../../src/internal/embedded.generated.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());

const keysOf = () => {
  const tag = `{${randomPrefix()}:r}`;
  return {
    lock: `${tag}:lock`,
    fence: `${tag}:fence`,
    waiters: `${tag}:waiters`,
    channel: `${tag}:released`,
  };
};
// The scripts take any number of locks (a batch); these helpers send one and unwrap its answer.
const first = (r: unknown) => (r as number[])[0];
const acquire = (k: ReturnType<typeof keysOf>, token: string, ttl: number, flag = 0) =>
  redis.eval(LUA["lock/acquire"], 3, k.lock, k.fence, k.waiters, token, ttl, flag).then(first);
const release = (k: ReturnType<typeof keysOf>, token: string) =>
  redis.eval(LUA["lock/release"], 2, k.lock, k.waiters, token, k.channel).then(first);
const extend = (k: ReturnType<typeof keysOf>, token: string, ttl: number) =>
  redis.eval(LUA["lock/extend"], 1, k.lock, token, ttl);

describe("lua/lock scripts", () => {
  it("every script opens with a header naming KEYS and ARGV", () => {
    for (const name of ["lock/acquire", "lock/release", "lock/extend"] as const) {
      const head = LUA[name].split("\n").slice(0, 5).join("\n");
      expect(head).toMatch(/KEYS:/);
      expect(head).toMatch(/ARGV:/);
      expect(head).toMatch(/Returns:/);
    }
  });

  it("acquire: the fence when free, -(pttl + 2) when held; a refusal writes nothing without the flag", async () => {
    const k = keysOf();
    expect(await acquire(k, "a", 5_000)).toBe("1"); // a fence comes as text (exact near 2^53)
    expect(await redis.get(k.lock)).toBe("a");
    const held = (await acquire(k, "b", 5_000)) as number;
    expect(-held - 2).toBeGreaterThan(4_000);
    expect(-held - 2).toBeLessThanOrEqual(5_000);
    expect(await redis.get(k.fence)).toBe("1");
    expect(await redis.exists(k.waiters)).toBe(0);
    expect(await redis.get(k.lock)).toBe("a");
    // with the flag: only the flag is written, with its own TTL
    expect(await acquire(k, "b", 5_000, 700)).toBeLessThan(0);
    expect(await redis.pttl(k.waiters)).toBeGreaterThan(500);
    await redis.del(k.lock);
    expect(await acquire(k, "c", 5_000)).toBe("2");
  });

  it("acquire: a holder without expiry reports pttl -1", async () => {
    const k = keysOf();
    await redis.set(k.lock, "forever");
    expect(await acquire(k, "a", 100)).toBe(-1);
  });

  it("acquire: a corrupted fence counter answers 0 for that lock and writes nothing, not even the counter", async () => {
    const k = keysOf();
    for (const corrupt of [
      "not-a-number",
      "-7",
      "-1",
      "1.5",
      " 3",
      "9007199254740991",
      String(2n ** 63n - 1n),
    ]) {
      await redis.set(k.fence, corrupt);
      expect(await acquire(k, "a", 5_000), corrupt).toBe(0);
      expect(await redis.exists(k.lock), corrupt).toBe(0);
      expect(await redis.get(k.fence), corrupt).toBe(corrupt);
    }
    await redis.del(k.fence);
    await redis.hset(k.fence, "n", "1");
    expect(await acquire(k, "a", 5_000)).toBe(0);
    expect(await redis.exists(k.lock)).toBe(0);
    expect(await redis.hgetall(k.fence)).toEqual({ n: "1" });
    await redis.del(k.fence);
    await redis.set(k.fence, "0");
    expect(await acquire(k, "a", 5_000)).toBe("1"); // 0 is a valid count: the next fence is 1
  });

  it("acquire and release: several locks in one call, each decided on its own, in order", async () => {
    const [a, b, c] = [keysOf(), keysOf(), keysOf()];
    await redis.set(b.fence, "corrupt");
    const got = (await redis.eval(
      LUA["lock/acquire"],
      9,
      ...[a, b, c].flatMap((k) => [k.lock, k.fence, k.waiters]),
      "ta",
      5_000,
      0,
      "tb",
      5_000,
      0,
      "tc",
      5_000,
      0,
    )) as number[];
    expect(got).toEqual(["1", 0, "1"]);
    // the same lock twice in one call: the second sees the first
    const twice = (await redis.eval(
      LUA["lock/acquire"],
      6,
      c.lock,
      c.fence,
      c.waiters,
      c.lock,
      c.fence,
      c.waiters,
      "x",
      5_000,
      0,
      "y",
      5_000,
      0,
    )) as number[];
    expect(twice[0]).toBeLessThan(0);
    expect(twice[1]).toBeLessThan(0);
    const released = (await redis.eval(
      LUA["lock/release"],
      6,
      a.lock,
      a.waiters,
      b.lock,
      b.waiters,
      c.lock,
      c.waiters,
      "ta",
      a.channel,
      "tb",
      b.channel,
      "wrong",
      c.channel,
    )) as number[];
    expect(released).toEqual([1, 0, 0]);
    expect(await redis.get(c.lock)).toBe("tc");
  });

  it("release: compare-and-delete, publishing only while the waiters flag exists", async () => {
    const k = keysOf();
    const sub = srv.client();
    const got: string[] = [];
    await sub.subscribe(k.channel);
    sub.on("message", (ch: string) => got.push(ch));
    await acquire(k, "a", 5_000);
    expect(await release(k, "b")).toBe(0);
    expect(await redis.get(k.lock)).toBe("a");
    expect(await release(k, "a")).toBe(1);
    expect(await redis.exists(k.lock)).toBe(0);
    expect(await release(k, "a")).toBe(0);
    await acquire(k, "a", 5_000);
    await acquire(k, "w", 5_000, 1_000); // a waiter registers
    expect(await release(k, "a")).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toEqual([k.channel]);
    await redis.hset(k.lock, "f", "v"); // another type: not ours, no error
    expect(await release(k, "a")).toBe(0);
    expect(await redis.type(k.lock)).toBe("hash");
  });

  it("extend: compare-and-pexpire", async () => {
    const k = keysOf();
    await acquire(k, "a", 1_000);
    expect(await extend(k, "b", 60_000)).toBe(0);
    expect(await redis.pttl(k.lock)).toBeLessThanOrEqual(1_000);
    expect(await extend(k, "a", 60_000)).toBe(1);
    expect(await redis.pttl(k.lock)).toBeGreaterThan(59_000);
    await redis.del(k.lock);
    expect(await extend(k, "a", 60_000)).toBe(0);
    expect(await redis.exists(k.lock)).toBe(0);
  });
});
