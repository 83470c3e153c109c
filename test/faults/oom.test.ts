// Memory full (`maxmemory` with `noeviction`): a reservation is refused with an error that says OOM and
// changes nothing, while release, confirm and expireHolds still give stock back or sell it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { RedisCommandError } from "../../src/errors.js";
import { Inventory } from "../../src/stock/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis(["--maxmemory", "8mb", "--maxmemory-policy", "noeviction"]);
  redis = srv.client();
});
afterAll(async () => {
  await srv?.stop();
});

/**
 * Writes 64 KB values until Redis refuses one with OOM. The refused value was counted while it sat in the
 * query buffer, so memory then drops just below the limit: the limit is lowered by 1 MB below what is used,
 * so that memory stays full for what follows.
 */
async function fillMemory(prefix: string): Promise<void> {
  const value = "x".repeat(64 * 1024);
  for (let i = 0; i < 1_000; i++) {
    try {
      await redis.set(`${prefix}:fill:${i}`, value);
    } catch (err) {
      if (!(err instanceof Error && err.message.startsWith("OOM"))) throw err;
      const used = Number(/used_memory:(\d+)/.exec(await redis.info("memory"))![1]);
      await redis.config("SET", "maxmemory", String(used - 1024 * 1024));
      return;
    }
  }
  throw new Error("memory never filled");
}

describe("out of memory (maxmemory + noeviction)", () => {
  it("refuses reserve with an OOM error, and still releases, confirms and expires holds", async () => {
    const prefix = randomPrefix("oom");
    for (const batch of [true, false]) {
      const inventory = new Inventory(redis, { prefix: `${prefix}${batch}`, batch });
      await inventory.setStock("sku", 100, { perUserLimit: 1, holdMs: 1 });
      await inventory.setStock("paid", 100, { perUserLimit: 1 });
      for (const u of ["a", "b", "c"]) {
        expect((await inventory.reserve("paid", { userId: u, reservationId: `p-${u}` })).ok).toBe(true);
      }
      for (const u of ["a", "b", "c", "d"]) {
        expect((await inventory.reserve("sku", { userId: u, reservationId: `s-${u}` })).ok).toBe(true);
      }
      await fillMemory(`${prefix}${batch}`);
      const before = await inventory.snapshot("paid");

      // Reserve: refused with the server's OOM reply as the cause, nothing written.
      const err = await inventory
        .reserve("paid", { userId: "z", reservationId: "p-z" })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RedisCommandError);
      expect((err as Error).message).toMatch(/OOM command not allowed/);
      expect(((err as Error).cause as Error).message).toMatch(/^OOM /);
      expect(await inventory.snapshot("paid")).toEqual(before);
      expect(await inventory.reservation("paid", "p-z")).toBeNull();
      // A retry of a reservation that exists is still answered (a replay writes nothing).
      expect(await inventory.reserve("paid", { userId: "a", reservationId: "p-a" })).toMatchObject({
        ok: true,
      });

      // Confirm and release still work while memory is full.
      expect(await inventory.confirm("paid", "p-a")).toEqual({ ok: true });
      expect(await inventory.release("paid", "p-b")).toEqual({ ok: true });
      expect(await inventory.release("paid", "p-a")).toEqual({ ok: false, reason: "CONFIRMED" });
      expect(await inventory.snapshot("paid")).toMatchObject({
        initial: 100,
        available: 98,
        held: 1,
        confirmed: 1,
      });

      // Expired holds come back (1 ms holds: wait for Redis time to pass them, not for a fixed time).
      let expired = 0;
      const deadline = Date.now() + 10_000;
      while (expired < 4 && Date.now() < deadline) expired += await inventory.expireHolds("sku");
      expect(expired).toBe(4);
      expect(await inventory.snapshot("sku")).toMatchObject({ initial: 100, available: 100, held: 0 });
      // Still full: a new reservation is still refused.
      await expect(inventory.reserve("sku", { userId: "e" })).rejects.toThrow(/OOM/);

      // Free the memory: reservations work again.
      await redis.config("SET", "maxmemory", "8mb");
      await redis.del(...(await redis.keys(`${prefix}${batch}:fill:*`)));
      expect((await inventory.reserve("sku", { userId: "e" })).ok).toBe(true);
      await redis.del(...Object.values(inventory.keys("sku")), ...Object.values(inventory.keys("paid")));
      await inventory.close();
    }
  });
});
