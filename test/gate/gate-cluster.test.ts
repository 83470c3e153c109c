// The gate on a local 3-master Redis Cluster: each token and challenge is one key on its own slot.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Cluster } from "ioredis";
import { PurchaseTokens, RedisCaptcha, SaleGate } from "../../src/gate/index.js";
import { startCluster, type LocalCluster } from "../support/cluster.js";
import { randomPrefix } from "../support/redis.js";

let cluster: LocalCluster;
let redis: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ masters: 3 });
  redis = cluster.client();
}, 60_000);
afterAll(async () => cluster?.stop());

describe("SaleGate (3-master Redis Cluster)", () => {
  it("admits with a CAPTCHA and redeems each token exactly once", async () => {
    const prefix = randomPrefix();
    const captcha = new RedisCaptcha(redis, { prefix, generate: () => ({ svg: "<svg/>", answer: "9" }) });
    const tokens = new PurchaseTokens(redis, { secret: "cluster-test-secret-of-32-bytes-min", prefix });
    const gate = new SaleGate(redis, { saleId: "s", startsAt: 0, tokens, captcha });
    const issued: string[] = [];
    for (let i = 0; i < 12; i++) {
      const { id } = await captcha.create({ userId: `u${i}` });
      const a = await gate.admit({ userId: `u${i}`, sku: "sku", captcha: { id, answer: "9" } });
      if (!a.ok) throw new Error(`not admitted: ${a.reason}`);
      issued.push(a.token);
    }
    const first = await Promise.all(issued.map((t, i) => gate.redeem(t, { userId: `u${i}`, sku: "sku" })));
    const again = await Promise.all(issued.map((t, i) => gate.redeem(t, { userId: `u${i}`, sku: "sku" })));
    expect(first.every((r) => r.ok)).toBe(true);
    expect(again.every((r) => !r.ok && r.reason === "USED")).toBe(true);
    expect((await gate.status()).state).toBe("OPEN");
  });
});
