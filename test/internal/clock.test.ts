// RedisClock: Redis time in process, with an error bound that always contains the server's clock, and
// verdicts the application's own clock cannot move.
import type { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { InvalidArgumentError, RedisUnavailableError } from "../../src/errors.js";
import { RedisClock } from "../../src/internal/clock.js";
import { startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => {
  await srv.stop();
});
afterEach(() => {
  vi.restoreAllMocks();
});

async function serverMs(): Promise<number> {
  const [s, us] = await redis.time();
  return Number(s) * 1000 + Number(us) / 1000;
}

describe("RedisClock", () => {
  it("brackets the server's clock: a TIME read between two readings lies within their error bounds", async () => {
    const clock = new RedisClock(redis);
    await clock.ready();
    for (let i = 0; i < 50; i++) {
      const before = clock.read()!;
      const server = await serverMs();
      const after = clock.read()!;
      expect(server).toBeGreaterThanOrEqual(before.ms - before.errorMs);
      expect(server).toBeLessThanOrEqual(after.ms + after.errorMs);
    }
  });

  it("decides before / after / unsure against boundaries, and the application's clock moves none of them", async () => {
    const clock = new RedisClock(redis);
    const { ms } = await clock.ready();
    const boundaries = [ms - 3_600_000, ms - 60_000, ms + 60_000, ms + 3_600_000];
    const verdicts = () => boundaries.map((b) => clock.compare(b));
    const plain = verdicts();
    expect(plain).toEqual(["after", "after", "before", "before"]);
    const realNow = Date.now.bind(Date);
    for (const shift of [-600_000, 600_000]) {
      vi.spyOn(Date, "now").mockImplementation(() => realNow() + shift);
      expect(verdicts()).toEqual(plain);
      vi.restoreAllMocks();
    }
    // At the boundary itself the clock cannot tell: Redis decides.
    const r = clock.read()!;
    expect(clock.compare(r.ms)).toBe("unsure");
  });

  it("is shared per client, and concurrent syncs share one round of samples", async () => {
    expect(RedisClock.for(redis)).toBe(RedisClock.for(redis));
    const clock = new RedisClock(redis, { samples: 2 });
    const [a, b] = [clock.sync(), clock.sync()];
    expect(a).toBe(b);
    await a;
  });

  it("has no reading while Redis is unreachable, and says why", async () => {
    const dead = srv.client({
      port: 1,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    dead.on("error", () => undefined);
    const clock = new RedisClock(dead, { samples: 1 });
    expect(clock.read()).toBeUndefined();
    expect(clock.compare(0)).toBe("unsure");
    await expect(clock.ready()).rejects.toBeInstanceOf(RedisUnavailableError);
  });

  it("refuses bad options and unknown keys", () => {
    for (const bad of [
      { resyncMs: -1 },
      { resyncMs: Number.NaN },
      { samples: 0 },
      { samples: 1.5 },
      { driftPpm: -5 },
      { maxAgeMs: 0 },
      { resyncMS: 10 },
    ]) {
      expect(() => new RedisClock(redis, bad as never)).toThrow(InvalidArgumentError);
    }
  });
});
