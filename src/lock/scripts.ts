// SpinLock's scripts with their typed replies, and the per-client batchers that send the acquire and release
// attempts of one tick as one script call per hash slot.
import { TickBatcher, type Pending } from "../internal/batch.js";
import {
  defineScript,
  replyArray,
  replyError,
  replyInt,
  replyInts,
  toRedisError,
  type RedisClient,
} from "../internal/scripts.js";
import { RedisCommandError, RedisUnavailableError } from "../errors.js";

/**
 * One item per lock: a fence >= 1 (sent as decimal text, which ioredis's integer decoder would round
 * near 2^53), `-(pttl + 2)` when another owner holds it, 0 when its fence counter cannot be raised, or the
 * error Redis answered that lock's fence `INCR` with (OOM under `maxmemory` with `noeviction`).
 */
const ACQUIRE = defineScript("lock/acquire", (reply): (number | Error)[] =>
  replyArray("lock/acquire", reply).map((n) => {
    if (n instanceof Error) return n;
    const v = typeof n === "string" && /^\d{1,16}$/.test(n) ? Number(n) : n;
    if (typeof v === "number" && Number.isSafeInteger(v)) return v;
    throw replyError("lock/acquire", reply, "integers or fences as decimal text");
  }),
);

/** One integer per lock: 1 released, 0 not the owner. */
const RELEASE = defineScript("lock/release", (reply): number[] => {
  const released = replyInts("lock/release", reply);
  if (released.some((n) => n !== 0 && n !== 1)) throw replyError("lock/release", reply, "0s and 1s");
  return released;
});

/** Whether the owner's lock was extended (`false`: not the owner, nothing written). */
export const EXTEND = defineScript("lock/extend", (reply): boolean => {
  const n = replyInt("lock/extend", reply);
  if (n !== 0 && n !== 1) throw replyError("lock/extend", reply, "0 or 1");
  return n === 1;
});

/** The most locks one acquire or release script call carries. */
const MAX_BATCH = 32;

/** The keys one lock script touches, and its release channel. */
export interface LockKeyset {
  readonly lock: string;
  readonly fence: string;
  readonly waiters: string;
  readonly channel: string;
}

export interface AcquireItem {
  readonly keys: LockKeyset;
  readonly token: string;
  readonly ttlMs: number;
  readonly waitFlagMs: number;
}

interface ReleaseItem {
  readonly keys: LockKeyset;
  readonly token: string;
}

/** The batchers of one client; each lock of a batch is still decided on its own, in order. */
export interface LockBatchers {
  readonly acquire: TickBatcher<number, AcquireItem, number>;
  readonly release: TickBatcher<number, ReleaseItem, number>;
}

/** An acquire's reply, and how many replicas `WAIT` counted for the batch it went out in. */
export interface ReplicatedReply {
  readonly reply: number;
  readonly acked: number;
}

function acquireArgs(batch: readonly { readonly item: AcquireItem }[]): [string[], (string | number)[]] {
  const keys: string[] = [];
  const args: (string | number)[] = [];
  for (const { item } of batch) {
    keys.push(item.keys.lock, item.keys.fence, item.keys.waiters);
    args.push(item.token, item.ttlMs, item.waitFlagMs);
  }
  return [keys, args];
}

/** Hands each caller of an acquire batch its integer, or its own error (the fence INCR refused). */
function settleAcquire<R>(
  batch: readonly Pending<AcquireItem, R>[],
  replies: readonly (number | Error)[],
  wrap: (n: number) => R,
): void {
  if (replies.length !== batch.length) throw replyError("lock/acquire", replies, `${batch.length} replies`);
  batch.forEach((p, i) => {
    const r = replies[i]!;
    if (typeof r === "number") p.resolve(wrap(r));
    else
      p.reject(
        new RedisCommandError(
          `lock/acquire: Redis refused to raise the fence counter ${p.item.keys.fence}: ${r.message}`,
          { cause: r },
        ),
      );
  });
}

const replicatedBatchers = new WeakMap<
  RedisClient,
  Map<string, TickBatcher<number, AcquireItem, ReplicatedReply>>
>();

/**
 * Acquire batchers whose script call is followed, on the same connection and in the same round trip, by
 * `WAIT replicas timeoutMs`: WAIT counts the replicas that have every write this connection made, so it
 * covers the batch's fence `INCR`s and `SET`s (and one WAIT serves the whole batch).
 */
export function replicatedAcquireOf(
  redis: RedisClient,
  replicas: number,
  timeoutMs: number,
): TickBatcher<number, AcquireItem, ReplicatedReply> {
  let byShape = replicatedBatchers.get(redis);
  if (byShape === undefined) {
    byShape = new Map();
    replicatedBatchers.set(redis, byShape);
  }
  const shape = `${replicas}/${timeoutMs}`;
  let b = byShape.get(shape);
  if (b === undefined) {
    b = new TickBatcher<number, AcquireItem, ReplicatedReply>(async (_slot, batch) => {
      const [keys, args] = acquireArgs(batch);
      const { reply, acked } = await evalThenWait(redis, keys, args, replicas, timeoutMs);
      settleAcquire(batch, ACQUIRE.decodeReply(reply), (n) => ({ reply: n, acked }));
    }, MAX_BATCH);
    byShape.set(shape, b);
  }
  return b;
}

/**
 * The acquire script and `WAIT` pipelined on one connection. A NOSCRIPT (cache flushed, failover, new node)
 * means the script did not run: the pair is sent again with EVAL, which loads it.
 */
async function evalThenWait(
  redis: RedisClient,
  keys: readonly string[],
  args: readonly (string | number)[],
  replicas: number,
  timeoutMs: number,
): Promise<{ reply: unknown; acked: number }> {
  const send = async (load: boolean) => {
    const p = redis.pipeline();
    if (load) p.eval(ACQUIRE.lua, keys.length, ...keys, ...args);
    else p.evalsha(ACQUIRE.sha, keys.length, ...keys, ...args);
    p.call("WAIT", replicas, timeoutMs);
    let results: [Error | null, unknown][] | null;
    try {
      results = await p.exec();
    } catch (err) {
      throw toRedisError(err);
    }
    if (results === null || results.length !== 2)
      throw new RedisUnavailableError("lock/acquire: the pipeline with WAIT was not run");
    return results as [[Error | null, unknown], [Error | null, unknown]];
  };
  let [[scriptErr, reply], [waitErr, acked]] = await send(false);
  if (scriptErr?.message.startsWith("NOSCRIPT")) [[scriptErr, reply], [waitErr, acked]] = await send(true);
  if (scriptErr) throw toRedisError(scriptErr);
  // The script ran but its WAIT failed (a dropped connection, or any error reply): grants may stand on the
  // master with no replica confirmed, so the outcome is reported as unknown, and each caller removes the
  // lock its token may hold (RedisUnavailableError is what triggers that clean-up).
  if (waitErr) {
    throw new RedisUnavailableError(`lock/acquire: WAIT failed after the script ran: ${waitErr.message}`, {
      cause: waitErr,
    });
  }
  if (typeof acked !== "number") throw replyError("WAIT", acked, "an integer");
  return { reply, acked };
}

const batchers = new WeakMap<RedisClient, LockBatchers>();

/** The batchers of `redis`, grouped by hash slot (one group on standalone Redis). */
export function batchersOf(redis: RedisClient): LockBatchers {
  let b = batchers.get(redis);
  if (b === undefined) {
    b = {
      acquire: new TickBatcher<number, AcquireItem, number>(async (_slot, batch) => {
        const [keys, args] = acquireArgs(batch);
        settleAcquire(batch, await ACQUIRE.run(redis, keys, args), (n) => n);
      }, MAX_BATCH),
      release: new TickBatcher<number, ReleaseItem, number>(async (_slot, batch) => {
        const keys: string[] = [];
        const args: string[] = [];
        for (const { item } of batch) {
          keys.push(item.keys.lock, item.keys.waiters);
          args.push(item.token, item.keys.channel);
        }
        settle("lock/release", batch, await RELEASE.run(redis, keys, args));
      }, MAX_BATCH),
    };
    batchers.set(redis, b);
  }
  return b;
}

/** Hands each caller of a batch its integer; a reply of the wrong length fails the whole batch. */
function settle(
  script: string,
  batch: readonly { resolve: (n: number) => void }[],
  replies: readonly number[],
): void {
  if (replies.length !== batch.length) throw replyError(script, replies, `${batch.length} replies`);
  batch.forEach((p, i) => p.resolve(replies[i]!));
}
