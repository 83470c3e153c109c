// SpinLock on a private standalone redis-server: ownership, fencing, waiting, timeouts, abort, wake-ups.
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from "vitest";
import type { Redis } from "ioredis";
import { InvalidArgumentError, RedisUnavailableError } from "../../src/errors.js";
import { RedisCommandError } from "../../src/errors.js";
import { LockLostError, LockTimeoutError, SpinLock, type LockHandle } from "../../src/lock/index.js";
import { keyspace, randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Keys and values (type + dump) without the ever-shrinking TTLs. */
async function contents(pattern: string): Promise<Record<string, string>> {
  const all = await keyspace(redis, pattern);
  return Object.fromEntries(Object.entries(all).map(([k, v]) => [k, v.replace(/:-?\d+$/, "")]));
}

describe("SpinLock basics", () => {
  it("acquires, refuses a second owner, releases, and hands out increasing fences", async () => {
    const lock = new SpinLock(redis, { prefix: randomPrefix(), ttlMs: 5_000, acquireTimeoutMs: 0 });
    const [s0, us0] = await redis.time();
    const sentAt = Date.now();
    const a = await lock.acquire("r");
    const doneAt = Date.now();
    const [s1, us1] = await redis.time();
    expectTypeOf(a).toEqualTypeOf<LockHandle<number>>();
    expect(a.resource).toBe("r");
    expect(a.token).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.fence).toBe(1);
    expect(await redis.get(lock.keys("r").lock)).toBe(a.token);
    // The key expires ttlMs after the server set it (exact, on Redis time, however slow the machine)...
    const expiry = Number(await redis.call("PEXPIRETIME", lock.keys("r").lock));
    expect(expiry).toBeGreaterThanOrEqual(Math.floor((Number(s0) * 1e6 + Number(us0)) / 1000) + 5_000);
    expect(expiry).toBeLessThanOrEqual(Math.ceil((Number(s1) * 1e6 + Number(us1)) / 1000) + 5_000);
    // ...and the holder counts on it from a moment during its call, never from after the reply.
    expect(a.expiresAt).toBeLessThanOrEqual(doneAt + 5_000);
    expect(a.expiresAt).toBeGreaterThan(sentAt);
    expect(await lock.tryAcquire("r")).toBeNull();
    await expect(lock.acquire("r")).rejects.toBeInstanceOf(LockTimeoutError);
    expect(await a.release()).toBe(true);
    expect(await a.release()).toBe(false);
    expect(await redis.exists(lock.keys("r").lock)).toBe(0);
    const b = await lock.tryAcquire("r");
    expect(b?.fence).toBe(2);
    const c = await lock.tryAcquire("other");
    expect(c?.fence).toBe(1);
    await b!.release();
    await c!.release();
  });

  it("keeps one resource's keys under one hash tag", async () => {
    const prefix = randomPrefix();
    const lock = new SpinLock(redis, { prefix });
    expect(lock.keys("order:42")).toEqual({
      lock: `{${prefix}:order:42}:lock`,
      fence: `{${prefix}:order:42}:fence`,
      waiters: `{${prefix}:order:42}:waiters`,
      channel: `{${prefix}:order:42}:released`,
    });
    const h = await lock.acquire("order:42");
    await h.release();
    expect(Object.keys(await keyspace(redis, `*${prefix}*`))).toEqual([`{${prefix}:order:42}:fence`]);
  });

  it("never releases or extends another owner's lock", async () => {
    const prefix = randomPrefix();
    const lock = new SpinLock(redis, { prefix, ttlMs: 100 });
    const next = new SpinLock(redis, { prefix, ttlMs: 10_000 }); // long enough for a loaded machine
    const a = await lock.acquire("r");
    await sleep(150);
    const b = await next.acquire("r");
    expect(b.fence).toBeGreaterThan(a.fence);
    const before = await contents(`*${lock.keys("r").lock}*`);
    expect(await a.extend(60_000)).toBe(false);
    expect(await a.release()).toBe(false);
    expect(await redis.get(lock.keys("r").lock)).toBe(b.token);
    const pttl = await redis.pttl(lock.keys("r").lock);
    expect(pttl).toBeGreaterThan(9_000); // b's own TTL, not a's 60 s
    expect(pttl).toBeLessThanOrEqual(10_000);
    expect(await contents(`*${lock.keys("r").lock}*`)).toEqual(before);
    expect(await b.extend(10_000)).toBe(true);
    expect(await redis.pttl(lock.keys("r").lock)).toBeGreaterThan(9_000);
    expect(b.expiresAt).toBeGreaterThan(Date.now() + 9_000);
    expect(await b.release()).toBe(true);
    expect(await b.extend()).toBe(false);
  });

  it("treats an overwritten key (another value or another type) as another owner's", async () => {
    const lock = new SpinLock(redis, { prefix: randomPrefix(), acquireTimeoutMs: 0 });
    const a = await lock.acquire("r");
    await redis.set(lock.keys("r").lock, "intruder");
    expect(await a.extend()).toBe(false);
    expect(await a.release()).toBe(false);
    expect(await redis.get(lock.keys("r").lock)).toBe("intruder");
    const b = await lock.acquire("s");
    await redis.del(lock.keys("s").lock);
    await redis.hset(lock.keys("s").lock, "x", "1");
    expect(await b.extend()).toBe(false);
    expect(await b.release()).toBe(false);
    expect(await lock.tryAcquire("s")).toBeNull();
  });

  it("a corrupted fence counter (here negative) throws RedisCommandError and writes nothing", async () => {
    const prefix = randomPrefix();
    const lock = new SpinLock(redis, { prefix, acquireTimeoutMs: 0 });
    await redis.set(lock.keys("r").fence, "-7");
    const before = await contents(`*${prefix}*`);
    await expect(lock.tryAcquire("r")).rejects.toBeInstanceOf(RedisCommandError);
    await expect(lock.acquire("r")).rejects.toBeInstanceOf(RedisCommandError);
    expect(await contents(`*${prefix}*`)).toEqual(before);
  });

  it("fences stay exact: a counter that would pass 2^53 - 1 is refused, never rounded", async () => {
    const prefix = randomPrefix();
    const lock = new SpinLock(redis, { prefix, acquireTimeoutMs: 0 });
    await redis.set(lock.keys("r").fence, "9007199254740989");
    const fences: number[] = [];
    for (let i = 0; i < 2; i++) {
      const h = await lock.acquire("r");
      fences.push(h.fence);
      await h.release();
    }
    expect(fences).toEqual([9007199254740990, Number.MAX_SAFE_INTEGER]);
    const before = await contents(`*${prefix}*`);
    await expect(lock.acquire("r")).rejects.toThrow(/below 2\^53 - 1/);
    expect(await contents(`*${prefix}*`)).toEqual(before);
    expect(await redis.get(lock.keys("r").fence)).toBe("9007199254740991");
  });

  it("tryAcquire writes nothing when the lock is taken", async () => {
    const prefix = randomPrefix();
    const lock = new SpinLock(redis, { prefix });
    const a = await lock.acquire("r");
    const before = await contents(`*${prefix}*`);
    expect(await lock.tryAcquire("r")).toBeNull();
    expect(await contents(`*${prefix}*`)).toEqual(before);
    expect(await redis.pttl(lock.keys("r").lock)).toBeLessThanOrEqual(a.expiresAt - Date.now() + 50);
    await a.release();
  });

  it("validates options and resources up front", async () => {
    expect(() => new SpinLock(redis, { ttlMs: 0 })).toThrow(/ttlMs must be at least 1/);
    expect(() => new SpinLock(redis, { ttlMs: 1.5 })).toThrow(InvalidArgumentError);
    expect(() => new SpinLock(redis, { retryDelayMs: -1 })).toThrow(/retryDelayMs/);
    expect(() => new SpinLock(redis, { acquireTimeoutMs: -1 })).toThrow(/acquireTimeoutMs/);
    expect(() => new SpinLock(redis, { prefix: "a{b}" })).toThrow(/prefix/);
    expect(() => new SpinLock({} as Redis)).toThrow(/redis must be an ioredis/);
    expect(() => new SpinLock(redis, { subscriber: redis })).toThrow(/connection of its own/);
    expect(() => new SpinLock(redis, { ttl: 5 } as never)).toThrow(
      expect.objectContaining({ name: "InvalidArgumentError", argument: "options.ttl" }),
    );
    const prefix = randomPrefix();
    const lock = new SpinLock(redis, { prefix });
    await expect(lock.acquire("a{b}")).rejects.toThrow(/resource must not contain/);
    await expect(lock.tryAcquire("")).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(lock.using("x", async () => 1, { maxHoldMs: 0 })).rejects.toThrow(/maxHoldMs/);
    // Checked before anything is written: no lock taken, no fence drawn.
    const before = await contents(`*${prefix}*`);
    await expect(lock.acquire("x", { signal: null as never })).rejects.toThrow(
      /signal must be an AbortSignal/,
    );
    await expect(lock.using("x", "not a function" as never)).rejects.toThrow(/routine must be a function/);
    await expect(lock.using("x", async () => 1, { signal: {} as never })).rejects.toThrow(/signal/);
    await expect(lock.acquire("x", { maxHoldMs: 5 } as never)).rejects.toMatchObject({
      argument: "options.maxHoldMs",
    });
    await expect(lock.using("x", async () => 1, { maxHoldMS: 5 } as never)).rejects.toThrow(
      /options\.maxHoldMS is not a known option \(did you mean maxHoldMs\?\)/,
    );
    await expect(lock.acquire("x", null as never)).rejects.toThrow(/options must be an object/);
    expect(await contents(`*${prefix}*`)).toEqual(before);
    const h = await lock.acquire("x");
    await expect(h.extend(0)).rejects.toThrow(/ttlMs/);
    await h.release();
  });

  it("keeps working after SCRIPT FLUSH", async () => {
    const lock = new SpinLock(redis, { prefix: randomPrefix() });
    const a = await lock.acquire("r");
    await redis.script("FLUSH");
    expect(await a.extend()).toBe(true);
    await redis.script("FLUSH");
    expect(await a.release()).toBe(true);
    await redis.script("FLUSH");
    expect((await lock.acquire("r")).fence).toBe(2);
  });

  it("throws RedisUnavailableError on a closed connection", async () => {
    const c = srv.client({ maxRetriesPerRequest: 0 });
    const lock = new SpinLock(c, { prefix: randomPrefix() });
    const h = await lock.acquire("r");
    await c.quit();
    await expect(lock.tryAcquire("r")).rejects.toBeInstanceOf(RedisUnavailableError);
    await expect(lock.acquire("r")).rejects.toBeInstanceOf(RedisUnavailableError);
    await expect(h.release()).rejects.toBeInstanceOf(RedisUnavailableError);
  });
});

describe("SpinLock waiting", () => {
  it("gives up at acquireTimeoutMs, within one retry delay", async () => {
    const retryDelayMs = 50;
    const lock = new SpinLock(redis, { prefix: randomPrefix(), retryDelayMs, acquireTimeoutMs: 300 });
    const h = await lock.acquire("r");
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now();
      const err = await lock.acquire("r").catch((e: unknown) => e);
      const waited = Date.now() - t0;
      expect(err).toBeInstanceOf(LockTimeoutError);
      expect(err).toMatchObject({ code: "LOCK_TIMEOUT", resource: "r" });
      expect(waited).toBeGreaterThanOrEqual(300);
      expect(waited).toBeLessThanOrEqual(300 + retryDelayMs + 100); // + margin for a loaded machine
    }
    await h.release();
  });

  it("a short acquireTimeoutMs still gets a free lock whose reply arrived during an event-loop stall", async () => {
    const stall = (ms: number) => {
      for (const end = Date.now() + ms; Date.now() < end;);
    };
    for (const acquireTimeoutMs of [0, 30]) {
      const lock = new SpinLock(redis, { prefix: randomPrefix(), acquireTimeoutMs });
      const got = lock.acquire("r");
      setImmediate(() => stall(60)); // the attempt is on the wire; the process is busy past the deadline
      const h = await got;
      expect(h.fence).toBeGreaterThan(0);
      expect(await h.release()).toBe(true);
    }
  });

  it("using() with maxHoldMs below ttlMs aborts and frees the lock at maxHoldMs, not at the TTL", async () => {
    const prefix = randomPrefix();
    const lock = new SpinLock(redis, { prefix, ttlMs: 3_000 });
    const other = new SpinLock(redis, { prefix, ttlMs: 3_000, acquireTimeoutMs: 0 });
    const t0 = performance.now();
    const out = await lock.using(
      "r",
      async (signal) => {
        await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
        return { at: performance.now() - t0, reason: signal.reason as unknown };
      },
      { maxHoldMs: 300 },
    );
    expect(out.at).toBeGreaterThanOrEqual(250);
    expect(out.at).toBeLessThan(1_000); // not the 3 s TTL
    expect(out.reason).toBeInstanceOf(LockLostError);
    const h = await other.tryAcquire("r"); // free again
    expect(h).not.toBeNull();
    await h!.release();
  });

  it("gives up at acquireTimeoutMs even while the server does not answer an attempt", async () => {
    const prefix = randomPrefix();
    const admin = srv.client();
    const holder = new SpinLock(admin, { prefix, ttlMs: 10_000 });
    const h = await holder.acquire("r");
    const client = srv.client();
    await client.ping();
    const lock = new SpinLock(client, { prefix, acquireTimeoutMs: 400, retryDelayMs: 50 });
    const t0 = performance.now();
    const waiting = lock.acquire("r").catch((e: unknown) => e);
    await sleep(100);
    await admin.call("CLIENT", "PAUSE", "1500", "ALL"); // the next attempt's script waits for 1.5 s
    const err = await waiting;
    const waited = performance.now() - t0;
    expect(err).toBeInstanceOf(LockTimeoutError);
    expect(waited).toBeLessThan(400 + 300);
    await sleep(1_600);
    await h.release();
    // The attempt that was answered after the deadline took nothing that stays: the lock is free.
    expect(await lock.tryAcquire("r").then((x) => x?.release())).toBe(true);
  });

  it("a waiter with a short retry delay never shortens another waiter's flag: the release still wakes it", async () => {
    const prefix = randomPrefix();
    const holder = new SpinLock(srv.client(), { prefix, ttlMs: 60_000 });
    const slow = new SpinLock(srv.client(), {
      prefix,
      retryDelayMs: 10_000, // flag 40 s, pauses of 5 to 15 s
      acquireTimeoutMs: 30_000,
      subscriber: srv.client(),
    });
    const fast = new SpinLock(srv.client(), {
      prefix,
      retryDelayMs: 50, // flag 1 s
      acquireTimeoutMs: 300,
      subscriber: srv.client(),
    });
    const flag = holder.keys("r").waiters;
    const h = await holder.acquire("r");
    const slowGot = slow.acquire("r");
    for (let i = 0; i < 500 && (await redis.pttl(flag)) < 30_000; i++) await sleep(10);
    expect(await redis.pttl(flag)).toBeGreaterThan(30_000);
    await expect(fast.acquire("r")).rejects.toBeInstanceOf(LockTimeoutError);
    expect(await redis.pttl(flag)).toBeGreaterThan(30_000);
    await sleep(1_100); // past the fast waiter's flag: had it shortened the flag, it would be gone
    const t0 = performance.now();
    await h.release();
    const got = await Promise.race([slowGot, sleep(3_000).then(() => "still sleeping" as const)]);
    expect(got).not.toBe("still sleeping");
    expect(performance.now() - t0).toBeLessThan(1_000);
    await (await slowGot).release();
  }, 40_000);

  it("gets the lock as soon as the holder's TTL runs out", async () => {
    const lock = new SpinLock(redis, { prefix: randomPrefix(), ttlMs: 300, retryDelayMs: 1_000 });
    await lock.acquire("r"); // never released: expires
    const t0 = Date.now();
    const h = await lock.acquire("r");
    expect(Date.now() - t0).toBeLessThan(600); // the pause is cut to the holder's PTTL, not 0.5–1.5 s
    expect(h.fence).toBe(2);
  });

  it("an AbortSignal cancels a wait at once, with the signal's reason", async () => {
    const lock = new SpinLock(redis, { prefix: randomPrefix(), retryDelayMs: 1_000 });
    const h = await lock.acquire("r");
    const controller = new AbortController();
    const reason = new Error("client went away");
    const waiting = lock.acquire("r", { signal: controller.signal }).catch((e: unknown) => e);
    await sleep(150);
    const t0 = Date.now();
    controller.abort(reason);
    expect(await waiting).toBe(reason);
    expect(Date.now() - t0).toBeLessThan(100); // its next attempt was 0.5–1.5 s away
    // an already aborted signal rejects before any command
    await expect(lock.acquire("r", { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    const timeout = await lock.acquire("r", { signal: AbortSignal.timeout(100) }).catch((e: unknown) => e);
    expect((timeout as Error).name).toBe("TimeoutError");
    await h.release();
    expect((await lock.tryAcquire("r"))?.fence).toBe(2); // the aborted waiters took nothing
  });

  it("an abort during an attempt in flight rejects at once and releases the lock that attempt took", async () => {
    const lock = new SpinLock(redis, { prefix: randomPrefix() });
    const admin = srv.client();
    await admin.client("PAUSE", 300, "WRITE"); // the acquire script waits in the server
    const controller = new AbortController();
    const pending = lock.acquire("r", { signal: controller.signal }).catch((e: unknown) => e);
    await sleep(50);
    const t0 = Date.now();
    controller.abort(new Error("gone"));
    expect(((await pending) as Error).message).toBe("gone");
    expect(Date.now() - t0).toBeLessThan(100);
    await sleep(400); // the pause ends; the attempt lands, takes the lock, and is released
    expect(await redis.get(lock.keys("r").fence)).toBe("1");
    expect(await redis.exists(lock.keys("r").lock)).toBe(0);
  });

  it("wakes a waiter of the same SpinLock as soon as it releases, without a subscriber", async () => {
    const lock = new SpinLock(redis, { prefix: randomPrefix(), retryDelayMs: 1_000 });
    const h = await lock.acquire("r");
    const waiting = lock.acquire("r");
    await sleep(100);
    const t0 = Date.now();
    await h.release();
    const next = await waiting;
    expect(Date.now() - t0).toBeLessThan(250); // its next attempt was 0.5–1.5 s away
    expect(next.fence).toBe(h.fence + 1);
    await next.release();
  });

  it("falls back to spinning, without a busy loop, when the subscriber cannot subscribe", async () => {
    const dead = srv.client();
    await dead.quit();
    const prefix = randomPrefix();
    const holder = new SpinLock(srv.client(), { prefix });
    const waiter = new SpinLock(srv.client(), { prefix, retryDelayMs: 100, subscriber: dead });
    const h = await holder.acquire("r");
    const scripts = async () =>
      Number(/cmdstat_evalsha:calls=(\d+)/.exec(await redis.info("commandstats"))?.[1] ?? 0);
    const before = await scripts();
    const waiting = waiter.acquire("r");
    await sleep(600);
    await h.release();
    const next = await waiting;
    const attempts = (await scripts()) - before - 1; // minus the holder's release
    expect(attempts).toBeGreaterThanOrEqual(3);
    expect(attempts).toBeLessThan(20); // ~600 / 100 pauses, not a tight loop
    expect(next.fence).toBe(h.fence + 1);
  });
});
