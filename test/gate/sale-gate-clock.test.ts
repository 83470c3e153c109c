// SaleGate on the process's Redis-synced clock: window decisions clearly away from a boundary cost no Redis
// command (INFO commandstats on a private server), one within the clock's error bound reads TIME, and the
// application's wall clock shifted by ±10 minutes changes no decision.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { Redis } from "ioredis";
import { RedisClock } from "../../src/internal/clock.js";
import { redisTimeMs } from "../../src/internal/time.js";
import { PurchaseTokens, SaleGate } from "../../src/gate/index.js";
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

const SECRET = "sale-gate-clock-test-secret-of-32-bytes";

/** Commands run by the server, per name, INFO itself left out. */
async function commandStats(): Promise<Record<string, number>> {
  const info = await redis.info("commandstats");
  const out: Record<string, number> = {};
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
    if (m[1] !== "info") out[m[1]!] = Number(m[2]);
  return out;
}
const total = (s: Record<string, number>) => Object.values(s).reduce((a, b) => a + b, 0);

/** Three gates on one client: not started (30 s ahead), open, ended. */
async function gates(client: Redis) {
  const now = await redisTimeMs(redis);
  const tokens = new PurchaseTokens(client, { secret: SECRET, prefix: randomPrefix(), ttlMs: 60_000 });
  const mk = (startsAt: number, endsAt?: number) =>
    new SaleGate(client, {
      saleId: randomPrefix(),
      startsAt,
      ...(endsAt !== undefined && { endsAt }),
      tokens,
    });
  return {
    now,
    before: mk(now + 30_000, now + 60_000),
    open: mk(now - 30_000, now + 60_000),
    ended: mk(now - 60_000, now - 30_000),
  };
}

describe("SaleGate on the process clock", () => {
  it("before the start, inside the window and after the end: 0 Redis commands once the clock has synced", async () => {
    const client = srv.client();
    const g = await gates(client);
    await RedisClock.for(client).ready();
    const before = await commandStats();
    const rs = await Promise.all(
      Array.from({ length: 500 }, (_, i) => g.before.admit({ userId: `u${i}`, sku: "s" })),
    );
    expect(rs.every((r) => !r.ok && r.reason === "NOT_STARTED")).toBe(true);
    for (const r of rs) if (!r.ok) expect(r.startsInMs).toBeGreaterThan(20_000);
    const ended = await Promise.all(
      Array.from({ length: 500 }, () => g.ended.admit({ userId: "u", sku: "s" })),
    );
    expect(ended.every((r) => !r.ok && r.reason === "ENDED")).toBe(true);
    // Open, no CAPTCHA: the token is signed in process, its expiry on the synced clock.
    const open = await Promise.all(
      Array.from({ length: 100 }, () => g.open.admit({ userId: "u", sku: "s" })),
    );
    expect(open.every((r) => r.ok)).toBe(true);
    const status = await g.before.status();
    expect(status.state).toBe("NOT_STARTED");
    expect(status.errorMs).toBeLessThan(1_000);
    expect(total(await commandStats())).toBe(total(before));
    // The expiry is Redis time + ttl, within the clock's error bound.
    const redisNow = await redisTimeMs(redis);
    for (const r of open)
      if (r.ok) expect(r.expiresAt).toBeLessThanOrEqual(redisNow + 60_000 + status.errorMs + 1);
  });

  it("within the clock's error bound of a boundary, the decision reads Redis TIME", async () => {
    const client = srv.client();
    const clock = RedisClock.for(client);
    await clock.ready();
    // Widen the error bound of the current sample to 60 s (as a slow round trip would), keeping its offset.
    const internals = clock as unknown as { sample: { offset: number; error: number; at: number } };
    internals.sample = { ...internals.sample, error: 60_000 };
    const g = await gates(client); // the not-started gate opens in 30 s: within 60 s of the estimate
    const before = await commandStats();
    const a = await g.before.admit({ userId: "u", sku: "s" });
    expect(a).toMatchObject({ ok: false, reason: "NOT_STARTED" });
    const after = await commandStats();
    expect((after.time ?? 0) - (before.time ?? 0)).toBe(1);
    expect(total(after) - total(before)).toBe(1);
    expect((await g.before.status()).errorMs).toBe(0); // read from Redis
  });

  it("before the first sample, Redis decides", async () => {
    const client = srv.client();
    const g = await gates(client);
    expect(await g.ended.admit({ userId: "u", sku: "s" })).toEqual({ ok: false, reason: "ENDED" });
    expect((await g.open.admit({ userId: "u", sku: "s" })).ok).toBe(true);
  });

  describe.each([
    ["10 minutes ahead", 600_000],
    ["10 minutes behind", -600_000],
    ["in step", 0],
  ] as const)("application clock %s", (_label, skew) => {
    it("changes no window decision", async () => {
      vi.useFakeTimers({ toFake: ["Date"], shouldAdvanceTime: true });
      vi.setSystemTime(Date.now() + skew);
      const client = srv.client(); // a fresh clock, synced while the application clock is off
      const g = await gates(client);
      for (let round = 0; round < 2; round++) {
        // Round 0 before the clock's first sample (Redis decides), round 1 on the synced clock.
        if (round === 1) await RedisClock.for(client).ready();
        const b = await g.before.admit({ userId: "u", sku: "s" });
        expect(b).toMatchObject({ ok: false, reason: "NOT_STARTED" });
        if (!b.ok) {
          expect(b.startsInMs).toBeGreaterThan(20_000);
          expect(b.startsInMs).toBeLessThanOrEqual(30_000);
        }
        const o = await g.open.admit({ userId: "u", sku: "s" });
        expect(o.ok).toBe(true);
        const redisNow = await redisTimeMs(redis);
        if (o.ok) {
          expect(o.expiresAt).toBeGreaterThan(g.now + 60_000 - 1);
          expect(o.expiresAt).toBeLessThanOrEqual(redisNow + 60_000 + 1_000);
        }
        expect(await g.ended.admit({ userId: "u", sku: "s" })).toEqual({ ok: false, reason: "ENDED" });
        const s = await g.before.status();
        expect(s.state).toBe("NOT_STARTED");
        expect(s.now).toBeGreaterThanOrEqual(g.now - 1_000);
        expect(s.now).toBeLessThanOrEqual(redisNow + 1_000);
        expect((await g.open.status()).state).toBe("OPEN");
        expect((await g.ended.status()).state).toBe("ENDED");
      }
    });
  });
});
