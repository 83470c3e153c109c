// SaleGate: the window on Redis time (an application clock 60 s ahead opens nothing), eligibility (members,
// levels), CAPTCHA, and the purchase token from admission to a single redemption.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { Redis } from "ioredis";
import { redisTimeMs } from "../../src/internal/time.js";
import { PurchaseTokens, RedisCaptcha, SaleGate, type CaptchaVerifier } from "../../src/gate/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());
afterEach(() => {
  vi.useRealTimers();
});

const SECRET = "sale-gate-test-secret-of-32-bytes-or-more";
const tokens = () => new PurchaseTokens(redis, { secret: SECRET, prefix: randomPrefix() });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("SaleGate window", () => {
  it("is closed before startsAt by Redis time even when the application clock is 60 s ahead", async () => {
    const now = await redisTimeMs(redis);
    const gate = new SaleGate(redis, { saleId: randomPrefix(), startsAt: now + 30_000, tokens: tokens() });
    vi.useFakeTimers({ toFake: ["Date"], shouldAdvanceTime: true });
    vi.setSystemTime(now + 60_000);
    expect(Date.now()).toBeGreaterThanOrEqual(gate.startsAt); // the application thinks the sale is open
    const a = await gate.admit({ userId: "u1", sku: "sku-1" });
    expect(a).toMatchObject({ ok: false, reason: "NOT_STARTED" });
    if (!a.ok) {
      expect(a.startsInMs).toBeGreaterThan(29_000);
      expect(a.startsInMs).toBeLessThanOrEqual(30_000);
    }
    const s = await gate.status();
    expect(s.state).toBe("NOT_STARTED");
    expect(Math.abs(s.now - now)).toBeLessThan(5_000);
  });

  it("is open after startsAt by Redis time even when the application clock is 60 s behind", async () => {
    const now = await redisTimeMs(redis);
    const gate = new SaleGate(redis, { saleId: randomPrefix(), startsAt: now - 1_000, tokens: tokens() });
    vi.useFakeTimers({ toFake: ["Date"], shouldAdvanceTime: true });
    vi.setSystemTime(now - 60_000);
    const a = await gate.admit({ userId: "u1", sku: "sku-1" });
    expect(a.ok).toBe(true);
    expect((await gate.status()).state).toBe("OPEN");
  });

  it("opens at startsAt and closes at endsAt, in that order, never going back", async () => {
    const now = await redisTimeMs(redis);
    const gate = new SaleGate(redis, {
      saleId: randomPrefix(),
      startsAt: now + 300,
      endsAt: now + 1_500,
      tokens: tokens(),
    });
    // Poll (no timing assumption): the answers run NOT_STARTED…, then ok…, then ENDED, and each state is
    // confirmed by Redis TIME read right after it.
    const seen: string[] = [];
    for (;;) {
      const a = await gate.admit({ userId: "u", sku: "s" });
      const t = await redisTimeMs(redis);
      const state = a.ok ? "OPEN" : a.reason;
      if (state === "NOT_STARTED") expect(t).toBeLessThan(now + 300 + 1_000); // read after: may be past
      if (state === "OPEN") expect(t).toBeGreaterThanOrEqual(now + 300);
      if (state === "ENDED") expect(t).toBeGreaterThanOrEqual(now + 1_500);
      if (seen.at(-1) !== state) seen.push(state);
      if (state === "ENDED") break;
      await sleep(20);
    }
    expect(seen).toEqual(["NOT_STARTED", "OPEN", "ENDED"]);
    expect((await gate.status()).state).toBe("ENDED");
  });
});

describe("SaleGate admission", () => {
  interface Member {
    readonly member: boolean;
    readonly level: number;
  }
  const open = async () => (await redisTimeMs(redis)) - 1_000;

  it("admits only eligible users: members of level 3 and up", async () => {
    const gate = new SaleGate<Member>(redis, {
      saleId: randomPrefix(),
      startsAt: await open(),
      tokens: tokens(),
      eligible: async ({ context, sku }) =>
        !context.member ? "NOT_A_MEMBER" : context.level < 3 ? "LEVEL_TOO_LOW" : sku !== "banned",
    });
    expect(await gate.admit({ userId: "a", sku: "s", context: { member: false, level: 9 } })).toEqual({
      ok: false,
      reason: "NOT_ELIGIBLE",
      detail: "NOT_A_MEMBER",
    });
    expect(await gate.admit({ userId: "b", sku: "s", context: { member: true, level: 2 } })).toEqual({
      ok: false,
      reason: "NOT_ELIGIBLE",
      detail: "LEVEL_TOO_LOW",
    });
    expect(await gate.admit({ userId: "c", sku: "banned", context: { member: true, level: 5 } })).toEqual({
      ok: false,
      reason: "NOT_ELIGIBLE",
    });
    expect((await gate.admit({ userId: "d", sku: "s", context: { member: true, level: 3 } })).ok).toBe(true);
  });

  it("requires the CAPTCHA and spends it only once window and eligibility passed", async () => {
    const prefix = randomPrefix();
    const captcha = new RedisCaptcha(redis, { prefix, generate: () => ({ svg: "<svg/>", answer: "12" }) });
    const saleId = randomPrefix();
    const t = tokens();
    const gate = new SaleGate<Member>(redis, {
      saleId,
      startsAt: await open(),
      tokens: t,
      captcha,
      eligible: ({ context }) => context.member,
    });
    const { id } = await captcha.create({ userId: "u" });
    expect(await gate.admit({ userId: "u", sku: "s", context: { member: true, level: 1 } })).toEqual({
      ok: false,
      reason: "CAPTCHA_REQUIRED",
    });
    // Not eligible: the challenge is left alone.
    expect(
      (
        await gate.admit({
          userId: "u",
          sku: "s",
          context: { member: false, level: 1 },
          captcha: { id, answer: "12" },
        })
      ).ok,
    ).toBe(false);
    expect(await redis.exists(`{${prefix}:${id}}:captcha`)).toBe(1);
    // Not started: left alone too.
    const later = new SaleGate(redis, {
      saleId,
      startsAt: (await redisTimeMs(redis)) + 60_000,
      tokens: t,
      captcha,
    });
    expect((await later.admit({ userId: "u", sku: "s", captcha: { id, answer: "12" } })).ok).toBe(false);
    expect(await redis.exists(`{${prefix}:${id}}:captcha`)).toBe(1);
    // Wrong answer: refused and spent.
    const wrong = await captcha.create({ userId: "u" });
    expect(
      await gate.admit({
        userId: "u",
        sku: "s",
        context: { member: true, level: 1 },
        captcha: { id: wrong.id, answer: "13" },
      }),
    ).toEqual({ ok: false, reason: "CAPTCHA_FAILED" });
    // Right answer: a token.
    const a = await gate.admit({
      userId: "u",
      sku: "s",
      context: { member: true, level: 1 },
      captcha: { id, answer: "12" },
    });
    expect(a.ok).toBe(true);
    // The same challenge again: spent.
    expect(
      await gate.admit({
        userId: "u",
        sku: "s",
        context: { member: true, level: 1 },
        captcha: { id, answer: "12" },
      }),
    ).toEqual({ ok: false, reason: "CAPTCHA_FAILED" });
  });

  it("a sale that ends while the eligibility check runs: ENDED, no token, the CAPTCHA left unspent", async () => {
    const now = await redisTimeMs(redis);
    const captcha = new RedisCaptcha(redis, {
      prefix: randomPrefix(),
      generate: () => ({ svg: "<svg/>", answer: "7" }),
    });
    const gate = new SaleGate<undefined>(redis, {
      saleId: randomPrefix(),
      startsAt: now - 1_000,
      endsAt: now + 300,
      tokens: new PurchaseTokens(redis, { secret: SECRET, prefix: randomPrefix() }),
      captcha,
      eligible: async () => {
        await sleep(500); // a registry lookup, during which the sale ends
        return true;
      },
    });
    const { id } = await captcha.create({ userId: "u1" });
    expect(await gate.admit({ userId: "u1", sku: "s", captcha: { id, answer: "7" } })).toEqual({
      ok: false,
      reason: "ENDED",
    });
    expect(await captcha.verify({ id, answer: "7" }, { userId: "u1" })).toBe(true); // still there
  });

  it("hands a custom verifier the user and the client's address", async () => {
    const seen: unknown[] = [];
    const hosted: CaptchaVerifier = {
      async verify(response, subject) {
        seen.push({ response, subject });
        return response.answer === "widget-token-ok";
      },
    };
    const gate = new SaleGate(redis, {
      saleId: randomPrefix(),
      startsAt: await open(),
      tokens: tokens(),
      captcha: hosted,
    });
    expect((await gate.admit({ userId: "u", sku: "s", captcha: { answer: "bad" } })).ok).toBe(false);
    const a = await gate.admit({
      userId: "u",
      sku: "s",
      captcha: { answer: "widget-token-ok" },
      remoteIp: "203.0.113.9",
    });
    expect(a.ok).toBe(true);
    expect(seen[1]).toEqual({
      response: { answer: "widget-token-ok" },
      subject: { userId: "u", remoteIp: "203.0.113.9" },
    });
  });

  it("from admission to purchase: the token works once, for its user and SKU", async () => {
    const gate = new SaleGate(redis, { saleId: randomPrefix(), startsAt: await open(), tokens: tokens() });
    const a = await gate.admit({ userId: "u42", sku: "iphone-17" });
    if (!a.ok) throw new Error("not admitted");
    expect(await gate.redeem(a.token, { userId: "u7", sku: "iphone-17" })).toEqual({
      ok: false,
      reason: "WRONG_USER",
    });
    expect(await gate.redeem(a.token, { userId: "u42", sku: "ipad" })).toEqual({
      ok: false,
      reason: "WRONG_SKU",
    });
    expect(await gate.redeem(a.token, { userId: "u42", sku: "iphone-17" })).toEqual({
      ok: true,
      expiresAt: a.expiresAt,
    });
    expect(await gate.redeem(a.token, { userId: "u42", sku: "iphone-17" })).toEqual({
      ok: false,
      reason: "USED",
    });
    // A token of another sale (same secret) is refused here.
    const other = new SaleGate(redis, { saleId: randomPrefix(), startsAt: await open(), tokens: tokens() });
    const o = await other.admit({ userId: "u42", sku: "iphone-17" });
    if (!o.ok) throw new Error("not admitted");
    expect(await gate.redeem(o.token, { userId: "u42", sku: "iphone-17" })).toEqual({
      ok: false,
      reason: "WRONG_SALE",
    });
  });

  it("a token is refused once the sale has ended", async () => {
    const now = await redisTimeMs(redis);
    const gate = new SaleGate(redis, {
      saleId: randomPrefix(),
      startsAt: now - 1_000,
      endsAt: now + 300,
      tokens: tokens(),
    });
    const a = await gate.admit({ userId: "u", sku: "s" });
    if (!a.ok) throw new Error("not admitted");
    await sleep(400);
    expect(await gate.redeem(a.token, { userId: "u", sku: "s" })).toEqual({
      ok: false,
      reason: "SALE_ENDED",
    });
  });

  it("refuses bad options", async () => {
    const t = tokens();
    expect(() => new SaleGate(redis, { saleId: "a b", startsAt: 0, tokens: t })).toThrow(/saleId/);
    expect(() => new SaleGate(redis, { saleId: "s", startsAt: 1.5, tokens: t })).toThrow(/startsAt/);
    expect(() => new SaleGate(redis, { saleId: "s", startsAt: 10, endsAt: 10, tokens: t })).toThrow(/endsAt/);
    expect(() => new SaleGate(redis, { saleId: "s", startsAt: 0, tokens: {} as PurchaseTokens })).toThrow(
      /tokens/,
    );
    const gate = new SaleGate(redis, { saleId: "s", startsAt: 0, tokens: t });
    await expect(gate.admit({ userId: "{u}", sku: "s" })).rejects.toThrow(/userId/);
    await expect(gate.redeem("v1.x.y", undefined as never)).rejects.toThrow(/expected must be an object/);
    expect(() => new SaleGate(redis, null as never)).toThrow(/options must be an object/);
  });
});
