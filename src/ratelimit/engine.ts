// The bucket engine behind TokenBucket and RateLimits: runs lua/ratelimit/take.lua and refund.lua, and
// coalesces the takes that arrive in one tick on one client into one script call (one per slot on Cluster).
import { RedisCommandError, UnexpectedReplyError } from "../errors.js";
import { TickBatcher, type Pending as CorePending } from "../internal/batch.js";
import { defineScript, replyInt, replyInts, type RedisClient } from "../internal/scripts.js";
import { UNITS } from "./local.js";

/** One bucket touched by a take: its key and settings, and the tokens to take (0 reads without writing). */
export interface BucketItem {
  readonly key: string;
  readonly capacity: number;
  readonly refillPerSecond: number;
  /** `"<capacity>,<refillPerSecond>"`, as the script reads a bucket's settings. */
  readonly shape: string;
  readonly cost: number;
}

/** What the script says about one item. */
export interface ItemOutcome {
  /** Whether this item alone would have passed (in a rejected group, some items pass alone). */
  readonly pass: boolean;
  readonly remaining: number;
  readonly retryAfterMs: number;
  readonly resetMs: number;
  /** The units (millionths of a token) the bucket held when the item was judged. */
  readonly have: number;
}

/** The outcome of one all-or-nothing group. */
export interface GroupOutcome {
  readonly ok: boolean;
  readonly items: readonly ItemOutcome[];
}

// take: per group a code, then per item the units it found (-1: the key holds no bucket); checked per group
// against the request's shape in send().
const TAKE = defineScript("ratelimit/take", (r) => replyInts("ratelimit/take", r));
// refund: the number of keys written.
const REFUND = defineScript("ratelimit/refund", (r) => replyInt("ratelimit/refund", r));

type Pending = CorePending<readonly BucketItem[], GroupOutcome>;

/**
 * The most items one script call carries. Enough to amortise a call; small enough that under load several
 * batches are in flight at once, so Redis runs one while this process encodes the next and decodes the last
 * (one big batch would make the two take turns), and no script holds Redis for long.
 */
export const MAX_BATCH_ITEMS = 32;

/**
 * The most take calls in flight per client and slot; the groups that arrive meanwhile wait for it to come
 * back and go together (a call of MAX_BATCH_ITEMS goes at once all the same). A server checks each request's
 * limits in the I/O callback that parsed it, one per tick, so without a cap every request would be a script
 * call of its own.
 */
export const MAX_IN_FLIGHT = 1;

/**
 * Per client: the groups submitted during one tick, sent as one script call per slot. Groups are applied in
 * submission order, so the result equals running them one by one.
 */
const batchers = new WeakMap<RedisClient, TickBatcher<number, readonly BucketItem[], GroupOutcome>>();

/**
 * Runs one all-or-nothing group of takes. Every key of `items` must hash to `slot` (see `slotOf` in core).
 * With `batch`, the group shares a script call with the other groups submitted in the same tick.
 */
export function takeGroup(
  client: RedisClient,
  slot: number,
  items: readonly BucketItem[],
  batch: boolean,
): Promise<GroupOutcome> {
  if (!batch) {
    return new Promise<GroupOutcome>((resolve, reject) => {
      // A throw while packing must reject the caller, not escape as an unhandled rejection.
      send(client, [{ item: items, resolve, reject }]).catch(reject);
    });
  }
  let batcher = batchers.get(client);
  if (batcher === undefined) {
    batcher = new TickBatcher(
      (_slot, groups) => send(client, groups),
      MAX_BATCH_ITEMS,
      (g) => g.length,
      MAX_IN_FLIGHT,
    );
    batchers.set(client, batcher);
  }
  return batcher.submit(slot, items);
}

/**
 * Resolves once the takes submitted on `client` for `slot` so far have been sent (those held by
 * {@link MAX_IN_FLIGHT} included): a command sent on `client` afterwards reaches Redis after them.
 */
export function takesSent(client: RedisClient, slot: number): Promise<void> {
  return batchers.get(client)?.sent(slot) ?? Promise.resolve();
}

/**
 * Sends a list of groups as one take script call and settles each group's promise. A batch travels in two
 * arguments: the distinct bucket settings as text, and the groups packed in binary (count, then key index,
 * settings index and cost per item), which the script reads with `string.byte` instead of parsing hundreds
 * of arguments or numbers; that is most of what sending and decoding a batch costs.
 */
async function send(client: RedisClient, groups: readonly Pending[]): Promise<void> {
  const keys: string[] = [];
  const keyIndex = new Map<string, number>();
  const shapes: string[] = [];
  const shapeIndex = new Map<string, number>();
  let size = 0;
  for (const g of groups) size += 2 + 7 * g.item.length;
  const packed = Buffer.allocUnsafe(size);
  let o = 0;
  for (const g of groups) {
    o = packed.writeUInt16BE(g.item.length, o);
    for (const it of g.item) {
      let k = keyIndex.get(it.key);
      if (k === undefined) {
        k = keys.push(it.key);
        keyIndex.set(it.key, k);
      }
      let s = shapeIndex.get(it.shape);
      if (s === undefined) {
        s = shapes.push(it.shape);
        shapeIndex.set(it.shape, s);
      }
      o = packed.writeUInt16BE(k, o);
      o = packed.writeUInt8(s, o);
      o = packed.writeUInt32BE(it.cost, o);
    }
  }
  const args = [shapes.join(" "), packed];
  let r: number[];
  try {
    r = await TAKE.run(client, keys, args);
  } catch (err) {
    for (const g of groups) g.reject(err);
    return;
  }
  let p = 0;
  for (const g of groups) {
    if (p + 1 + g.item.length > r.length) {
      g.reject(new UnexpectedReplyError("ratelimit/take returned a short reply"));
      continue;
    }
    const code = r[p++];
    if (code !== 0 && code !== 1 && code !== 2) {
      g.reject(new UnexpectedReplyError(`ratelimit/take replied ${String(code)} for a group`));
      p += g.item.length;
      continue;
    }
    if (code === 2) {
      const bad = g.item.filter((_, j) => r[p + j] === -1).map((it) => it.key);
      p += g.item.length;
      g.reject(
        new RedisCommandError(`ratelimit: ${bad.join(", ")} holds something other than a token bucket`),
      );
      continue;
    }
    const ok = code === 1;
    g.resolve({ ok, items: g.item.map((it) => outcome(it, r[p++]!, ok)) });
  }
}

/** Ms for `units` to refill at `tokensPerSecond` (a rate of R tokens/s is R units/µs). */
const refillMs = (units: number, tokensPerSecond: number): number =>
  units <= 0 ? 0 : Math.ceil(units / tokensPerSecond / 1000);

/**
 * One item's outcome from the units its bucket held when it was judged; `ok` says whether its group took.
 */
export function outcome(it: BucketItem, have: number, ok: boolean): ItemOutcome {
  const costU = it.cost * UNITS;
  const left = ok ? have - costU : have;
  const pass = have >= costU;
  return {
    pass,
    remaining: Math.floor(left / UNITS),
    retryAfterMs: ok || pass ? 0 : refillMs(costU - have, it.refillPerSecond),
    resetMs: refillMs(it.capacity * UNITS - left, it.refillPerSecond),
    have,
  };
}

/** Gives tokens back (capped at capacity) to buckets that share one slot. */
export async function refund(client: RedisClient, items: readonly BucketItem[]): Promise<void> {
  if (items.length === 0) return;
  const args: (string | number)[] = [];
  for (const it of items) args.push(it.capacity, it.refillPerSecond, it.cost);
  await REFUND.run(
    client,
    items.map((it) => it.key),
    args,
  );
}
