// The ratelimit Lua scripts on their own, through plain EVAL: the batch format, all-or-nothing groups,
// the stored state and the refund.
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

const U = 1_000_000;
/** Packs groups written as "key,settings,cost key,settings,cost;…" the way the engine sends them. */
function pack(groups: string): Buffer {
  const bytes: number[] = [];
  for (const g of groups.split(";")) {
    const items = g.split(" ").map((it) => it.split(",").map(Number) as [number, number, number]);
    bytes.push(items.length >> 8, items.length & 255);
    for (const [k, st, cost] of items) {
      bytes.push(
        k >> 8,
        k & 255,
        st,
        (cost >>> 24) & 255,
        (cost >>> 16) & 255,
        (cost >>> 8) & 255,
        cost & 255,
      );
    }
  }
  return Buffer.from(bytes);
}
const take = (keys: string[], settings: string, groups: string) =>
  redis.eval(LUA["ratelimit/take"], keys.length, ...keys, settings, pack(groups)) as Promise<number[]>;

describe("lua/ratelimit/take", () => {
  it("applies groups in order, each all-or-nothing, and reports the units each item found", async () => {
    const p = randomPrefix();
    const [a, b] = [`{${p}:a}:tb`, `{${p}:b}:tb`];
    // settings 1: capacity 3 at 0.0001/s. Group 1 takes 2 from a and 1 from b; group 2 wants 2 more from a
    // and 1 from b: a has 1 left, so group 2 takes nothing, not even b's token; group 3 reads both.
    const r = await take([a, b], "3,0.0001", "1,1,2 2,1,1;1,1,2 2,1,1;1,1,0 2,1,0");
    expect(r.slice(0, 3)).toEqual([1, 3 * U, 3 * U]);
    expect(r[3]).toBe(0);
    expect(Math.floor(r[4]! / U)).toBe(1);
    expect(Math.floor(r[5]! / U)).toBe(2);
    expect(r[6]).toBe(1);
    expect(Math.floor(r[7]! / U)).toBe(1);
    expect(Math.floor(r[8]! / U)).toBe(2);
  });

  it("stores units and Redis microseconds, expiring when full again; a rejected group writes nothing", async () => {
    const p = randomPrefix();
    const k = `{${p}:k}:tb`;
    await take([k], "10,1", "1,1,4");
    const v = (await redis.get(k))!;
    expect(v).toMatch(/^\d+ \d{16}$/);
    const [units, at] = v.split(" ").map(Number) as [number, number];
    expect(units).toBe(6 * U);
    const [sec] = await redis.time();
    expect(Math.abs(at / 1e6 - Number(sec))).toBeLessThan(5);
    // PXAT is the full-again moment (4 s to refill 4 tokens after the take), rounded up to the ms: never early.
    expect(Number(await redis.call("PEXPIRETIME", k))).toBe(Math.ceil((at + 4_000_000) / 1000));
    const r = await take([k], "10,1", "1,1,9");
    expect(r[0]).toBe(0);
    expect(await redis.get(k)).toBe(v);
  });

  it("items of one group on the same key count together", async () => {
    const p = randomPrefix();
    const k = `{${p}:k}:tb`;
    const r = await take([k], "3,0.0001", "1,1,2 1,1,2");
    expect(r[0]).toBe(0);
    expect(Math.floor(r[2]! / U)).toBe(1); // the second item saw what the first would leave
    expect(await redis.exists(k)).toBe(0);
  });

  it("flags a group whose key holds something else, and leaves the other groups alone", async () => {
    const p = randomPrefix();
    const [k, h, ok] = [`{${p}:k}:tb`, `{${p}:h}:tb`, `{${p}:ok}:tb`];
    await redis.set(k, "12 abc");
    await redis.hset(h, "a", "1");
    const r = await take([k, h, ok], "3,1", "1,1,1 3,1,1;2,1,1;3,1,1");
    expect(r).toEqual([2, -1, 3 * U, 2, -1, 1, 3 * U]);
    expect(await redis.get(k)).toBe("12 abc");
    expect(Math.round(Number((await redis.get(ok))!.split(" ")[0]) / U)).toBe(2);
  });
});

describe("lua/ratelimit/refund", () => {
  it("gives tokens back up to capacity and deletes a bucket that is full again", async () => {
    const p = randomPrefix();
    const k = `{${p}:k}:tb`;
    await take([k], "5,0.0001", "1,1,3");
    await redis.eval(LUA["ratelimit/refund"], 1, k, 5, 0.0001, 1);
    expect(Number((await redis.get(k))!.split(" ")[0]) / U).toBeCloseTo(3, 3);
    await redis.eval(LUA["ratelimit/refund"], 1, k, 5, 0.0001, 9);
    expect(await redis.exists(k)).toBe(0);
  });
});

describe("lua/gate/redeem-token", () => {
  it("spends once, within the token's life and the sale's end, by Redis time", async () => {
    const p = randomPrefix();
    const k = `{${p}:n}:ptok`;
    const [sec] = await redis.time();
    const now = Number(sec) * 1000;
    const run = (exp: number, ends: number | "") => redis.eval(LUA["gate/redeem-token"], 1, k, exp, ends);
    expect(await run(now - 1, "")).toBe(1);
    expect(await run(now + 60_000, now - 1)).toBe(3);
    expect(await redis.exists(k)).toBe(0);
    expect(await run(now + 60_000, "")).toBe(0);
    expect(await run(now + 60_000, "")).toBe(2);
    expect(await redis.pttl(k)).toBeGreaterThan(55_000);
  });
});

describe("lua/gate/captcha-take", () => {
  it("judges and deletes on any attempt by its user; another user's attempt changes nothing", async () => {
    const p = randomPrefix();
    const k = `{${p}:c}:captcha`;
    const run = (answer: string, user: string) => redis.eval(LUA["gate/captcha-take"], 1, k, answer, user);
    expect(await run("1", "u")).toBe(1);
    await redis.set(k, "u\n12");
    expect(await run("12", "v")).toBe(3);
    expect(await redis.get(k)).toBe("u\n12");
    await redis.set(k, "u\n12");
    expect(await run("13", "u")).toBe(2);
    expect(await run("12", "u")).toBe(1);
    await redis.set(k, "\n12");
    expect(await run("12", "anyone")).toBe(0);
  });
});
