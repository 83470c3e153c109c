// PurchaseTokens: a valid token works exactly once; reused, tampered, expired, other-user, other-SKU and
// other-sale tokens are refused, and a refusal writes nothing.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { Redis } from "ioredis";
import { InvalidArgumentError } from "../../src/errors.js";
import { PurchaseTokens, SaleGate } from "../../src/gate/index.js";
import { RedisClock } from "../../src/internal/clock.js";
import { Inventory } from "../../src/stock/index.js";
import { keyspace, randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

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

const SECRET = "a-test-secret-that-is-long-enough-32+";
const subject = { saleId: "s1", sku: "iphone-17", userId: "u42" };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Flips one character of a base64url string to another valid one. */
const flip = (s: string, at: number) => s.slice(0, at) + (s[at] === "A" ? "B" : "A") + s.slice(at + 1);

describe("PurchaseTokens", () => {
  it("a valid token works exactly once", async () => {
    const tokens = new PurchaseTokens(redis, { secret: SECRET, prefix: randomPrefix() });
    const { token, expiresAt } = await tokens.issue(subject);
    expect(token).toMatch(/^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    expect(await tokens.redeem(token, subject)).toEqual({ ok: true, expiresAt });
    expect(await tokens.redeem(token, subject)).toEqual({ ok: false, reason: "USED" });
    // A second token for the same purchase is independent.
    const again = await tokens.issue(subject);
    expect((await tokens.redeem(again.token, subject)).ok).toBe(true);
  });

  it("refuses other-user, other-SKU and other-sale tokens without spending them", async () => {
    const prefix = randomPrefix();
    const tokens = new PurchaseTokens(redis, { secret: SECRET, prefix });
    const { token } = await tokens.issue(subject);
    const before = await keyspace(redis, `{${prefix}:*`);
    expect(await tokens.redeem(token, { ...subject, userId: "thief" })).toEqual({
      ok: false,
      reason: "WRONG_USER",
    });
    expect(await tokens.redeem(token, { ...subject, sku: "ipad" })).toEqual({
      ok: false,
      reason: "WRONG_SKU",
    });
    expect(await tokens.redeem(token, { ...subject, saleId: "s2" })).toEqual({
      ok: false,
      reason: "WRONG_SALE",
    });
    expect(await keyspace(redis, `{${prefix}:*`)).toEqual(before);
    // The rightful owner can still use it.
    expect((await tokens.redeem(token, subject)).ok).toBe(true);
  });

  it("refuses tampered and foreign tokens", async () => {
    const prefix = randomPrefix();
    const tokens = new PurchaseTokens(redis, { secret: SECRET, prefix });
    const { token } = await tokens.issue(subject);
    const [v, payload, sig] = token.split(".") as [string, string, string];
    // A payload rewritten to another user, signature kept.
    const forged = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload, "base64url").toString()), u: "thief" }),
    ).toString("base64url");
    const cases = [
      `${v}.${forged}.${sig}`,
      `${v}.${flip(payload, 5)}.${sig}`,
      `${v}.${payload}.${flip(sig, 3)}`,
      `${v}.${payload}.${sig.slice(0, -2)}`,
      `v2.${payload}.${sig}`,
      `${v}.${payload}`,
      "",
      "not a token",
      "x".repeat(5000),
      (await new PurchaseTokens(redis, { secret: `${SECRET}-other`, prefix }).issue(subject)).token,
    ];
    for (const t of cases) {
      expect(await tokens.redeem(t, { ...subject, userId: "thief" })).toEqual({
        ok: false,
        reason: "INVALID",
      });
      expect(await tokens.redeem(t, subject)).toEqual({ ok: false, reason: "INVALID" });
    }
    expect(await tokens.redeem(42 as unknown as string, subject)).toEqual({ ok: false, reason: "INVALID" });
    expect(await redis.keys(`{${prefix}:*`)).toEqual([]);
    expect((await tokens.redeem(token, subject)).ok).toBe(true);
  });

  it("refuses expired tokens by Redis time, whatever the application clock says", async () => {
    const prefix = randomPrefix();
    const tokens = new PurchaseTokens(redis, { secret: SECRET, prefix, ttlMs: 200 });
    const late = await tokens.issue(subject);
    await sleep(300);
    expect(await tokens.redeem(late.token, subject)).toEqual({ ok: false, reason: "EXPIRED" });
    expect(await redis.keys(`{${prefix}:*`)).toEqual([]);
    // The application clock an hour behind does not revive an expired token, nor does one an hour ahead
    // expire a fresh one.
    const fresh = await tokens.issue(subject);
    const stale = await tokens.issue(subject);
    await sleep(300);
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.now() - 3_600_000);
    expect(await tokens.redeem(stale.token, subject)).toEqual({ ok: false, reason: "EXPIRED" });
    vi.setSystemTime(Date.now() + 7_200_000);
    const longer = new PurchaseTokens(redis, { secret: SECRET, prefix, ttlMs: 60_000 });
    const ahead = await longer.issue(subject);
    expect(ahead.expiresAt).toBeLessThan(Date.now() - 3_000_000); // issued on Redis time, not the fake clock
    expect((await longer.redeem(ahead.token, subject)).ok).toBe(true);
    expect(fresh.expiresAt).toBeGreaterThan(0);
  });

  it("the used marker expires with the token", async () => {
    const prefix = randomPrefix();
    const tokens = new PurchaseTokens(redis, { secret: SECRET, prefix, ttlMs: 5_000 });
    const { token } = await tokens.issue(subject);
    await tokens.redeem(token, subject);
    const [key] = await redis.keys(`{${prefix}:*`);
    const ttl = await redis.pttl(key!);
    expect(ttl).toBeGreaterThan(4_000);
    expect(ttl).toBeLessThanOrEqual(5_000);
  });

  it("under a crowd of redeemers a token works exactly once", async () => {
    const prefix = randomPrefix();
    const clients = [srv.client(), srv.client(), srv.client(), srv.client()];
    const issuer = new PurchaseTokens(redis, { secret: SECRET, prefix });
    const { token } = await issuer.issue(subject);
    const all = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        new PurchaseTokens(clients[i % 4]!, { secret: SECRET, prefix }).redeem(token, subject),
      ),
    );
    expect(all.filter((r) => r.ok)).toHaveLength(1);
    expect(all.filter((r) => !r.ok && r.reason === "USED")).toHaveLength(199);
  });

  it("redeems that arrive together share one script call, each judged on its own and in order", async () => {
    const calls = async () =>
      Number(/cmdstat_evalsha:calls=(\d+)/.exec(await redis.info("commandstats"))?.[1] ?? 0) +
      Number(/cmdstat_eval:calls=(\d+)/.exec(await redis.info("commandstats"))?.[1] ?? 0);
    for (const batch of [true, false]) {
      const prefix = randomPrefix();
      const tokens = new PurchaseTokens(redis, { secret: SECRET, prefix, batch });
      const users = Array.from({ length: 40 }, (_, i) => ({ ...subject, userId: `u${i}` }));
      const issued = await Promise.all(users.map((u) => tokens.issue(u)));
      const [t0] = (await redis.time()).map(Number);
      const expired = tokens.issueAt(users[0]!, t0! * 1000 - 120_000);
      const before = await calls();
      const all = await Promise.all([
        ...issued.map((t, i) => tokens.redeem(t.token, users[i]!)),
        tokens.redeem(issued[3]!.token, users[3]!), // the same token twice in one batch: once
        tokens.redeem(expired.token, users[0]!),
        tokens.redeem(issued[5]!.token, users[5]!, { saleEndsAt: 1 }), // spent above, checked in order
        tokens.redeem(issued[6]!.token, { ...users[6]!, userId: "thief" }), // refused before Redis
      ]);
      const sent = (await calls()) - before;
      expect(all.slice(0, 40).every((r) => r.ok)).toBe(true);
      expect(all.slice(40)).toEqual([
        { ok: false, reason: "USED" },
        { ok: false, reason: "EXPIRED" },
        { ok: false, reason: "SALE_ENDED" },
        { ok: false, reason: "WRONG_USER" },
      ]);
      // Batched: one call (the batch is under 64 tokens); unbatched: one per redeem that reached Redis.
      expect(sent).toBe(batch ? 1 : 43);
      expect(await redis.keys(`{${prefix}:*`)).toHaveLength(40);
    }
    expect(() => new PurchaseTokens(redis, { secret: SECRET, batch: 1 as unknown as boolean })).toThrow(
      /batch must be a boolean/,
    );
  });

  it("rotates secrets: signs with the first, accepts any", async () => {
    const prefix = randomPrefix();
    const OLD = `${SECRET}-old`;
    const oldTokens = new PurchaseTokens(redis, { secret: OLD, prefix });
    const rotated = new PurchaseTokens(redis, { secret: [SECRET, OLD], prefix });
    const { token } = await oldTokens.issue(subject);
    expect((await rotated.redeem(token, subject)).ok).toBe(true);
    const fresh = await rotated.issue(subject);
    expect(await oldTokens.redeem(fresh.token, subject)).toEqual({ ok: false, reason: "INVALID" });
    expect(
      (await new PurchaseTokens(redis, { secret: SECRET, prefix }).redeem(fresh.token, subject)).ok,
    ).toBe(true);
  });

  it("refuses bad options and subjects", async () => {
    expect(() => new PurchaseTokens(redis, { secret: "short" })).toThrow(/at least 32 bytes/);
    expect(() => new PurchaseTokens(redis, { secret: [] })).toThrow(/secret/);
    expect(() => new PurchaseTokens(redis, { secret: SECRET, ttlMs: 0 })).toThrow(/ttlMs/);
    const tokens = new PurchaseTokens(redis, { secret: Buffer.alloc(32, 7) });
    await expect(tokens.issue({ ...subject, userId: "a b" })).rejects.toThrow(InvalidArgumentError);
    await expect(tokens.redeem("x", { ...subject, sku: "{x}" })).rejects.toThrow(InvalidArgumentError);
    // A saleEndsAt that is no time is refused, and the token stays unspent.
    const { token } = await tokens.issue(subject);
    for (const saleEndsAt of [Number.NaN, "soon" as never, -1])
      await expect(tokens.redeem(token, subject, { saleEndsAt })).rejects.toThrow(/saleEndsAt/);
    await expect(tokens.redeem(token, subject, null as never)).rejects.toThrow(InvalidArgumentError);
    expect(await tokens.redeem(token, subject)).toMatchObject({ ok: true });
  });
});

/** Calls of every command the server has run so far (INFO commandstats; the INFO itself included). */
async function commandCalls(): Promise<number> {
  const info = await redis.info("commandstats");
  return [...info.matchAll(/calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
}

/** Redis time, ms. */
async function redisMs(): Promise<number> {
  const [sec, us] = await redis.time();
  return Number(sec) * 1000 + Math.floor(Number(us) / 1000);
}

/** Resolves once Redis time is at or past `ms` (polled, with a deadline). */
async function redisTimeReaches(ms: number): Promise<void> {
  const deadline = performance.now() + 10_000;
  for (;;) {
    if ((await redisMs()) >= ms) return;
    if (performance.now() > deadline) throw new Error(`Redis time never reached ${ms}`);
    await sleep(20);
  }
}

describe("PurchaseTokens.verify", () => {
  it("checks a token without spending it or calling Redis; reserving under its nonce makes it single use", async () => {
    const prefix = randomPrefix();
    const tokens = new PurchaseTokens(redis, { secret: SECRET, prefix });
    const { token, expiresAt } = await tokens.issue(subject);
    const first = await tokens.verify(token, subject); // may sample the clock (TIME) on first use
    await RedisClock.for(redis).sync(); // the clock's samples are taken
    expect(first).toEqual({ ok: true, expiresAt, nonce: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/) });
    const before = await commandCalls();
    for (let i = 0; i < 50; i++) expect(await tokens.verify(token, subject)).toEqual(first);
    expect(await commandCalls()).toBe(before + 1); // the INFO that counted: no TIME, no write
    expect(await redis.keys(`{${prefix}:*`)).toEqual([]);
    // Another token for the same subject has its own nonce.
    const other = await tokens.issue(subject);
    const v2 = await tokens.verify(other.token, subject);
    expect(v2.ok && first.ok && v2.nonce !== first.nonce).toBe(true);

    // Single use through the reservation: a second buy with the token replays the first, never reserves again.
    const inventory = new Inventory(redis, { prefix: randomPrefix() });
    try {
      await inventory.setStock(subject.sku, 5);
      const reservationId = `t-${first.ok ? first.nonce : ""}`;
      const buy = () => inventory.reserve(subject.sku, { userId: subject.userId, reservationId });
      const a = await buy();
      expect(a).toEqual({ ok: true, reservationId, remaining: 4 });
      expect(await buy()).toEqual(a);
      expect((await inventory.snapshot(subject.sku))?.available).toBe(4);
    } finally {
      await inventory.close();
    }
    // redeem still spends it once, independently of verify.
    expect((await tokens.redeem(token, subject)).ok).toBe(true);
    expect(await tokens.verify(token, subject)).toEqual(first); // verify does not know of the redeem
  });

  it("refuses what redeem refuses (but USED), by Redis time, and writes nothing", async () => {
    const prefix = randomPrefix();
    const tokens = new PurchaseTokens(redis, { secret: SECRET, prefix, ttlMs: 300 });
    const { token, expiresAt } = await tokens.issue(subject);
    expect(await tokens.verify(token, { ...subject, userId: "u43" })).toEqual({
      ok: false,
      reason: "WRONG_USER",
    });
    expect(await tokens.verify(token, { ...subject, sku: "ipad" })).toEqual({
      ok: false,
      reason: "WRONG_SKU",
    });
    expect(await tokens.verify(token, { ...subject, saleId: "s2" })).toEqual({
      ok: false,
      reason: "WRONG_SALE",
    });
    const [v, payload, sig] = token.split(".") as [string, string, string];
    expect(await tokens.verify(`${v}.${payload}.${flip(sig, 3)}`, subject)).toEqual({
      ok: false,
      reason: "INVALID",
    });
    expect(await tokens.verify("nonsense", subject)).toEqual({ ok: false, reason: "INVALID" });
    // The sale's end, by Redis time: one already past refuses, one ahead does not.
    const now = await redisMs();
    expect(await tokens.verify(token, subject, { saleEndsAt: now - 1_000 })).toEqual({
      ok: false,
      reason: "SALE_ENDED",
    });
    expect((await tokens.verify(token, subject, { saleEndsAt: now + 60_000 })).ok).toBe(true);
    // Expiry by Redis time, whatever the application's Date says.
    await redisTimeReaches(expiresAt);
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.now() - 3_600_000);
    expect(await tokens.verify(token, subject)).toEqual({ ok: false, reason: "EXPIRED" });
    vi.useRealTimers();
    const fresh = await tokens.issue(subject);
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.now() + 7_200_000);
    expect((await tokens.verify(fresh.token, subject)).ok).toBe(true);
    vi.useRealTimers();
    expect(await redis.keys(`{${prefix}:*`)).toEqual([]);
  });

  it("accepts one spelling of a token only: padding, junk and the last character's unused bits are refused", async () => {
    const prefix = randomPrefix();
    const tokens = new PurchaseTokens(redis, { secret: SECRET, prefix });
    const { token } = await tokens.issue(subject);
    const sig = token.slice(token.lastIndexOf(".") + 1);
    // The 43rd base64url character carries 4 bits of the 32-byte signature and 2 unused ones: the next
    // character in the alphabet decodes to the same bytes.
    const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const last = sig.at(-1)!;
    const sameBytes = `${token.slice(0, -1)}${ALPHABET[ALPHABET.indexOf(last) ^ 1]}`;
    expect(Buffer.from(sameBytes.slice(sameBytes.lastIndexOf(".") + 1), "base64url")).toEqual(
      Buffer.from(sig, "base64url"),
    );
    for (const t of [`${token}=`, `${token}==`, `${token}!`, `${token} `, `${token}\n`, sameBytes]) {
      expect(await tokens.verify(t, subject), JSON.stringify(t)).toEqual({ ok: false, reason: "INVALID" });
      expect(await tokens.redeem(t, subject), JSON.stringify(t)).toEqual({ ok: false, reason: "INVALID" });
    }
    expect(await redis.keys(`{${prefix}:*`)).toEqual([]);
    expect((await tokens.verify(token, subject)).ok).toBe(true);
  });

  it("SaleGate.verify binds the token to the gate's sale and refuses it once the sale has ended", async () => {
    const now = await redisMs();
    const tokens = new PurchaseTokens(redis, { secret: SECRET, prefix: randomPrefix() });
    const gate = new SaleGate(redis, { saleId: "s1", startsAt: now - 1_000, endsAt: now + 400, tokens });
    const { token } = await tokens.issue(subject);
    expect(await gate.verify(token, { userId: "u42", sku: "iphone-17" })).toMatchObject({ ok: true });
    expect(await gate.verify(token, { userId: "u42", sku: "ipad" })).toEqual({
      ok: false,
      reason: "WRONG_SKU",
    });
    const other = await tokens.issue({ ...subject, saleId: "s2" });
    expect(await gate.verify(other.token, { userId: "u42", sku: "iphone-17" })).toEqual({
      ok: false,
      reason: "WRONG_SALE",
    });
    await redisTimeReaches(now + 400);
    expect(await gate.verify(token, { userId: "u42", sku: "iphone-17" })).toEqual({
      ok: false,
      reason: "SALE_ENDED",
    });
  });

  it("refuses bad subjects and options with a typed error", async () => {
    const tokens = new PurchaseTokens(redis, { secret: SECRET, prefix: randomPrefix() });
    const { token } = await tokens.issue(subject);
    await expect(tokens.verify(token, { ...subject, sku: "{x}" })).rejects.toThrow(InvalidArgumentError);
    await expect(tokens.verify(token, null as never)).rejects.toThrow(InvalidArgumentError);
    for (const saleEndsAt of [Number.NaN, "soon" as never, -1])
      await expect(tokens.verify(token, subject, { saleEndsAt })).rejects.toThrow(/saleEndsAt/);
    await expect(tokens.verify(token, subject, { other: 1 } as never)).rejects.toThrow(InvalidArgumentError);
    const gate = new SaleGate(redis, { saleId: "s1", startsAt: 0, tokens });
    await expect(gate.verify(token, { userId: "u42" } as never)).rejects.toThrow(InvalidArgumentError);
    await expect(gate.verify(token, { userId: "u42", sku: "iphone-17", x: 1 } as never)).rejects.toThrow(
      InvalidArgumentError,
    );
  });
});
