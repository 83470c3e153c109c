// TokenBucket: a token bucket per key, refilled continuously on Redis TIME, taken in one Lua call.
import { InvalidArgumentError, UnexpectedReplyError } from "../errors.js";
import { resolvePrefix } from "../internal/keys.js";
import { toRedisError, type RedisClient } from "../internal/scripts.js";
import { validateId, validateInt, validateOptions } from "../internal/validate.js";
import { slotOf } from "../internal/slot.js";
import { takeGroup, type BucketItem } from "./engine.js";

/** Options of `new TokenBucket()`. */
export interface TokenBucketOptions {
  /** The most tokens a bucket holds: the burst a key may spend at once. A new key starts full. */
  readonly capacity: number;
  /** Tokens added per second, continuously (fractions allowed: `0.5` is one token every two seconds). */
  readonly refillPerSecond: number;
  /**
   * First part of every key's hash tag: `{<prefix>:<key>}:tb`. Give each bucket (each limit) its own prefix,
   * or buckets with the same keys share their tokens.
   * @default "fsk"
   */
  readonly prefix?: string;
  /**
   * Coalesce the takes made on one client in the same tick into one script call (one per slot on a
   * Cluster). Each take keeps its own outcome, exactly as if run alone in submission order; under load this
   * saves most of the round trips and parsing. Turn off to send every take as its own call.
   * @default true
   */
  readonly batch?: boolean;
}

/** Options of `take`. */
export interface TakeOptions {
  /**
   * Tokens this request costs, at most `capacity`.
   * @default 1
   */
  readonly cost?: number;
}

/** The outcome of `take`. A rejected take wrote nothing. */
export interface TakeResult {
  /** Whether the tokens were taken. */
  readonly allowed: boolean;
  /** Whole tokens left after this take (after nothing, when rejected). */
  readonly remaining: number;
  /** When rejected: ms until enough tokens have refilled for this cost; `0` when allowed. */
  readonly retryAfterMs: number;
  /** Ms until the bucket is full again (and its key gone). */
  readonly resetMs: number;
  /** The bucket's capacity. */
  readonly limit: number;
}

/** A bucket's state, read without taking anything. */
export interface BucketState {
  /** Whole tokens available now. */
  readonly remaining: number;
  /** Ms until the bucket is full again. */
  readonly resetMs: number;
  /** The bucket's capacity. */
  readonly limit: number;
}

/**
 * The largest capacity accepted (tokens are doubles inside the script; this keeps fractions exact enough).
 *
 * @example
 * ```ts
 * new TokenBucket(redis, { capacity: Math.min(burst, MAX_CAPACITY), refillPerSecond: 10 });
 * ```
 */
export const MAX_CAPACITY = 1_000_000_000;

/** The longest time from empty to full a bucket may take (about 31 years). */
const MAX_REFILL_SECONDS = 1_000_000_000;

/**
 * A token bucket per key in Redis (standalone, Sentinel or Cluster). A bucket holds up to `capacity` tokens
 * and refills `refillPerSecond` continuously, judged by Redis `TIME`, so the application servers' clocks
 * never matter. `take` is one Lua call that checks before it writes: a rejected take, whatever its cost,
 * stores nothing (no negative balance). A key that refills to full expires on its own, so idle keys cost no
 * memory.
 *
 * @example
 * ```ts
 * import { Redis } from "ioredis";
 * import { TokenBucket } from "flash-sale-kit/ratelimit";
 *
 * // Bursts of 10, then 2 requests a second, per user.
 * const perUser = new TokenBucket(new Redis(), { capacity: 10, refillPerSecond: 2, prefix: "rl:user" });
 * const r = await perUser.take("u42");
 * if (!r.allowed) reply.code(429).header("Retry-After", Math.ceil(r.retryAfterMs / 1000)).send();
 * ```
 */
export class TokenBucket {
  /** The bucket's capacity. */
  readonly capacity: number;
  /** Tokens added per second. */
  readonly refillPerSecond: number;
  /** The key prefix. */
  readonly prefix: string;
  /** Whether takes are coalesced per tick. @internal */
  readonly batch: boolean;
  readonly #shape: string;

  constructor(
    /** The client the bucket lives on. */
    readonly redis: RedisClient,
    options: TokenBucketOptions,
  ) {
    validateOptions("options", options, { required: true });
    if (redis === null || typeof redis !== "object" || typeof redis.defineCommand !== "function") {
      throw new InvalidArgumentError("redis", "must be an ioredis Redis or Cluster client");
    }
    validateInt("capacity", options.capacity, { min: 1, max: MAX_CAPACITY });
    const rate = options.refillPerSecond;
    if (typeof rate !== "number" || !Number.isFinite(rate) || rate <= 0 || rate > MAX_CAPACITY) {
      throw new InvalidArgumentError(
        "refillPerSecond",
        `must be a number above 0 and at most ${MAX_CAPACITY}`,
      );
    }
    // The key's expiry is the moment the bucket is full again: keep it a sane integer (PXAT overflows).
    if (options.capacity / rate > MAX_REFILL_SECONDS) {
      throw new InvalidArgumentError(
        "refillPerSecond",
        `must refill the whole capacity within ${MAX_REFILL_SECONDS} s (capacity / refillPerSecond)`,
      );
    }
    if (options.batch !== undefined && typeof options.batch !== "boolean") {
      throw new InvalidArgumentError("batch", "must be a boolean");
    }
    this.capacity = options.capacity;
    this.refillPerSecond = rate;
    this.prefix = resolvePrefix(options.prefix);
    this.batch = options.batch ?? true;
    this.#shape = `${this.capacity},${this.refillPerSecond}`;
  }

  /**
   * The Redis key of `key`'s bucket: `{<prefix>:<key>}:tb`. Throws {@link InvalidArgumentError} for a key
   * that is empty, longer than 200 characters, or has braces, whitespace or control characters.
   *
   * @example
   * ```ts
   * bucket.keyOf("u42"); // "{rl:user:u42}:tb"
   * ```
   */
  keyOf(key: string): string {
    validateId("key", key);
    return `{${this.prefix}:${key}}:tb`; // as entityKeys(prefix, key).key("tb"), without its closure
  }

  /** The script item for a take of `cost` tokens from `key`. @internal */
  item(key: string, cost: number): BucketItem {
    if (cost !== 0) {
      validateInt("cost", cost, { min: 1 });
      if (cost > this.capacity) {
        throw new InvalidArgumentError("cost", `must be at most the bucket's capacity (${this.capacity})`);
      }
    }
    return {
      key: this.keyOf(key),
      capacity: this.capacity,
      refillPerSecond: this.refillPerSecond,
      shape: this.#shape,
      cost,
    };
  }

  /**
   * Takes `cost` tokens (default 1) from `key`'s bucket if it holds that many; otherwise takes nothing and
   * says how long to wait. Expected refusals are data; Redis faults throw `RedisUnavailableError`.
   *
   * @example
   * ```ts
   * const r = await bucket.take("u42", { cost: 5 }); // a bulk request costs more
   * r.allowed;      // false when fewer than 5 tokens are left (and nothing was taken)
   * r.retryAfterMs; // when 5 will be there
   * ```
   */
  async take(key: string, options: TakeOptions = {}): Promise<TakeResult> {
    validateOptions("options", options);
    const cost = options.cost ?? 1;
    validateInt("cost", cost, { min: 1 });
    const item = this.item(key, cost);
    const out = await takeGroup(this.redis, slotOf(this.redis, item.key), [item], this.batch);
    const it = out.items[0];
    if (it === undefined) throw new UnexpectedReplyError("ratelimit/take returned no item");
    return {
      allowed: out.ok,
      remaining: it.remaining,
      retryAfterMs: it.retryAfterMs,
      resetMs: it.resetMs,
      limit: this.capacity,
    };
  }

  /**
   * Reads `key`'s bucket without taking anything or writing.
   *
   * @example
   * ```ts
   * const { remaining, resetMs } = await bucket.peek("u42");
   * ```
   */
  async peek(key: string): Promise<BucketState> {
    const item = this.item(key, 0);
    const out = await takeGroup(this.redis, slotOf(this.redis, item.key), [item], this.batch);
    const it = out.items[0];
    if (it === undefined) throw new UnexpectedReplyError("ratelimit/take returned no item");
    return { remaining: it.remaining, resetMs: it.resetMs, limit: this.capacity };
  }

  /**
   * Refills `key`'s bucket to full at once (deletes its key).
   *
   * @example
   * ```ts
   * await bucket.reset("u42"); // after a support agent unblocks the user
   * ```
   */
  async reset(key: string): Promise<void> {
    const k = this.keyOf(key);
    // Takes issued before this call leave at the end of the tick (batching): let them go first, so that
    // the reset lands after them on the connection, as the order of the calls says.
    if (this.batch) await new Promise((resolve) => setImmediate(resolve));
    try {
      await this.redis.del(k);
    } catch (err) {
      throw toRedisError(err);
    }
  }
}
