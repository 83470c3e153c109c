// SpinLock with `replicated`: a grant is given only once WAIT has counted the replicas asked for; a short
// count releases the lock and reports LockNotReplicatedError (tryAcquire) or a LockTimeoutError caused by it
// (acquire). A private master and one replica (redis-server --replicaof).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { InvalidArgumentError, RedisUnavailableError } from "../../src/errors.js";
import { LockNotReplicatedError, LockTimeoutError, SpinLock } from "../../src/lock/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let master: PrivateRedis;
let replicaSrv: PrivateRedis;
let redis: Redis;
let acks: Redis;
let replica: Redis;
// The replica stores the master's snapshot as dump.rdb in its directory: a temporary one, not the cwd.
const dir = mkdtempSync(join(tmpdir(), "fsk-replica-"));
beforeAll(async () => {
  master = await startRedis();
  replicaSrv = await startRedis(["--replicaof", master.host, String(master.port), "--dir", dir]);
  redis = master.client();
  acks = master.client();
  replica = replicaSrv.client();
  const deadline = Date.now() + 30_000;
  while (!/state=online/.test(await redis.info("replication"))) {
    if (Date.now() > deadline) throw new Error("the replica never came online");
    await new Promise((r) => setTimeout(r, 20));
  }
});
afterAll(async () => {
  await replicaSrv?.stop();
  await master?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function waitCalls(): Promise<number> {
  const m = /cmdstat_wait:calls=(\d+)/.exec(await redis.info("commandstats"));
  return m === null ? 0 : Number(m[1]);
}

describe("SpinLock replicated acknowledgement", () => {
  it("grants once the replica has the fence and the lock, one WAIT per batch", async () => {
    const prefix = randomPrefix("rep");
    const lock = new SpinLock(redis, {
      prefix,
      replicated: { replicas: 1, timeoutMs: 5_000, connection: acks },
    });
    const h = await lock.tryAcquire("r");
    expect(h?.fence).toBe(1);
    // WAIT counted the replica only once it had applied both writes: readable there at once.
    expect(await replica.get(lock.keys("r").fence)).toBe("1");
    expect(await replica.get(lock.keys("r").lock)).toBe(h!.token);
    expect(await h!.release()).toBe(true);

    // 20 acquires in one tick: one script call, one WAIT.
    const before = await waitCalls();
    const handles = await Promise.all(Array.from({ length: 20 }, (_, i) => lock.tryAcquire(`b${i}`)));
    expect(handles.map((x) => x?.fence)).toEqual(Array.from({ length: 20 }, () => 1));
    expect((await waitCalls()) - before).toBe(1);
    await Promise.all(handles.map((x) => x!.release()));

    // A flushed script cache: the pair is sent again with EVAL.
    await redis.script("FLUSH");
    const again = await lock.acquire("r");
    expect(again.fence).toBe(2);
    await again.release();
    await redis.del(...["r", ...handles.map((_, i) => `b${i}`)].flatMap((r) => Object.values(lock.keys(r))));
  });

  it("works on the lock's own client when no connection is given", async () => {
    const lock = new SpinLock(redis, {
      prefix: randomPrefix("rep"),
      replicated: { replicas: 1, timeoutMs: 5_000 },
    });
    const h = await lock.acquire("r");
    expect(await replica.get(lock.keys("r").fence)).toBe("1");
    await h.release();
    await redis.del(...Object.values(lock.keys("r")));
  });

  it("a short count is no grant: the lock is released and the caller told so", async () => {
    const prefix = randomPrefix("rep");
    // Two replicas asked for, one exists: WAIT answers 1 after 50 ms.
    const lock = new SpinLock(redis, {
      prefix,
      acquireTimeoutMs: 2_000, // several attempts, even on a loaded machine
      retryDelayMs: 50,
      replicated: { replicas: 2, timeoutMs: 50, connection: acks },
    });
    const err = await lock.tryAcquire("r").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockNotReplicatedError);
    expect(err).toBeInstanceOf(RedisUnavailableError); // caught as any other "retry later"
    expect(err).toMatchObject({ resource: "r", replicas: 2, acknowledged: 1, code: "REDIS_UNAVAILABLE" });
    // The grant is taken back (in the background, right after WAIT's answer).
    const deadline = Date.now() + 10_000;
    while ((await redis.exists(lock.keys("r").lock)) === 1 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    expect(await redis.exists(lock.keys("r").lock)).toBe(0);

    const waited = await lock.acquire("r").catch((e: unknown) => e);
    expect(waited).toBeInstanceOf(LockTimeoutError);
    expect((waited as LockTimeoutError).cause).toBeInstanceOf(LockNotReplicatedError);
    while ((await redis.exists(lock.keys("r").lock)) === 1 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    expect(await redis.exists(lock.keys("r").lock)).toBe(0);
    // Fences were drawn (and never handed out); the next grant gets a higher one.
    const ok = new SpinLock(redis, { prefix, replicated: { replicas: 1, timeoutMs: 5_000 } });
    const h = await ok.tryAcquire("r");
    expect(h!.fence).toBeGreaterThan(2);
    await h!.release();
    await redis.del(...Object.values(lock.keys("r")));
  });

  it("refuses bad options before anything is written", () => {
    const bad: unknown[] = [
      { replicas: 0, timeoutMs: 10 },
      { replicas: 1, timeoutMs: 0 },
      { replicas: 1.5, timeoutMs: 10 },
      { replicas: 1 },
      { replicas: 1, timeoutMs: 10, conection: acks },
      { replicas: 1, timeoutMs: 10, connection: {} },
      "1",
    ];
    for (const replicated of bad) {
      expect(() => new SpinLock(redis, { replicated } as never)).toThrow(InvalidArgumentError);
    }
    const sub = redis.duplicate();
    expect(
      () =>
        new SpinLock(redis, { subscriber: sub, replicated: { replicas: 1, timeoutMs: 10, connection: sub } }),
    ).toThrow(InvalidArgumentError);
    sub.disconnect();
  });
});
