// SpinLock acquire+release next to redlock (one node), redis-semaphore's Mutex and a bare SET NX PX + Lua
// delete, all through one ioredis connection at the same concurrency, uncontended; then the hand-off time
// from a release to a waiter in another process, with and without a subscriber connection.
import { randomBytes, randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import Redlock from "redlock";
import { Mutex } from "redis-semaphore";
import { SpinLock } from "../src/lock/index.js";
import { compare, ratio, table, type BenchContext, type BenchSection } from "./lib.js";

const DELETE_IF_OWNER = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== "0");
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** ms from the start of a release to the waiter holding the lock, `n` times. */
async function handOff(holder: SpinLock, waiter: SpinLock, n: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const h = await holder.acquire("handoff");
    const waiting = waiter.acquire("handoff");
    await new Promise((r) => setTimeout(r, 20 + (i % 5) * 3));
    const t0 = performance.now();
    await h.release();
    const next = await waiting;
    times.push(performance.now() - t0);
    await next.release();
  }
  return times;
}

export default async function lockBench(ctx: BenchContext): Promise<BenchSection> {
  const redis = new Redis(ctx.redisUrl);
  const prefix = `bench${randomBytes(4).toString("hex")}`;
  const concurrency = 64;
  const ttlMs = 10_000;
  // 10,000 resources in rotation: 64 callers never meet on one, and SpinLock leaves one fence key each.
  const resource = (i: number) => `r${i % 10_000}`;
  const lock = new SpinLock(redis, { prefix, ttlMs });
  const redlock = new Redlock([redis], { retryCount: 0 });
  const sha = (await redis.script("LOAD", DELETE_IF_OWNER)) as string;

  const rows = await compare(ctx, [
    {
      name: "bare SET NX PX + Lua delete",
      concurrency,
      fn: async (i) => {
        const key = `{${prefix}:bare}:${resource(i)}`;
        const token = randomUUID();
        if ((await redis.set(key, token, "PX", ttlMs, "NX")) === "OK")
          await redis.evalsha(sha, 1, key, token);
      },
    },
    {
      name: "SpinLock",
      concurrency,
      fn: async (i) => {
        const h = await lock.acquire(resource(i));
        await h.release();
      },
    },
    {
      name: "redlock (one node)",
      concurrency,
      fn: async (i) => {
        const l = await redlock.acquire([`{${prefix}:redlock}:${resource(i)}`], ttlMs);
        await l.release();
      },
    },
    {
      name: "redis-semaphore Mutex",
      concurrency,
      fn: async (i) => {
        const m = new Mutex(redis, `{${prefix}:mutex}:${resource(i)}`, { lockTimeout: ttlMs });
        await m.acquire();
        await m.release();
      },
    },
  ]);

  // Hand-off: the holder and the waiter on separate connections and instances, as two processes would be.
  const retryDelayMs = 50;
  const conns = [0, 1, 2, 3].map(() => new Redis(ctx.redisUrl));
  const holder = new SpinLock(conns[0]!, { prefix, retryDelayMs });
  const subscribed = new SpinLock(conns[1]!, { prefix, retryDelayMs, subscriber: conns[2]! });
  const spinning = new SpinLock(conns[3]!, { prefix, retryDelayMs });
  const trials = Math.max(15, Math.min(101, Math.round(ctx.roundMs / 20)));
  const woken = median(await handOff(holder, subscribed, trials));
  const spun = median(await handOff(holder, spinning, trials));
  await Promise.all(conns.map((c) => c.quit()));

  await deleteKeys(redis, `*${prefix}*`);
  await redis.quit();

  const floor = ratio(rows, "SpinLock", "bare SET NX PX + Lua delete");
  const vsRedlock = ratio(rows, "SpinLock", "redlock (one node)");
  const vsMutex = ratio(rows, "SpinLock", "redis-semaphore Mutex");
  const fmt = (ms: number) => ms.toFixed(2);
  return {
    title: "lock: SpinLock next to redlock, redis-semaphore and the bare SET NX PX",
    body: `One acquire and one release per operation, ${concurrency} concurrent callers on one ioredis connection,
rotating over 10,000 resources so nobody waits. \`SpinLock\` acquires with one script (\`SET NX PX\` plus the
fencing \`INCR\`) and releases with a compare-and-delete script, and the acquires (and the releases) that
arrive in one tick share one script call; the bare floor is \`SET NX PX\` and a
compare-and-delete \`EVALSHA\` with no library around them; redlock runs its own acquire and release
scripts on a single node; redis-semaphore's \`Mutex\` is \`SET NX PX\` and a release script.

${table(rows, "bare SET NX PX + Lua delete")}

Goal: at least 0.9x the bare floor and ahead of both libraries. Measured: **${floor.toFixed(2)}x** the floor,
**${vsRedlock.toFixed(2)}x** redlock, **${vsMutex.toFixed(2)}x** redis-semaphore.

Hand-off (median of ${trials} trials, \`retryDelayMs\` ${retryDelayMs}): from the start of \`release()\` to a
waiter on another connection holding the lock.

| waiter | median ms |
|---|---:|
| with a \`subscriber\` connection (woken by the release's PUBLISH) | ${fmt(woken)} |
| without (jittered retry every 25–75 ms) | ${fmt(spun)} |`,
  };
}
