// SpinLock.using: auto-extension, loss detection through the routine's AbortSignal, maxHoldMs, release.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { LUA } from "../../src/internal/embedded.generated.js";
import { LockLostError, SpinLock } from "../../src/lock/index.js";
import { extensionLeadMs } from "../../src/lock/using.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
let admin: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
  admin = srv.client();
  // Warm up (connections, scripts, JIT) so the first timed test does not pay for a cold start.
  const warm = new SpinLock(redis, { prefix: randomPrefix(), ttlMs: 200 });
  await warm.using("warm-up", () => new Promise((r) => setTimeout(r, 300)));
  await admin.ping();
});
afterAll(async () => srv?.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A promise settled from outside. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Resolves with the time (ms, performance.now) at which `signal` aborts. */
function abortedAt(signal: AbortSignal): Promise<number> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(performance.now());
    else signal.addEventListener("abort", () => resolve(performance.now()), { once: true });
  });
}

/** Script calls the server has run (EVALSHA and EVAL), from INFO commandstats. */
async function scriptCalls(): Promise<number> {
  const info = await admin.info("commandstats");
  let n = 0;
  for (const m of info.matchAll(/cmdstat_(evalsha|eval):calls=(\d+)/g)) n += Number(m[2]);
  return n;
}

describe("SpinLock.using", () => {
  it("holds a 1 s-TTL lock through a 3 s routine, then releases it", async () => {
    // The TTL leaves a third (333 ms) for each extension to land: room for a busy machine's event-loop lag.
    const lock = new SpinLock(redis, { prefix: randomPrefix(), ttlMs: 1_000 });
    const key = lock.keys("r").lock;
    let fence = 0;
    const result = await lock.using("r", async (signal, handle) => {
      fence = handle.fence;
      const started = Date.now();
      while (Date.now() - started < 3_000) {
        // the key stays ours the whole time, though it would have expired three times over
        expect(signal.reason).toBeUndefined();
        expect(await admin.get(key)).toBe(handle.token);
        expect(await admin.pttl(key)).toBeGreaterThan(0);
        expect(await lock.tryAcquire("r")).toBeNull();
        await sleep(20);
      }
      expect(signal.aborted).toBe(false);
      expect(handle.expiresAt).toBeGreaterThan(Date.now());
      return "done";
    });
    expect(result).toBe("done");
    expect(await admin.exists(key)).toBe(0);
    expect((await lock.tryAcquire("r"))?.fence).toBe(fence + 1);
  });

  it("aborts the signal with LockLostError within one extension period of an external overwrite", async () => {
    const ttlMs = 200;
    // extensions run when a third of the TTL (at least 100 ms) is left: every 100 ms here
    const period = ttlMs - extensionLeadMs(ttlMs);
    expect(period).toBeLessThanOrEqual(ttlMs - Math.floor(ttlMs / 3));
    const lock = new SpinLock(redis, { prefix: randomPrefix(), ttlMs });
    const key = lock.keys("r").lock;
    const reason = await lock.using("r", async (signal) => {
      const aborted = abortedAt(signal);
      await sleep(300);
      await admin.set(key, "someone-else", "PX", 10_000);
      // Every extension from here on sees the overwrite (one may already have run between the SET and this
      // read, and aborted): the very next one finds it, however late a busy machine runs it.
      const scriptsAfterOverwrite = await scriptCalls();
      await aborted;
      expect((await scriptCalls()) - scriptsAfterOverwrite).toBeLessThanOrEqual(1);
      return signal.reason as unknown;
    });
    expect(reason).toBeInstanceOf(LockLostError);
    expect(reason).toMatchObject({ code: "LOCK_LOST", resource: "r" });
    expect(String((reason as Error).message)).toMatch(/another owner/);
    expect(await admin.get(key)).toBe("someone-else"); // the finally-release did not delete it
  });

  it("stops extending at maxHoldMs: the lock expires and the signal aborts", async () => {
    const lock = new SpinLock(redis, { prefix: randomPrefix(), ttlMs: 200 });
    const t0 = performance.now();
    const { at, reason } = await lock.using(
      "r",
      async (signal) => ({ at: await abortedAt(signal), reason: signal.reason as unknown }),
      { maxHoldMs: 500 },
    );
    expect(at - t0).toBeGreaterThanOrEqual(480); // never before maxHoldMs (late only on a busy machine)
    expect(reason).toBeInstanceOf(LockLostError);
    expect(String((reason as Error).message)).toMatch(/maxHoldMs/);
    expect(await admin.exists(lock.keys("r").lock)).toBe(0);
  });

  it("aborts the signal when the lock expires while extensions hang (server paused)", async () => {
    const lock = new SpinLock(redis, { prefix: randomPrefix(), ttlMs: 200 });
    const t0 = performance.now();
    const reason = await lock.using("r", async (signal) => {
      // Paused far longer than the TTL: the abort must come from the lock's own expiry, not from a reply.
      await admin.client("PAUSE", 30_000, "ALL");
      const at = await abortedAt(signal);
      await admin.client("UNPAUSE");
      expect(at - t0).toBeLessThan(30_000);
      return signal.reason as unknown;
    });
    expect(reason).toBeInstanceOf(LockLostError);
    expect(String((reason as Error).message)).toMatch(/expired before an extension succeeded/);
  });

  it("a stalled event loop does not count a lock as lost when the extension's reply is already in", async () => {
    // A TTL long enough that the extension (sent when a third is left) reaches the server well before the
    // key expires even on a loaded machine; the stall then covers the moment the lock would have expired.
    const ttlMs = 3_000;
    const lock = new SpinLock(redis, { prefix: randomPrefix(), ttlMs });
    const key = lock.keys("r").lock;
    let stalls = 0;
    const extended = deferred();
    const aborted = await lock.using("r", async (signal, handle) => {
      const extend = handle.extend.bind(handle);
      // The process stalls (a heavy callback in the check phase) right after the extension is written, until
      // the server has applied it (its reply is then on the way) and the expiry timer is due: when the loop
      // comes round, that timer runs before the socket is read again.
      handle.extend = (ttl) => {
        const lossDue = handle.expiresAt;
        const sent = extend(ttl);
        if (stalls++ === 0)
          setImmediate(() => {
            // Blocks this process until the server shows the new TTL (or the key gone, which fails below).
            execFileSync("sh", [
              "-c",
              `until t=$(redis-cli -h ${srv.host} -p ${srv.port} PTTL ${key}); [ "$t" -gt ${ttlMs / 2} ] || [ "$t" -eq -2 ]; do :; done`,
            ]);
            while (Date.now() <= lossDue); // the expiry timer is due
            extended.resolve();
          });
        return sent;
      };
      await extended.promise;
      await new Promise((r) => setImmediate(r)); // the turn in which the expiry timer and the reply land
      await new Promise((r) => setImmediate(r));
      expect(await admin.get(key)).toBe(handle.token);
      return signal.aborted;
    });
    expect(stalls).toBeGreaterThanOrEqual(1);
    expect(aborted).toBe(false);
  });

  it("waits for an extension in flight, releases last, and sends nothing after the release", async () => {
    const ttlMs = 2_000;
    const lock = new SpinLock(redis, { prefix: randomPrefix(), ttlMs });
    const key = lock.keys("r").lock;
    const sha = (name: string) =>
      createHash("sha1")
        .update(LUA[name as keyof typeof LUA])
        .digest("hex");
    const warm = await lock.acquire("warm-up"); // scripts cached: one EVALSHA per call from here on
    await warm.extend();
    await warm.release();
    const monitor = await srv.client().monitor();
    const seen: string[] = [];
    monitor.on("monitor", (_time: string, args: string[]) => {
      if (!args.includes(key) || !/^eval/i.test(args[0] ?? "")) return;
      const names: Record<string, string> = {
        [sha("lock/acquire")]: "acquire",
        [sha("lock/extend")]: "extend",
        [sha("lock/release")]: "release",
      };
      seen.push(names[args[1] ?? ""] ?? "other");
    });
    let signalAfter: AbortSignal | undefined;
    let lastExpiry = 0;
    const returned = deferred();
    const done = lock.using("r", async (signal, handle) => {
      signalAfter = signal;
      // Writes (scripts included) wait from here until UNPAUSE: the extension due when a third of the TTL
      // is left is still in flight when the routine returns.
      await admin.client("PAUSE", 60_000, "WRITE");
      const extending = deferred();
      const extend = handle.extend.bind(handle);
      handle.extend = (ttl) => {
        const sent = extend(ttl);
        extending.resolve();
        return sent;
      };
      await extending.promise;
      lastExpiry = handle.expiresAt;
      returned.resolve();
    });
    await returned.promise;
    await admin.client("UNPAUSE");
    await done;
    expect(await admin.exists(key)).toBe(0);
    // A timer left behind would extend once a third of the TTL is left of the last extension: past then.
    await sleep(Math.max(0, lastExpiry + ttlMs - extensionLeadMs(ttlMs) - Date.now()) + 100);
    expect(await admin.exists(key)).toBe(0);
    expect(signalAfter?.aborted).toBe(false);
    expect(seen).toEqual(["acquire", "extend", "release"]);
    monitor.disconnect();
  });

  it("releases when the routine throws, and rethrows its error", async () => {
    const lock = new SpinLock(redis, { prefix: randomPrefix() });
    const boom = new Error("boom");
    await expect(
      lock.using("r", async () => {
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await admin.exists(lock.keys("r").lock)).toBe(0);
  });

  it("passes the caller's abort on to the routine's signal and keeps the lock until it returns", async () => {
    const lock = new SpinLock(redis, { prefix: randomPrefix(), ttlMs: 150 });
    const controller = new AbortController();
    const reason = new Error("shutdown");
    setTimeout(() => controller.abort(reason), 100);
    const got = await lock.using(
      "r",
      async (signal, handle) => {
        await abortedAt(signal);
        await sleep(300); // cleaning up, still holding (extended) the lock
        expect(await admin.get(lock.keys("r").lock)).toBe(handle.token);
        return signal.reason as unknown;
      },
      { signal: controller.signal },
    );
    expect(got).toBe(reason);
    expect(await admin.exists(lock.keys("r").lock)).toBe(0);
  });
});
