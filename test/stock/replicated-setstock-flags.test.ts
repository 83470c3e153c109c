// Found by review-a: Inventory with `replicated`: a setStock whose write stands on the master but whose WAIT came back
// short throws RedisUnavailableError before it drops the process's own sold-out flag (its own restock message
// is ignored by origin), so the process keeps refusing SOLD_OUT in process while Redis has units.
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisUnavailableError } from "../../src/errors.js";
import { Inventory } from "../../src/stock/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let server: PrivateRedis;
let redis: Redis;
let sub: Redis;
beforeAll(async () => {
  server = await startRedis(); // no replica: every WAIT 1 comes back short
  redis = server.client();
  sub = server.client();
});
afterAll(async () => server?.stop());

describe("replicated setStock with a short WAIT", () => {
  it("a restock that stands on the master is not answered SOLD_OUT in process afterwards", async () => {
    const prefix = randomPrefix("rf");
    const inv = new Inventory(redis, { prefix, subscriber: sub, replicated: { replicas: 1, timeoutMs: 20 } });
    await expect(inv.setStock("s", 1)).rejects.toBeInstanceOf(RedisUnavailableError); // written, not acknowledged
    expect(await inv.reserve("s", { userId: "u1", reservationId: "r1" })).toMatchObject({
      reason: "IN_DOUBT",
    });
    expect(await inv.reserve("s", { userId: "u2", reservationId: "r2" })).toEqual({
      ok: false,
      reason: "SOLD_OUT",
    });
    // Restock to 5: the master has 4 units available, the WAIT is short again.
    await expect(inv.setStock("s", 5)).rejects.toBeInstanceOf(RedisUnavailableError);
    expect(await redis.hget(inv.keys("s").stock, "available")).toBe("4");
    const r = await inv.reserve("s", { userId: "u3", reservationId: "r3" });
    // Redis would hold a unit for u3 (IN_DOUBT: its WAIT is short); the in-process flag answers SOLD_OUT.
    const held = await inv.reservation("s", "r3");
    expect({ answer: r, heldInRedis: held?.state ?? null }).toEqual({
      answer: { ok: false, reason: "IN_DOUBT", reservationId: "r3" },
      heldInRedis: "held",
    });
    await inv.close();
  });
});
