// ReadThroughCache: a cache in Redis in front of a slow source that cannot break down: one load per id per
// process (single-flight), one across processes (a lock; the others wait for the value), TTL jitter, negative
// caching, optional stale-while-revalidate, and an optional penetration guard in front of it all.
import { InvalidArgumentError } from "../errors.js";
import { TickBatcher } from "../internal/batch.js";
import { resolvePrefix } from "../internal/keys.js";
import { slotOf } from "../internal/slot.js";
import { toRedisError, untilServed, type RedisClient } from "../internal/scripts.js";
import { validateId, validateInt, validateOptionalInt, validateOptions } from "../internal/validate.js";
import { validateRedisClient } from "../internal/client.js";
import { SpinLock } from "../lock/spin-lock.js";
import { INVALIDATE, MISSING, decodeEntry, encodeValue, jsonSerializer, type Decoded } from "./entry.js";
import type { PenetrationGuard } from "./guard.js";
import { RedisClock } from "../internal/clock.js";
import { LocalTier } from "./local-tier.js";
import { Loader, type Encoded } from "./loader.js";
import type { CacheKeys, CacheSerializer, ReadThroughCacheOptions } from "./read-through-types.js";
import { published } from "../internal/trace.js";
import { events, type CacheLookupEvent } from "../metrics/channels.js";

const LOOKUP = published<CacheLookupEvent>(events.cacheLookup);

/** How long an id's generation outlives its last invalidation: longer than any load may take. */
const GENERATION_TTL_MS = 3_600_000;
const OPTION_KEYS = [
  "redis",
  "load",
  "ttlMs",
  "jitterMs",
  "negativeTtlMs",
  "guard",
  "lock",
  "lockTtlMs",
  "waitTimeoutMs",
  "pollIntervalMs",
  "staleWhileRevalidateMs",
  "serializer",
  "name",
  "prefix",
  "l1",
  "onError",
] as const;
const L1_KEYS = ["subscriber", "maxEntries", "maxStaleMs"] as const;

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
  private readonly guard: PenetrationGuard | undefined;
  private readonly serializer: CacheSerializer<V>;
  private readonly prefix: string;
  private readonly loader: Loader<V>;
  private readonly l1: LocalTier<V> | undefined;
  private readonly clock: RedisClock;
  private readonly channel: string;
  private readonly onError: (err: unknown) => void;

  constructor(options: ReadThroughCacheOptions<V>) {
    validateOptions("options", options, { required: true, known: OPTION_KEYS });
    const { redis, load, guard, lock, onError } = options;
    validateRedisClient("redis", redis);
    if (typeof load !== "function") throw new InvalidArgumentError("load", "must be a function");
    if (onError !== undefined && typeof onError !== "function") {
      throw new InvalidArgumentError("onError", "must be a function");
    }
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
    const l1 = options.l1;
    if (l1 !== undefined) {
      validateOptions("l1", l1, { required: true, known: L1_KEYS });
      validateRedisClient("l1.subscriber", l1.subscriber);
      if (l1.subscriber === redis) {
        throw new InvalidArgumentError(
          "l1.subscriber",
          "must be a connection of its own (SUBSCRIBE takes it over)",
        );
      }
      validateOptionalInt("l1.maxEntries", l1.maxEntries, { min: 1, max: 10_000_000 });
      validateOptionalInt("l1.maxStaleMs", l1.maxStaleMs, { min: 1, max: options.ttlMs });
    }

    this.redis = redis;
    this.name = name;
    this.prefix = resolvePrefix(options.prefix);
    this.ttlMs = options.ttlMs;
    this.jitterMs = options.jitterMs ?? Math.floor(options.ttlMs / 10);
    this.guard = guard;
    this.negativeTtlMs = options.negativeTtlMs ?? guard?.negativeTtlMs ?? 60_000;
    this.staleWhileRevalidateMs = options.staleWhileRevalidateMs ?? 0;
    this.serializer = serializer;
    this.onError = onError ?? (() => {});
    this.clock = RedisClock.for(redis);
    this.channel = `${this.prefix}:c:${name}:changed`;
    const ownLock =
      lock === undefined
        ? new SpinLock(redis, { prefix: this.prefix, ttlMs: options.lockTtlMs ?? 5_000, acquireTimeoutMs: 0 })
        : undefined;
    this.loader = new Loader<V>({
      redis,
      name,
      lock: lock ?? ownLock!,
      ownLock,
      load,
      guard,
      staleWhileRevalidateMs: this.staleWhileRevalidateMs,
      waitTimeoutMs: options.waitTimeoutMs ?? 10_000,
      pollIntervalMs: options.pollIntervalMs ?? 20,
      onError: this.onError,
      channel: this.channel,
      entryKey: (id) => this.entryKey(id),
      decode: (id, raw) => decodeEntry(this.serializer, id, raw).value,
      encode: (value) =>
        value === undefined || value === null
          ? { entry: MISSING, ttlMs: this.negativeTtlMs, staleInMs: undefined }
          : this.encoded(encodeValue(this.serializer, value)),
    });
    // Last: nothing above may throw once the subscriber is touched.
    this.l1 =
      l1 === undefined
        ? undefined
        : new LocalTier<V>(
            l1.subscriber,
            this.channel,
            l1.maxEntries ?? 1000,
            l1.maxStaleMs ?? Math.min(1000, options.ttlMs),
            this.onError,
          );
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
    return this.loader.keys(id);
  }

  /** Hits of one tick share one MGET per slot (one slot per id on a Cluster; all of them on standalone). */
  private readonly reads = new TickBatcher<number, string, string | null>(async (_slot, batch) => {
    // Several ids can share a slot: while it migrates, a key not moved yet makes the MGET answer TRYAGAIN.
    const keys = batch.map((p) => p.item);
    const values = await untilServed(() => this.redis.mget(keys)).catch((err: unknown) => {
      throw toRedisError(err);
    });
    batch.forEach((p, i) => p.resolve(values[i] ?? null));
  }, 32);

  private entryKey(id: string): string {
    return `{${this.prefix}:${id}}:c:${this.name}`;
  }

  /** A value's entry with its TTL (`ttlMs`, a random jitter, the stale window) and stale stamp. */
  private encoded(entry: string): Encoded {
    const fresh = this.ttlMs + Math.floor(Math.random() * (this.jitterMs + 1));
    const swr = this.staleWhileRevalidateMs;
    return { entry, ttlMs: fresh + swr, staleInMs: swr > 0 ? fresh : undefined };
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
    const l1 = this.l1;
    if (l1 !== undefined) {
      const hit = l1.lookup(id);
      if (hit !== undefined) {
        LOOKUP.publish(() => ({ cache: this.prefix, id, outcome: "l1" }));
        return hit.value;
      }
    }
    const guard = this.guard;
    if (guard !== undefined) {
      const filter = guard.filter;
      const known = filter.mightContainLocal(id) ?? (await filter.mightContain(id));
      if (!known) {
        LOOKUP.publish(() => ({ cache: this.prefix, id, outcome: "rejected" }));
        return undefined;
      }
    }
    const key = this.entryKey(id);
    const ticket = l1?.active === true ? l1.begin() : undefined;
    let decoded: Decoded<V> | undefined;
    let raw: string | null = null;
    try {
      raw = await this.reads.submit(slotOf(this.redis, key), key);
      if (raw !== null) decoded = decodeEntry(this.serializer, id, raw);
    } catch (err) {
      throw toRedisError(err);
    } finally {
      if (ticket !== undefined) l1!.end(ticket, id, decoded !== undefined, decoded?.value);
    }
    if (decoded === undefined) {
      LOOKUP.publish(() => ({ cache: this.prefix, id, outcome: "miss" }));
      return this.loader.miss(id);
    }
    const staleAt = decoded.staleAt;
    if (staleAt !== undefined) this.refreshIfStale(id, staleAt);
    LOOKUP.publish(() => ({
      cache: this.prefix,
      id,
      outcome: staleAt !== undefined && this.clock.compare(staleAt) === "after" ? "stale" : "hit",
    }));
    return decoded.value;
  }

  /**
   * A hit on a stamped entry: past its stale time (Redis time, as this process's synced clock reads it),
   * one background refresh; the refresh itself checks the key's PTTL on the server before loading.
   */
  private refreshIfStale(id: string, staleAt: number): void {
    const verdict = this.clock.compare(staleAt);
    if (verdict === "after") this.loader.refreshInBackground(id);
    else if (verdict === "unsure") {
      // No reading yet: decide once there is one, without making this hit wait for it.
      this.clock.ready().then(() => {
        if (this.clock.compare(staleAt) !== "before") this.loader.refreshInBackground(id);
      }, this.onError);
    }
  }

  /**
   * Resolves once the in-process tier (`l1`) is subscribed and answers hits; at once without `l1`.
   *
   * @example
   * ```ts
   * await products.ready(); // before taking traffic
   * ```
   */
  async ready(): Promise<void> {
    await this.l1?.ready();
  }

  /**
   * Stops the in-process tier: it unsubscribes (unless another cache on the same subscriber uses the same
   * channel) and every later `get` goes to Redis. The clients are the caller's and stay open.
   *
   * @example
   * ```ts
   * await products.close();
   * ```
   */
  async close(): Promise<void> {
    await this.l1?.close();
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
    await INVALIDATE.run(
      this.redis,
      [keys.entry, keys.generation],
      [GENERATION_TTL_MS, "", "", "", this.channel, id],
    );
    // This process does not wait for its own message: reads in flight may not put back what they read.
    this.l1?.drop(id);
    // A load of this process already running may have read the source before the change: a get from now
    // on must not join it, but start its own.
    this.loader.forget(id);
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
        encoded = encodeValue(this.serializer, value);
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
          const { ttlMs, staleInMs } = this.encoded(encoded);
          const keys = this.keys(id);
          // Stored with a new generation, so a load that read the source before the value existed cannot
          // overwrite it with a "missing" marker when it finishes.
          const ops: Promise<unknown>[] = [
            INVALIDATE.run(
              this.redis,
              [keys.entry, keys.generation],
              [GENERATION_TTL_MS, encoded, ttlMs, staleInMs ?? "", this.channel, id],
            ),
          ];
          if (guard !== undefined) ops.push(this.redis.del(guard.negativeKey(id)));
          return ops;
        }),
      ).catch((err: unknown) => {
        throw toRedisError(err);
      });
    }
    for (const [id] of list) this.l1?.drop(id);
    return list.length;
  }
}
