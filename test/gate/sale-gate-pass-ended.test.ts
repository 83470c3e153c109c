// SaleGate re-checks the end of the sale after the CAPTCHA verifier too (a hosted CAPTCHA is an HTTP call): a
// sale that ends while the CAPTCHA is judged answers ENDED, keeps the user's waiting-room pass and issues no
// purchase token that could only be refused. (Found in review: it used to spend the pass and issue a token.)
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { redisTimeMs } from "../../src/internal/time.js";
import { PurchaseTokens, SaleGate, type CaptchaVerifier } from "../../src/gate/index.js";
import { WaitingRoom } from "../../src/queue/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());

const SECRET = "review-b-gate-pass-secret-of-32-bytes!!";

describe("review-b: SaleGate, a sale that ends while the CAPTCHA is judged", () => {
  it("answers ENDED and leaves the pass unspent", async () => {
    const now = await redisTimeMs(redis);
    const endsAt = now + 1_500;
    const room = new WaitingRoom(redis, { roomId: randomPrefix("room"), secret: SECRET, maxActive: 5 });
    // A hosted CAPTCHA that answers after the sale's end (waits for Redis time to pass endsAt, bounded).
    const slowCaptcha: CaptchaVerifier = {
      async verify() {
        const deadline = Date.now() + 10_000;
        while ((await redisTimeMs(redis)) <= endsAt) {
          if (Date.now() > deadline) throw new Error("Redis time never passed endsAt");
          await new Promise((r) => setTimeout(r, 20));
        }
        return true;
      },
    };
    const gate = new SaleGate(redis, {
      saleId: randomPrefix("sale"),
      startsAt: now - 1_000,
      endsAt,
      tokens: new PurchaseTokens(redis, { secret: SECRET, prefix: randomPrefix() }),
      waitingRoom: room,
      captcha: slowCaptcha,
    });
    const j = await room.join("alice");
    if (j.state !== "ADMITTED") throw new Error(j.state);
    const r = await gate.admit({
      userId: "alice",
      sku: "s",
      pass: j.pass,
      captcha: { id: "x", answer: "y" },
    });
    const redeemed = r.ok ? await gate.redeem(r.token, { userId: "alice", sku: "s" }) : undefined;
    const passLeft = await room.redeemPass(j.pass, { userId: "alice" });
    // Expected: the gate sees the sale has ended (as it does after `eligible`), issues no token, keeps the pass.
    expect({ admit: r.ok ? "ok (token issued)" : r.reason, redeemed, passStillValid: passLeft.ok }).toEqual({
      admit: "ENDED",
      redeemed: undefined,
      passStillValid: true,
    });
  });
});
