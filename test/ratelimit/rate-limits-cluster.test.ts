// RateLimits on a local 3-master Redis Cluster: limits on different slots are taken in parallel and
// refunded when one refuses, so a refusal still leaves the others where they were.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Cluster } from "ioredis";
import { RateLimits, TokenBucket } from "../../src/ratelimit/index.js";
import { keySlot } from "../../src/internal/slot.js";
import { startCluster, type LocalCluster } from "../support/cluster.js";
import { randomPrefix } from "../support/redis.js";
import { rateLimitsContract, threeLimits } from "./contract.js";

let cluster: LocalCluster;
let redis: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ masters: 3 });
  redis = cluster.client();
}, 60_000);
afterAll(async () => cluster?.stop());

describe("RateLimits (3-master Redis Cluster)", () => {
  rateLimitsContract({ redis: () => redis, exactRaw: false });

  it("computes the same slots as the server", async () => {
    for (const key of ["{fsk:u1}:tb", "plain", "{}x", "{a}{b}", "用户", "{rl:ip:2001:db8::/64}:tb"]) {
      expect(keySlot(key)).toBe(await redis.cluster("KEYSLOT", key));
    }
  });

  it("the three limits of a request land on different nodes", async () => {
    const t = threeLimits(redis);
    const keys = [t.user.keys("u1").bucket, t.ip.keys("10.0.0.9").bucket, t.api.keys("buy").bucket];
    const slots = new Set(keys.map(keySlot));
    expect(slots.size).toBe(3);
  });

  it("limits whose keys share a slot are decided by one script", async () => {
    // CRC16 is linear, so two prefixes of one length that differ in one place never collide for any user;
    // search over a prefix of varying length instead (a match turns up within some 16,384 tries).
    const tag = randomPrefix();
    const user = "u";
    const a = new TokenBucket(redis, { capacity: 2, refillPerSecond: 0.0001, prefix: `${tag}a` });
    let j = 0;
    while (keySlot(a.keys(user).bucket) !== keySlot(`{${tag}b${j}:${user}}:tb`)) {
      j++;
      if (j > 1_000_000) throw new Error("no colliding prefix found");
    }
    const b = new TokenBucket(redis, { capacity: 1, refillPerSecond: 0.0001, prefix: `${tag}b${j}` });
    expect(keySlot(b.keys(user).bucket)).toBe(keySlot(a.keys(user).bucket));
    const limits = new RateLimits<string>([
      { name: "a", bucket: a, key: (u) => u },
      { name: "b", bucket: b, key: (u) => u },
    ]);
    expect((await limits.check(user)).ok).toBe(true);
    const raw = await redis.get(a.keys(user).bucket);
    expect(raw).not.toBeNull();
    const r = await limits.check(user);
    expect(r).toMatchObject({ ok: false, rejectedBy: "b" });
    // One script refused without writing: "a" was never taken and refunded, so its value did not move.
    expect(await redis.get(a.keys(user).bucket)).toBe(raw);
    expect((await a.peek(user)).remaining).toBe(1);
  });

  it("a Redis error on one node refunds the others and throws", async () => {
    const t = threeLimits(redis);
    await redis.set(t.ip.keys("6.6.6.6").bucket, "garbage");
    await expect(t.limits.check({ user: "err", ip: "6.6.6.6" })).rejects.toThrow(
      /holds something other than a token bucket/,
    );
    expect((await t.user.peek("err")).remaining).toBe(5);
    expect((await t.api.peek("buy")).remaining).toBe(100);
  });
});
