// SaleGate with a waiting room: `admit` requires the user's pass and spends it once, last; forged, expired,
// replayed and other users' passes are refused and no purchase token is issued.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { InvalidArgumentError } from "../../src/errors.js";
import { redisTimeMs } from "../../src/internal/time.js";
import { PurchaseTokens, SaleGate } from "../../src/gate/index.js";
import { WaitingRoom } from "../../src/queue/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());

const SECRET = "sale-gate-pass-test-secret-of-32-bytes";

async function setup(passTtlMs = 60_000) {
  const now = await redisTimeMs(redis);
  const room = new WaitingRoom(redis, {
    roomId: randomPrefix("room"),
    secret: SECRET,
    maxActive: 2,
    passTtlMs,
  });
  const gate = new SaleGate(redis, {
    saleId: randomPrefix("sale"),
    startsAt: now - 1_000,
    tokens: new PurchaseTokens(redis, { secret: SECRET, prefix: randomPrefix() }),
    waitingRoom: room,
    eligible: ({ userId }) => userId !== "banned" || "BANNED",
  });
  return { room, gate };
}

async function passOf(room: WaitingRoom, userId: string) {
  const j = await room.join(userId);
  if (j.state !== "ADMITTED") throw new Error(`${userId}: ${j.state}`);
  return j;
}

describe("SaleGate with a waiting room", () => {
  it("requires a pass, spends it once, and refuses forged, replayed and other users' passes", async () => {
    const { room, gate } = await setup();
    const alice = await passOf(room, "alice");
    const bob = await passOf(room, "bob");
    expect(await gate.admit({ userId: "alice", sku: "s" })).toEqual({ ok: false, reason: "PASS_REQUIRED" });
    expect(await gate.admit({ userId: "alice", sku: "s", pass: "" })).toEqual({
      ok: false,
      reason: "PASS_REQUIRED",
    });
    const [kind, payload, sig] = alice.pass.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as Record<string, unknown>;
    const forged = `${kind}.${Buffer.from(JSON.stringify({ ...claims, u: "mallory" })).toString("base64url")}.${sig}`;
    expect(await gate.admit({ userId: "mallory", sku: "s", pass: forged })).toEqual({
      ok: false,
      reason: "PASS_REFUSED",
      detail: "INVALID",
    });
    expect(await gate.admit({ userId: "alice", sku: "s", pass: bob.pass })).toEqual({
      ok: false,
      reason: "PASS_REFUSED",
      detail: "WRONG_USER",
    });
    // Refused by an earlier check: the pass is not spent.
    expect(await gate.admit({ userId: "banned", sku: "s", pass: alice.pass })).toMatchObject({
      ok: false,
      reason: "NOT_ELIGIBLE",
    });
    const ok = await gate.admit({ userId: "alice", sku: "s", pass: alice.pass });
    expect(ok.ok).toBe(true);
    if (ok.ok) expect((await gate.redeem(ok.token, { userId: "alice", sku: "s" })).ok).toBe(true);
    // Replayed, at once from many requests: all refused.
    const replays = await Promise.all(
      Array.from({ length: 10 }, () => gate.admit({ userId: "alice", sku: "s", pass: alice.pass })),
    );
    for (const r of replays) expect(r).toEqual({ ok: false, reason: "PASS_REFUSED", detail: "USED" });
    // Bob's own pass still works, once.
    const both = await Promise.all([
      gate.admit({ userId: "bob", sku: "s", pass: bob.pass }),
      gate.admit({ userId: "bob", sku: "s", pass: bob.pass }),
    ]);
    expect(both.filter((r) => r.ok)).toHaveLength(1);
    await room.clear();
  });

  it("refuses an expired pass (Redis time)", async () => {
    const { room, gate } = await setup(1_000);
    const a = await passOf(room, "a");
    const deadline = performance.now() + 10_000;
    while ((await redisTimeMs(redis)) < a.expiresAt) {
      if (performance.now() > deadline) throw new Error("Redis time did not pass the expiry");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(await gate.admit({ userId: "a", sku: "s", pass: a.pass })).toEqual({
      ok: false,
      reason: "PASS_REFUSED",
      detail: "EXPIRED",
    });
    await room.clear();
  });

  it("refuses a waitingRoom option without redeemPass", async () => {
    const tokens = new PurchaseTokens(redis, { secret: SECRET });
    expect(
      () =>
        new SaleGate(redis, { saleId: "s", startsAt: 0, tokens, waitingRoom: {} as unknown as WaitingRoom }),
    ).toThrow(InvalidArgumentError);
  });
});
