// ReadThroughCache: a cache in Redis in front of a slow source that cannot break down: one load per id per
// process (single-flight), one across processes (a lock; the others wait for the value), TTL jitter, negative
// caching, optional stale-while-revalidate, and an optional penetration guard in front of it all.
import { createHash } from "node:crypto";
import { FlashSaleError, InvalidArgumentError, UnexpectedReplyError } from "../errors.js";
import { LUA } from "../internal/embedded.generated.js";
import { TickBatcher } from "../internal/batch.js";
import { resolvePrefix } from "../internal/keys.js";
import { slotOf } from "../internal/slot.js";
import { LuaScript, toRedisError, type RedisClient } from "../internal/scripts.js";
import { MAX_ID_LENGTH, validateId, validateInt, validateOptionalInt } from "../internal/validate.js";
import { SpinLock } from "../lock/spin-lock.js";
import type { PenetrationGuard } from "./guard.js";

const SET = new LuaScript("cache/cache-set", LUA["cache/cache-set"], 2);
const INVALIDATE = new LuaScript("cache/cache-invalidate", LUA["cache/cache-invalidate"], 2);

/** How long an id's generation outlives its last invalidation: longer than any load may take. */
const GENERATION_TTL_MS = 3_600_000;
// An entry is one byte of kind, then the serialized value: "v…" a value, "n" known missing.
const VALUE = "v";
const MISSING = "n";

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
  serialize(value: V): string;
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
   * lives `ttlMs + jitter + staleWhileRevalidateMs`; reads in its last `staleWhileRevalidateMs` trigger the
   * refresh (judged by the key's PTTL, the server's clock). Hits then cost a `GET` and a `PTTL` in one round
   * trip.
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
  /** Receives errors of background work (stale refreshes, lock releases) that no caller awaits. */
  readonly onError?: (err: unknown) => void;
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

const jsonSerializer: CacheSerializer<never> = {
  serialize: (value) => JSON.stringify(value),
  deserialize: (text) => JSON.parse(text) as never,
};

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A read-through cache in Redis that cannot break down (cache stampede) and cannot be penetrated:
 *
 * - `get(id)` asks the guard's filter first (with a mirrored filter, no round trip): ids it rejects return
 *   `undefined` at once. A hit is one read (the hits of one tick share one `MGET` per slot).
 * - A miss runs `load` once per id per process (concurrent `get`s share it) and once across processes: the
 *   process that takes the loader lock loads, checks nothing changed since its load began, and stores the
 *   value; the others poll the entry every `pollIntervalMs` for up to `waitTimeoutMs`, and load themselves
 *   only if the holder dies (its lock expires unextended).
 * - Values get `ttlMs` plus a random `0…jitterMs` (no avalanche of keys expiring together); ids that do not
 *   exist are remembered for `negativeTtlMs`; with `staleWhileRevalidateMs` an expiring value is served
 *   while one background load refreshes it.
 *
 * @example
 * ```ts
 * const products = new ReadThroughCache<Product>({
 *   redis,
 *   name: "products",
 *   load: (id) => db.product(id), // resolves undefined for an unknown id
 *   ttlMs: 60_000,
 *   guard: new PenetrationGuard({ filter: productIds, redis }),
 * });
 * const p = await products.get(req.params.id); // undefined: no such product
 * ```
 */
export class ReadThroughCache<V> {
  /** The cache's name (part of every entry key). */
  readonly name: string;
  /** How long a loaded value lives (before jitter). */
  readonly ttlMs: number;
  /** Up to this much is added to each value's TTL at random, so entries filled together expire apart. */
  readonly jitterMs: number;
  /** How long a "missing" answer of `load` is cached. */
  readonly negativeTtlMs: number;
  /** Within this much of its expiry, a hit is served and refreshed in the background. */
  readonly staleWhileRevalidateMs: number;

  private readonly redis: RedisClient;
  private readonly loadFn: (id: string) => Promise<V | null | undefined>;
  private readonly guard: PenetrationGuard | undefined;
  private readonly lock: CacheLock;
  private readonly ownLock: SpinLock | undefined;
  private readonly serializer: CacheSerializer<V>;
  private readonly prefix: string;
  private readonly waitTimeoutMs: number;
  private readonly pollIntervalMs: number;
  private readonly onError: (err: unknown) => void;
  private readonly flights = new Map<string, Promise<V | undefined>>();
  private readonly refreshing = new Set<string>();

  constructor(options: ReadThroughCacheOptions<V>) {
    if (options === null || typeof options !== "object") {
      throw new InvalidArgumentError("options", "must be an object with redis, load and ttlMs");
    }
    const { redis, load, guard, lock } = options;
    if (redis === null || typeof redis !== "object" || typeof redis.defineCommand !== "function") {
      throw new InvalidArgumentError("redis", "must be an ioredis Redis or Cluster client");
    }
    if (typeof load !== "function") throw new InvalidArgumentError("load", "must be a function");
    validateInt("ttlMs", options.ttlMs, { min: 1 });
    validateOptionalInt("jitterMs", options.jitterMs, { min: 0 });
    validateOptionalInt("negativeTtlMs", options.negativeTtlMs, { min: 1 });
    validateOptionalInt("lockTtlMs", options.lockTtlMs, { min: 10 });
    validateOptionalInt("waitTimeoutMs", options.waitTimeoutMs, { min: 1 });
    validateOptionalInt("pollIntervalMs", options.pollIntervalMs, { min: 1 });
    validateOptionalInt("staleWhileRevalidateMs", options.staleWhileRevalidateMs, { min: 0 });
    if (guard !== undefined && (guard === null || typeof guard.check !== "function")) {
      throw new InvalidArgumentError("guard", "must be a PenetrationGuard");
    }
    if (lock !== undefined && (lock === null || typeof lock.tryAcquire !== "function")) {
      throw new InvalidArgumentError("lock", "must have tryAcquire(resource), like SpinLock");
    }
    const serializer = options.serializer ?? (jsonSerializer as CacheSerializer<V>);
    if (typeof serializer?.serialize !== "function" || typeof serializer.deserialize !== "function") {
      throw new InvalidArgumentError("serializer", "must have serialize(value) and deserialize(text)");
    }
    const name = options.name ?? "cache";
    validateId("name", name);
    if (name.length > 64) throw new InvalidArgumentError("name", "must be at most 64 characters");
    // ":" separates the parts of the keys: "products:gen" would be the generation key of "products".
    if (name.includes(":")) throw new InvalidArgumentError("name", "must not contain ':'");

    this.redis = redis;
    this.loadFn = load;
    this.name = name;
    this.prefix = resolvePrefix(options.prefix);
    this.ttlMs = options.ttlMs;
    this.jitterMs = options.jitterMs ?? Math.floor(options.ttlMs / 10);
    this.guard = guard;
    this.negativeTtlMs = options.negativeTtlMs ?? guard?.negativeTtlMs ?? 60_000;
    this.staleWhileRevalidateMs = options.staleWhileRevalidateMs ?? 0;
    this.waitTimeoutMs = options.waitTimeoutMs ?? 10_000;
    this.pollIntervalMs = options.pollIntervalMs ?? 20;
    this.serializer = serializer;
    this.onError = options.onError ?? (() => {});
    if (lock === undefined) {
      this.ownLock = new SpinLock(redis, {
        prefix: this.prefix,
        ttlMs: options.lockTtlMs ?? 5_000,
        acquireTimeoutMs: 0,
      });
      this.lock = this.ownLock;
    } else {
      this.lock = lock;
    }
  }

  /**
   * The keys of one id (validating it).
   *
   * @example
   * ```ts
   * products.keys("sku-1"); // { entry: "{fsk:sku-1}:c:products", generation: "…:gen", lockResource: "cache:products:sku-1" }
   * ```
   */
  keys(id: string): CacheKeys {
    validateId("id", id);
    const entry = this.entryKey(id);
    const resource = `cache:${this.name}:${id}`;
    return {
      entry,
      generation: `${entry}:gen`,
      // Lock resources share the id length cap; a very long id is locked under its digest instead.
      lockResource:
        resource.length <= MAX_ID_LENGTH
          ? resource
          : `cache:${this.name}:#${createHash("sha256").update(id).digest("hex")}`,
    };
  }

  /** Hits of one tick share one MGET per slot (one slot per id on a Cluster; all of them on standalone). */
  private readonly reads = new TickBatcher<number, string, string | null>(async (_slot, batch) => {
    const values = await this.redis.mget(batch.map((p) => p.item)).catch((err: unknown) => {
      throw toRedisError(err);
    });
    batch.forEach((p, i) => p.resolve(values[i] ?? null));
  }, 32);

  private entryKey(id: string): string {
    return `{${this.prefix}:${id}}:c:${this.name}`;
  }

  /**
   * The value of `id`, or `undefined` when it does not exist (per the guard, the negative cache or `load`).
   * Throws {@link InvalidArgumentError} for an id that cannot be a key, {@link CacheWaitTimeoutError} when
   * another process's load outlasts `waitTimeoutMs`, `load`'s own error when it fails (nothing is cached
   * then), and `RedisUnavailableError` when Redis is down (the source is not hit instead: that is the
   * stampede this cache exists to prevent).
   *
   * @example
   * ```ts
   * const product = await products.get("sku-1");
   * if (product === undefined) return reply.code(404).send();
   * ```
   */
  async get(id: string): Promise<V | undefined> {
    validateId("id", id);
    const guard = this.guard;
    if (guard !== undefined) {
      const filter = guard.filter;
      const known = filter.mightContainLocal(id) ?? (await filter.mightContain(id));
      if (!known) return undefined;
    }
    const key = this.entryKey(id);
    let raw: string | null;
    let pttl = -1;
    try {
      if (this.staleWhileRevalidateMs > 0) {
        // A pipeline, not MULTI: two commands on the wire instead of four, and PTTL right after GET is enough.
        const replies = await this.redis.pipeline().get(key).pttl(key).exec();
        if (replies === null) throw new UnexpectedReplyError("the cache's pipeline returned nothing");
        const [[e1, r1], [e2, r2]] = replies as [[Error | null, unknown], [Error | null, unknown]];
        if (e1 ?? e2) throw e1 ?? e2;
        raw = r1 as string | null;
        pttl = r2 as number;
      } else {
        raw = await this.reads.submit(slotOf(this.redis, key), key);
      }
    } catch (err) {
      throw toRedisError(err);
    }
    if (raw !== null) {
      if (pttl >= 0 && pttl <= this.staleWhileRevalidateMs && raw !== MISSING) this.refreshInBackground(id);
      return this.decode(id, raw);
    }
    let flight = this.flights.get(id);
    if (flight === undefined) {
      const mine: Promise<V | undefined> = this.fill(id).finally(() => {
        if (this.flights.get(id) === mine) this.flights.delete(id);
      });
      flight = mine;
      this.flights.set(id, flight);
    }
    return flight;
  }

  private decode(id: string, raw: string): V | undefined {
    if (raw === MISSING) return undefined;
    if (raw[0] !== VALUE) throw new UnexpectedReplyError(`cache entry of ${id} is not one this cache wrote`);
    try {
      return this.serializer.deserialize(raw.slice(1));
    } catch (err) {
      throw new UnexpectedReplyError(`cache entry of ${id} could not be deserialized`, { cause: err });
    }
  }

  /** A miss: load under the lock, or wait for the process that holds it. */
  private async fill(id: string): Promise<V | undefined> {
    if (this.guard !== undefined && (await this.guard.isRememberedMissing(id))) return undefined;
    const keys = this.keys(id);
    const started = Date.now();
    for (;;) {
      const handle = await this.lock.tryAcquire(keys.lockResource);
      if (handle !== null) return this.loadHeld(id, keys, handle, false);
      if (Date.now() - started >= this.waitTimeoutMs) {
        throw new CacheWaitTimeoutError(id, Date.now() - started);
      }
      await sleep(this.pollIntervalMs * (0.5 + Math.random()));
      let raw: string | null;
      try {
        raw = await this.redis.get(keys.entry);
      } catch (err) {
        throw toRedisError(err);
      }
      if (raw !== null) return this.decode(id, raw);
    }
  }

  /**
   * Loads and stores `id` while holding the loader lock. `refresh`: a stale-while-revalidate refresh (skip
   * if another process refreshed meanwhile) rather than a miss (skip if another process filled meanwhile).
   */
  private async loadHeld(
    id: string,
    keys: CacheKeys,
    handle: CacheLockHandle,
    refresh: boolean,
  ): Promise<V | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let holding = true;
    const keepAlive = () => {
      const left = handle.expiresAt - Date.now();
      timer = setTimeout(
        () => {
          handle.extend().then(
            (ok) => {
              if (ok && holding) keepAlive();
            },
            (err) => {
              this.onError(err);
              if (holding) keepAlive();
            },
          );
        },
        Math.max(5, Math.floor(left / 3)),
      );
      timer.unref?.();
    };
    try {
      // Double check, under the lock: the previous holder may have stored it since our GET.
      let raw: string | null;
      let gen: string | null;
      let pttl = -1;
      try {
        if (refresh) {
          const replies = await this.redis.multi().pttl(keys.entry).get(keys.generation).exec();
          pttl = Number(replies?.[0]?.[1] ?? -2);
          gen = (replies?.[1]?.[1] as string | null) ?? null;
          raw = null;
          if (pttl > this.staleWhileRevalidateMs) return undefined; // refreshed by someone else
        } else {
          const both = await this.redis.mget(keys.entry, keys.generation);
          raw = both[0] ?? null;
          gen = both[1] ?? null;
        }
      } catch (err) {
        throw toRedisError(err);
      }
      if (raw != null) return this.decode(id, raw);
      keepAlive();
      const value = await this.loadFn(id);
      const missing = value === undefined || value === null;
      const entry = missing ? MISSING : VALUE + this.serializer.serialize(value);
      const ttl = missing
        ? this.negativeTtlMs
        : this.ttlMs + Math.floor(Math.random() * (this.jitterMs + 1)) + this.staleWhileRevalidateMs;
      // Stored only if no invalidate ran since we read the generation; the caller gets what was read anyway.
      await SET.run(this.redis, [keys.entry, keys.generation], [gen ?? "", entry, ttl]);
      return missing ? undefined : value;
    } finally {
      holding = false;
      if (timer !== undefined) clearTimeout(timer);
      this.release(handle, keys.lockResource);
    }
  }

  private release(handle: CacheLockHandle, resource: string): void {
    handle
      .release()
      .then(() => {
        // SpinLock keeps a fencing counter per resource forever; the cache never uses fences, and one counter
        // per id ever loaded would litter Redis, so the default lock's counter goes with the lock.
        if (this.ownLock !== undefined) return this.redis.del(this.ownLock.keys(resource).fence);
      }, this.onError)
      .catch(this.onError);
  }

  private refreshInBackground(id: string): void {
    if (this.refreshing.has(id) || this.flights.has(id)) return;
    this.refreshing.add(id);
    const keys = this.keys(id);
    this.lock
      .tryAcquire(keys.lockResource)
      .then((handle) => (handle === null ? undefined : this.loadHeld(id, keys, handle, true)))
      .catch(this.onError)
      .finally(() => this.refreshing.delete(id));
  }

  /**
   * Call after `id` changed in the source of truth (created, updated or deleted): drops its entry (value or
   * missing marker) and bumps its generation, so a load already running cannot store what it read before
   * the change. With a guard, also `guard.forget(id)` (adds it to the filter, drops its negative entry).
   *
   * @example
   * ```ts
   * await db.updateProduct(p);
   * await products.invalidate(p.id);
   * ```
   */
  async invalidate(id: string): Promise<void> {
    const keys = this.keys(id);
    if (this.guard !== undefined) await this.guard.forget(id);
    await INVALIDATE.run(this.redis, [keys.entry, keys.generation], [GENERATION_TTL_MS]);
    // A load of this process already running may have read the source before the change: a get from now
    // on must not join it, but start its own.
    this.flights.delete(id);
  }

  /**
   * Fills the cache before the sale: stores each value with its TTL (plus jitter) and, with a guard, adds
   * every id to the filter and drops its negative entry. Resolves with the number of entries stored.
   *
   * @example
   * ```ts
   * await products.prewarm((await db.saleProducts()).map((p) => [p.id, p]));
   * ```
   */
  async prewarm(entries: Iterable<readonly [string, V]>): Promise<number> {
    if (
      typeof entries !== "object" ||
      entries === null ||
      typeof (entries as Iterable<unknown>)[Symbol.iterator] !== "function"
    ) {
      throw new InvalidArgumentError("entries", "must be an iterable of [id, value] pairs");
    }
    const list: [string, string][] = [];
    // Everything is checked and encoded before anything is written.
    for (const entry of entries as Iterable<unknown>) {
      if (!Array.isArray(entry) || entry.length !== 2) {
        throw new InvalidArgumentError("entries", "must be [id, value] pairs");
      }
      const [id, value] = entry as [unknown, V];
      validateId("id", id);
      if (value === undefined || value === null) {
        throw new InvalidArgumentError("entries", `value of ${id} must not be null or undefined`);
      }
      let encoded: string;
      try {
        encoded = VALUE + this.serializer.serialize(value);
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        throw new InvalidArgumentError("entries", `value of ${id} could not be serialized: ${why}`);
      }
      list.push([id, encoded]);
    }
    const guard = this.guard;
    if (guard !== undefined) {
      await guard.filter.addMany(list.map(([id]) => id));
    }
    const batch = 1000;
    for (let i = 0; i < list.length; i += batch) {
      // Separate commands rather than one pipeline: on Cluster the ids live on different slots. ioredis
      // writes them back to back, so this is pipelined on the wire all the same.
      await Promise.all(
        list.slice(i, i + batch).flatMap(([id, encoded]) => {
          const ttl =
            this.ttlMs + Math.floor(Math.random() * (this.jitterMs + 1)) + this.staleWhileRevalidateMs;
          const keys = this.keys(id);
          // Stored with a new generation, so a load that read the source before the value existed cannot
          // overwrite it with a "missing" marker when it finishes.
          const ops: Promise<unknown>[] = [
            INVALIDATE.run(this.redis, [keys.entry, keys.generation], [GENERATION_TTL_MS, encoded, ttl]),
          ];
          if (guard !== undefined) ops.push(this.redis.del(guard.negativeKey(id)));
          return ops;
        }),
      ).catch((err: unknown) => {
        throw toRedisError(err);
      });
    }
    return list.length;
  }
}
