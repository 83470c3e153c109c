// A SpinLock attempt that gets no answer within the client's commandTimeout (CLIENT PAUSE, SIGSTOP) is
// reported as RedisUnavailableError, yet Redis runs it once it wakes: the lock it takes must not stay behind
// for its TTL with nobody holding it. The attempt knows its token and removes that lock itself.
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { RedisUnavailableError } from "../../src/errors.js";
import { SpinLock } from "../../src/lock/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let admin: Redis;
beforeAll(async () => {
  srv = await startRedis();
  admin = srv.client(); // no short timeout: it checks the books after each fault
});
afterAll(async () => srv?.stop());

/**
 * Polls until the fence counter shows the timed-out attempt ran (fence 1) and no lock key is left. The TTL is
 * a minute, so only the cleanup can explain a missing key within the deadline.
 */
async function expectRanAndCleanedUp(lock: SpinLock, resource: string): Promise<void> {
  const keys = lock.keys(resource);
  const deadline = Date.now() + 20_000;
  let state: [string | null, number] = [null, -1];
  while (Date.now() < deadline) {
    state = [await admin.get(keys.fence), await admin.exists(keys.lock)];
    if (state[0] === "1" && state[1] === 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  expect(state).toEqual(["1", 0]);
  // And the lock is free for the next caller at once, with the next fence.
  const next = await new SpinLock(admin, {
    prefix: lock.keys("x").lock.slice(1, -"x}:lock".length - 1),
  }).tryAcquire(resource);
  expect(next?.fence).toBe(2);
  await next!.release();
  await admin.del(...Object.values(keys));
}

/** The server's process, for SIGSTOP / SIGCONT. */
function serverProcess() {
  const info = srv.server.getInstanceInfo();
  if (info === false) throw new Error("no server process");
  return info.childProcess!;
}

describe("timed-out acquire: no orphan lock once Redis answers", () => {
  for (const fault of ["CLIENT PAUSE", "SIGSTOP"] as const) {
    for (const call of ["tryAcquire", "acquire"] as const) {
      it(`${fault}, ${call}: RedisUnavailableError, then the lock it took is removed`, async () => {
        const redis = srv.client({ commandTimeout: 200, maxRetriesPerRequest: 0 });
        // Connected before the fault, so the attempt is written to the server's socket (the ready check
        // has no command timeout: a loaded machine can take longer than 200 ms to connect).
        if (redis.status !== "ready") await once(redis, "ready");
        const prefix = randomPrefix("to");
        // acquire waits up to 5 s, far longer than the command timeout: the attempt's own failure ends it.
        const lock = new SpinLock(redis, { prefix, ttlMs: 60_000, acquireTimeoutMs: 5_000 });
        let resume: () => void;
        if (fault === "CLIENT PAUSE") {
          await admin.client("PAUSE", 1_000, "ALL");
          resume = () => undefined; // the pause ends by itself
        } else {
          serverProcess().kill("SIGSTOP");
          resume = () => serverProcess().kill("SIGCONT");
        }
        let err: unknown;
        try {
          err = await (call === "tryAcquire" ? lock.tryAcquire("r") : lock.acquire("r")).catch(
            (e: unknown) => e,
          );
        } finally {
          resume();
        }
        expect(err).toBeInstanceOf(RedisUnavailableError);
        expect(String(err)).toMatch(/timed out/i);
        await expectRanAndCleanedUp(lock, "r");
        redis.disconnect();
      });
    }
  }
});
