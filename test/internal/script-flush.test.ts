// Script calls survive SCRIPT FLUSH (a restart or failover empties the script cache the same way) with any
// number of calls in flight: a NOSCRIPT reply is retried as EVAL by the library.
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LuaScript } from "../../src/internal/scripts.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

const INCR = new LuaScript("test/incr", "return redis.call('INCR', KEYS[1])", 1);
const INCR_VARIADIC = new LuaScript(
  "test/incr-v",
  "return redis.call('INCR', KEYS[1]) + 0 * #KEYS",
  "variadic",
);

let srv: PrivateRedis;
let redis: Redis;
let admin: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
  admin = srv.client();
});
afterAll(async () => {
  await srv.stop();
});

describe("LuaScript under SCRIPT FLUSH", () => {
  for (const [label, script] of [
    ["fixed key count", INCR],
    ["variadic", INCR_VARIADIC],
  ] as const) {
    it(`${label}: 3,000 concurrent calls while the cache is flushed again and again all succeed, once each`, async () => {
      const key = `{${randomPrefix()}}:n`;
      let flushing = true;
      let flushes = 0;
      const flusher = (async () => {
        while (flushing) {
          await admin.script("FLUSH");
          flushes++;
          await new Promise((r) => setImmediate(r));
        }
      })();
      const calls: Promise<unknown>[] = [];
      for (let wave = 0; wave < 30; wave++) {
        for (let i = 0; i < 100; i++) calls.push(script.run(redis, [key], []));
        await new Promise((r) => setImmediate(r));
      }
      const results = await Promise.allSettled(calls);
      flushing = false;
      await flusher;
      const failed = results.filter((r) => r.status === "rejected");
      expect(failed.map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
      expect(Number(await redis.get(key))).toBe(3000);
      expect(flushes).toBeGreaterThan(0);
      await redis.del(key);
    });
  }
});
