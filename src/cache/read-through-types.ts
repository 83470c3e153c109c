// The public types of ReadThroughCache: its options, the loader lock it needs, its serializer, and the error
// of a bounded wait.
import { FlashSaleError } from "../errors.js";
import type { RedisClient } from "../internal/scripts.js";
import type { PenetrationGuard } from "./guard.js";

/**
 * `get` waited `waitTimeoutMs` for another process's load of `id` (which still holds the loader lock) and
 * gave up. Nothing was loaded by this process; the database was spared.
 *
 * @example
 * ```ts
 * try {
 *   return await products.get(id);
 * } catch (err) {
 *   if (err instanceof CacheWaitTimeoutError) return reply.code(503).header("Retry-After", "1").send();
 *   throw err;
 * }
 * ```
 */
export class CacheWaitTimeoutError extends FlashSaleError {
  /** The class's stable name, matched by `instanceof` across copies of the package. */
  static override readonly kind: string = "CacheWaitTimeoutError";

  constructor(
    /** The id whose value never arrived. */
    readonly id: string,
    /** How long `get` waited, in ms. */
    readonly waitedMs: number,
  ) {
    super("CACHE_WAIT_TIMEOUT", `another process is still loading ${id} after ${waitedMs} ms`);
  }
}

/** A held loader lock: what `ReadThroughCache` needs of a `LockHandle`. */
export interface CacheLockHandle {
  /** Epoch ms (this process's clock) before which the lock is surely still held. */
  readonly expiresAt: number;
  /** Renews the lock for its TTL; `false` when it was lost. */
  extend(): Promise<boolean>;
  /** Releases the lock if still owned. */
  release(): Promise<boolean>;
}

/** The loader lock: what `ReadThroughCache` needs of a lock. `SpinLock` and `QuorumLock` both fit. */
export interface CacheLock {
  /** One attempt: a handle, or `null` when another owner holds the lock. */
  tryAcquire(resource: string): Promise<CacheLockHandle | null>;
}

/** Turns values into strings for Redis and back. */
export interface CacheSerializer<V> {
  /** The text stored in Redis for `value`. */
  serialize(value: V): string;
  /** The value `text` was made from by `serialize`. */
  deserialize(text: string): V;
}

/** Options of `new ReadThroughCache()`. All durations are integer milliseconds. */
export interface ReadThroughCacheOptions<V> {
  /** Where entries (and, by default, the loader lock) live. */
  readonly redis: RedisClient;
  /**
   * Reads one id from the source of truth; `undefined` or `null` means it does not exist (negative-cached).
   * Runs at most once at a time per id across every process sharing the cache.
   */
  readonly load: (id: string) => Promise<V | null | undefined>;
  /** How long a loaded value is served before it is loaded again. */
  readonly ttlMs: number;
  /**
   * A random 0…jitterMs is added to each value's TTL, so keys filled together do not expire together.
   * @default ttlMs / 10
   */
  readonly jitterMs?: number;
  /**
   * How long "does not exist" is remembered.
   * @default the guard's negativeTtlMs, else 60000
   */
  readonly negativeTtlMs?: number;
  /** Checked before anything else: ids its filter rejects reach neither Redis's cache keys nor `load`. */
  readonly guard?: PenetrationGuard;
  /**
   * The cross-process loader lock.
   * @default a SpinLock on `redis` with the cache's prefix, ttl `lockTtlMs`, extended while a load runs
   */
  readonly lock?: CacheLock;
  /**
   * TTL of the default lock: how long a crashed loader holds up the others before one of them takes over.
   * Extended every third of it while the load runs. Ignored when `lock` is given.
   * @default 5000
   */
  readonly lockTtlMs?: number;
  /**
   * How long a `get` waits for another process's load before throwing {@link CacheWaitTimeoutError}. Keep it
   * above the lock's TTL so that a crashed loader is replaced before waiters give up.
   * @default 10000
   */
  readonly waitTimeoutMs?: number;
  /**
   * Pause between looks at the entry (and attempts at the lock) while another process loads.
   * @default 20
   */
  readonly pollIntervalMs?: number;
  /**
   * Serve a value up to this long past its TTL while one background load refreshes it (0: off). The key
   * lives `ttlMs + jitter + staleWhileRevalidateMs`, and its entry carries the Redis time at which it turns
   * stale, so a hit costs what a plain hit costs (one `MGET` per tick); a hit past that time starts one
   * refresh per process, which loads only if the key's PTTL (the server's clock) confirms it is stale.
   * @default 0
   */
  readonly staleWhileRevalidateMs?: number;
  /** @default JSON */
  readonly serializer?: CacheSerializer<V>;
  /**
   * Names the cache's keys, so caches of different things (products, users) never share entries.
   * @default "cache"
   */
  readonly name?: string;
  /**
   * First part of the entry keys' hash tag: `{<prefix>:<id>}:c:<name>`.
   * @default "fsk"
   */
  readonly prefix?: string;
  /**
   * An in-process tier in front of Redis for the few hot ids: a hit costs no round trip. Off by default.
   * See {@link LocalTierOptions} for its bounds.
   */
  readonly l1?: LocalTierOptions;
  /** Receives errors of background work (stale refreshes, lock releases, the L1 subscriber) that no caller awaits. */
  readonly onError?: (err: unknown) => void;
}

/**
 * Options of the in-process tier (L1). Its guarantee: a value served from L1 was read from Redis at most
 * `maxStaleMs` earlier (this process's monotonic clock), and an `invalidate`, `prewarm` or load stored by any
 * process removes it from every L1 as soon as its pub/sub message arrives (usually well under a millisecond
 * after the write). L1 answers only while its subscriber is subscribed: from a disconnection until the
 * subscription is confirmed again, it is emptied and every `get` goes to Redis, so a message lost meanwhile
 * cannot leave a stale entry behind.
 */
export interface LocalTierOptions {
  /** A dedicated connection for `SUBSCRIBE` (it cannot run other commands), e.g. `redis.duplicate()`. */
  readonly subscriber: RedisClient;
  /**
   * The most ids L1 holds; past it the least recently used is dropped.
   * @default 1000
   */
  readonly maxEntries?: number;
  /**
   * The longest L1 serves a value after reading it from Redis, whatever pub/sub says. At most `ttlMs`.
   * @default min(1000, ttlMs)
   */
  readonly maxStaleMs?: number;
}

/** The keys of one id. */
export interface CacheKeys {
  /** String: the entry (a value or the missing marker), with its TTL. */
  readonly entry: string;
  /** Integer: bumped by `invalidate`, so a load in flight cannot store what it read before. */
  readonly generation: string;
  /** The loader lock's resource name. */
  readonly lockResource: string;
}
