// SpinLock's scripts with their typed replies, and the per-client batchers that send the acquire and release
// attempts of one tick as one script call per hash slot.
import { TickBatcher } from "../internal/batch.js";
import {
  defineScript,
  replyArray,
  replyError,
  replyInt,
  replyInts,
  type RedisClient,
} from "../internal/scripts.js";

/**
 * One integer per lock: a fence >= 1 (sent as decimal text, which ioredis's integer decoder would round
 * near 2^53), `-(pttl + 2)` when another owner holds it, 0 when its fence counter cannot be raised.
 */
const ACQUIRE = defineScript("lock/acquire", (reply): number[] =>
  replyArray("lock/acquire", reply).map((n) => {
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

interface AcquireItem {
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

const batchers = new WeakMap<RedisClient, LockBatchers>();

/** The batchers of `redis`, grouped by hash slot (one group on standalone Redis). */
export function batchersOf(redis: RedisClient): LockBatchers {
  let b = batchers.get(redis);
  if (b === undefined) {
    b = {
      acquire: new TickBatcher<number, AcquireItem, number>(async (_slot, batch) => {
        const keys: string[] = [];
        const args: (string | number)[] = [];
        for (const { item } of batch) {
          keys.push(item.keys.lock, item.keys.fence, item.keys.waiters);
          args.push(item.token, item.ttlMs, item.waitFlagMs);
        }
        settle("lock/acquire", batch, await ACQUIRE.run(redis, keys, args));
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
