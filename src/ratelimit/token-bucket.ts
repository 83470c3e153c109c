// TokenBucket: a token bucket per key, refilled continuously on Redis TIME, taken in one Lua call.
import { InvalidArgumentError, RedisUnavailableError, UnexpectedReplyError } from "../errors.js";
import { resolvePrefix } from "../internal/keys.js";
import { toRedisError, type RedisClient } from "../internal/scripts.js";
import { validateId, validateInt, validateOptions } from "../internal/validate.js";
import { slotOf } from "../internal/slot.js";
import { takeGroup, takesSent, type BucketItem, type ItemOutcome } from "./engine.js";
import { LocalState, UNITS, type BanPolicy, type LocalRefusal } from "./local.js";
import { traced } from "../internal/trace.js";
import { channels, type TakeTrace } from "../metrics/channels.js";

const TAKE = traced<TakeTrace>(channels.take);

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
  /**
   * Answer in this process the takes that Redis would refuse: after a reply shows a key's bucket short of
   * tokens, its requests are refused here, without a Redis call, until the earliest moment the bucket could
   * have refilled enough (measured on this process's monotonic clock from when the call was made, which can
   * only end the in-process refusals early, never late). Admissions always go to Redis, so this never lets
   * an extra request through, however many processes share the bucket. Turn off when other programs
   * `reset` or refill buckets you need this process to see at once.
   * @default true
   */
  readonly localRefusals?: boolean;
  /**
   * The most keys this process remembers (known-short buckets, ban counters, insurance buckets); past it
   * the oldest is forgotten, which only sends its next request to Redis.
   * @default 10000
   */
  readonly maxLocalKeys?: number;
  /**
   * Ban a key that keeps knocking: after `after` refusals of it in a row in this process (refusals answered
   * here count), every take of it is refused in this process for `forMs` ms (monotonic clock), whatever its
   * bucket holds. The count starts over after an admission, after the ban, or once the bucket could be
   * full again. In process, as rate-limiter-flexible's `inMemoryBlockOnConsumed`: each process bans on
   * what it sees.
   */
  readonly ban?: TokenBucketBan;
  /**
   * What `take` does when Redis is unavailable (the client not connected, or a `RedisUnavailableError`):
   * `"throw"` the error, or `"local"` answer from an in-process insurance bucket of `localShare` ×
   * capacity refilling at `localShare` × `refillPerSecond`. Redis command errors (a key holding something
   * else) still throw.
   * @default "throw"
   */
  readonly failMode?: "throw" | "local";
  /**
   * The share of the limit one process grants on its own while Redis is unavailable (`failMode:
   * "local"`, also the middleware's): with N processes behind a balancer, `1 / N` keeps the total near the
   * limit. Above 0, at most 1.
   * @default 1
   */
  readonly localShare?: number;
}

/** A ban policy: see {@link TokenBucketOptions.ban}. */
export interface TokenBucketBan {
  /** Refusals in a row that start a ban (at least 1). */
  readonly after: number;
  /** How long the ban lasts, in ms (at least 1). */
  readonly forMs: number;
}

/** The keys of one limiter key's bucket. */
export interface TokenBucketKeys {
  /** The bucket: a string `"<units> <updatedAtUs>"`, missing when full. */
  readonly bucket: string;
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
  readonly ok: boolean;
  /**
   * Whole tokens left after this take (after nothing, when rejected). For a refusal answered in process, an
   * upper bound.
   */
  readonly remaining: number;
  /**
   * When rejected: ms until enough tokens may have refilled for this cost (or a ban ends); `0` when taken.
   */
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

const OPTIONS = [
  "capacity",
  "refillPerSecond",
  "prefix",
  "batch",
  "localRefusals",
  "maxLocalKeys",
  "ban",
  "failMode",
  "localShare",
] as const;

/** A positive finite duration in whole ms, at most a year. */
function validateMs(name: string, value: unknown): asserts value is number {
  validateInt(name, value, { min: 1, max: 366 * 86_400_000 });
}

/** Clients seen ready at least once: a later non-ready status is an outage, not a first connection. */
const seenReady = new WeakSet<RedisClient>();

/**
 * Whether a command sent to `client` now should go to Redis (ioredis `status`, on Redis and Cluster
 * alike): it is ready, or it has never been ready yet (a lazyConnect client connects on its first command,
 * and one still making its first connection queues it), so that `failMode: "local"` steps in only for an
 * outage, never for a client that simply has not connected yet. A failed first connection still falls
 * back, through the command's error.
 */
export function isReady(client: RedisClient): boolean {
  const status = (client as { readonly status?: string }).status;
  if (status === "ready") {
    seenReady.add(client);
    return true;
  }
  return (status === "wait" || status === "connecting" || status === "connect") && !seenReady.has(client);
}

/**
 * A token bucket per key in Redis (standalone, Sentinel or Cluster). A bucket holds up to `capacity` tokens
 * and refills `refillPerSecond` continuously, judged by Redis `TIME`, so the application servers' clocks
 * never matter. `take` is one Lua call that checks before it writes: a rejected take, whatever its cost,
 * stores nothing (no negative balance). A key that refills to full expires on its own, so idle keys cost no
 * memory. A key whose bucket a reply showed short of tokens is refused in process until it may have refilled
 * (see {@link TokenBucketOptions.localRefusals}), so a client that keeps knocking costs Redis about one call
 * per token.
 *
 * @example
 * ```ts
 * import { Redis } from "ioredis";
 * import { TokenBucket } from "flash-sale-kit/ratelimit";
 *
 * // Bursts of 10, then 2 requests a second, per user.
 * const perUser = new TokenBucket(new Redis(), { capacity: 10, refillPerSecond: 2, prefix: "rl:user" });
 * const r = await perUser.take("u42");
 * if (!r.ok) reply.code(429).header("Retry-After", Math.ceil(r.retryAfterMs / 1000)).send();
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
  readonly #local: LocalState;
  readonly #insure: boolean;

  constructor(
    /** The client the bucket lives on. */
    readonly redis: RedisClient,
    options: TokenBucketOptions,
  ) {
    validateOptions("options", options, { required: true, known: OPTIONS });
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
    if (options.localRefusals !== undefined && typeof options.localRefusals !== "boolean") {
      throw new InvalidArgumentError("localRefusals", "must be a boolean");
    }
    const maxLocalKeys = options.maxLocalKeys ?? 10_000;
    validateInt("maxLocalKeys", maxLocalKeys, { min: 1, max: 100_000_000 });
    let ban: BanPolicy | undefined;
    if (options.ban !== undefined) {
      validateOptions("ban", options.ban, { known: ["after", "forMs"] });
      validateInt("ban.after", options.ban.after, { min: 1, max: 1_000_000 });
      validateMs("ban.forMs", options.ban.forMs);
      ban = { after: options.ban.after, forMs: options.ban.forMs };
    }
    const failMode = options.failMode ?? "throw";
    if (failMode !== "throw" && failMode !== "local") {
      throw new InvalidArgumentError("failMode", 'must be "throw" or "local"');
    }
    const share = options.localShare ?? 1;
    if (typeof share !== "number" || !Number.isFinite(share) || share <= 0 || share > 1) {
      throw new InvalidArgumentError("localShare", "must be a number above 0 and at most 1");
    }
    this.capacity = options.capacity;
    this.refillPerSecond = rate;
    this.prefix = resolvePrefix(options.prefix);
    this.batch = options.batch ?? true;
    this.#shape = `${this.capacity},${this.refillPerSecond}`;
    this.#local = new LocalState(
      this.capacity,
      rate,
      maxLocalKeys,
      ban,
      share,
      options.localRefusals ?? true,
    );
    this.#insure = failMode === "local";
  }

  /**
   * The Redis keys of `key`'s bucket: `bucket` is `{<prefix>:<key>}:tb`. Throws
   * {@link InvalidArgumentError} for a key that is empty, longer than 200 characters, or has braces,
   * whitespace or control characters.
   *
   * @example
   * ```ts
   * bucket.keys("u42").bucket; // "{rl:user:u42}:tb"
   * ```
   */
  keys(key: string): TokenBucketKeys {
    return { bucket: this.#keyOf(key) };
  }

  #keyOf(key: string): string {
    validateId("key", key);
    return `{${this.prefix}:${key}}:tb`; // as entityKeys(prefix, key).key("tb"), without its closure
  }

  /** The in-process refusal of `item` at monotonic `now`, if this process knows one. @internal */
  localRefusal(item: BucketItem, now: number): LocalRefusal | undefined {
    return this.#local.refusal(item.key, item.cost, now);
  }

  /**
   * Learns from a reply about `item`, sent at monotonic `sentAt`: `taken` when its tokens were taken and
   * kept, `refused` when its own bucket lacked them. @internal
   */
  observe(item: BucketItem, o: ItemOutcome, taken: boolean, refused: boolean, sentAt: number): number {
    return this.#local.observe(item.key, item.cost, o.have, taken, refused, sentAt);
  }

  /** The insurance bucket's answer for `item` (Redis unavailable); `apply` takes the tokens. @internal */
  insurance(item: BucketItem, now: number, apply: boolean): ItemOutcome {
    const { have, pass } = this.#local.takeInsurance(item.key, item.cost, now, apply);
    const costU = item.cost * UNITS;
    const left = pass && apply ? have - costU : have;
    const rate = this.refillPerSecond * this.#local.share;
    return {
      pass,
      remaining: Math.floor(left / UNITS),
      retryAfterMs: pass ? 0 : Math.ceil((costU - have) / rate / 1000),
      resetMs: Math.ceil(Math.max(0, this.capacity * UNITS * this.#local.share - left) / rate / 1000),
      have,
    };
  }

  /** How many keys this process remembers (refusals, bans, insurance buckets). @internal */
  get localKeys(): number {
    return this.#local.size;
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
      key: this.#keyOf(key),
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
   * r.ok;           // false when fewer than 5 tokens are left (and nothing was taken)
   * r.retryAfterMs; // when 5 will be there
   * ```
   */
  take(key: string, options: TakeOptions = {}): Promise<TakeResult> {
    if (!TAKE.active) return this.#take(key, options);
    const cost = (options as TakeOptions | undefined)?.cost ?? 1;
    return TAKE.trace(() => this.#take(key, options), { bucket: this.prefix, key, cost });
  }

  async #take(key: string, options: TakeOptions): Promise<TakeResult> {
    validateOptions("options", options, { known: ["cost"] });
    const cost = options.cost ?? 1;
    validateInt("cost", cost, { min: 1 });
    const item = this.item(key, cost);
    const sentAt = performance.now();
    const known = this.#local.refusal(item.key, cost, sentAt);
    if (known !== undefined) {
      return {
        ok: false,
        remaining: Math.floor(known.units / UNITS),
        retryAfterMs: known.retryAfterMs,
        resetMs: known.resetMs,
        limit: this.capacity,
      };
    }
    if (this.#insure && !isReady(this.redis)) return this.#insured(item, sentAt);
    let out;
    try {
      out = await takeGroup(this.redis, slotOf(this.redis, item.key), [item], this.batch);
    } catch (err) {
      if (this.#insure && err instanceof RedisUnavailableError) return this.#insured(item, performance.now());
      throw err;
    }
    const it = out.items[0];
    if (it === undefined) throw new UnexpectedReplyError("ratelimit/take returned no item");
    const banMs = this.observe(item, it, out.ok, !out.ok, sentAt);
    return {
      ok: out.ok,
      remaining: it.remaining,
      retryAfterMs: Math.max(it.retryAfterMs, banMs),
      resetMs: it.resetMs,
      limit: this.capacity,
    };
  }

  #insured(item: BucketItem, now: number): TakeResult {
    const o = this.insurance(item, now, true);
    return {
      ok: o.pass,
      remaining: o.remaining,
      retryAfterMs: o.retryAfterMs,
      resetMs: o.resetMs,
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
   * Refills `key`'s bucket to full at once (deletes its key) and forgets what this process knew of it (a
   * refusal or ban held here). Other processes learn of it when their own in-process refusal of the key
   * ends (at most its `retryAfterMs`).
   *
   * @example
   * ```ts
   * await bucket.reset("u42"); // after a support agent unblocks the user
   * ```
   */
  async reset(key: string): Promise<void> {
    const k = this.#keyOf(key);
    this.#local.forget(k);
    // Takes issued before this call leave at the end of the tick (batching), or later when a take call of
    // their slot is still out: let them go first, so that the reset lands after them on the connection, as
    // the order of the calls says.
    if (this.batch) {
      await new Promise((resolve) => setImmediate(resolve));
      await takesSent(this.redis, slotOf(this.redis, k));
    }
    try {
      await this.redis.del(k);
    } catch (err) {
      throw toRedisError(err);
    }
    this.#local.forget(k); // again: a reply to a take sent before the reset may have arrived meanwhile
  }
}
