// RedisBloomFilter: a Bloom filter shared by every process through a plain Redis bitmap (no RedisBloom
// module), with bit positions computed on the client and an optional in-process mirror of the bitmap.
import { randomUUID } from "node:crypto";
import { optimalFilterSize, optimalHashes } from "bloom-filters/dist/formulas.js";
import { ConflictError, InvalidArgumentError, UnexpectedReplyError } from "../errors.js";
import { LUA } from "../internal/embedded.generated.js";
import { entityKeys, resolvePrefix } from "../internal/keys.js";
import { TickBatcher, type Pending } from "../internal/batch.js";
import { LuaScript, toRedisError, type RedisClient } from "../internal/scripts.js";
import { validateId, validateInt, validateOptionalInt, validateOptions } from "../internal/validate.js";
import { HASH_SCHEME, pushPositions, setBits, testBits } from "./hash.js";

/**
 * The largest bitmap a filter may have: 2^32 bits (512 MiB), the range of the two 32-bit hashes.
 *
 * @example
 * ```ts
 * if (filter.bits > MAX_FILTER_BITS / 2) console.warn("consider a second filter");
 * ```
 */
export const MAX_FILTER_BITS = 2 ** 32;
/**
 * The most keys one filter may be split over.
 *
 * @example
 * ```ts
 * const bitsPerKey = Math.ceil(bits / MAX_FILTER_SEGMENTS); // the smallest split that fits
 * ```
 */
export const MAX_FILTER_SEGMENTS = 1024;
const MAX_POSITIONS_PER_CALL = 50_000;
const DEFAULT_BITS_PER_KEY = 2 ** 26; // 8 MiB per key: large enough for ~7M items at 1%, small enough to move

const INIT = new LuaScript("cache/bloom-init", LUA["cache/bloom-init"], 1);
const BEGIN = new LuaScript("cache/bloom-begin", LUA["cache/bloom-begin"], 2);

// Scripts whose key count depends on the number of segments: one registration per count (the command name
// carries the count, so filters of different sizes on one client never share a definition).
function perSegments(path: keyof typeof LUA, extraKeys: number, factor = 1) {
  const cache = new Map<number, LuaScript>();
  return (segments: number): LuaScript => {
    let s = cache.get(segments);
    if (s === undefined) {
      s = new LuaScript(`${path}/${segments}`, LUA[path], extraKeys + factor * segments);
      cache.set(segments, s);
    }
    return s;
  };
}
const ADD = perSegments("cache/bloom-add", 2);
const CHECK = perSegments("cache/bloom-check", 0);
const BUILD = perSegments("cache/bloom-build", 2);
const COMMIT = perSegments("cache/bloom-commit", 2, 2);
const CLEAR = perSegments("cache/bloom-clear", 2);

/** Options of the in-process mirror. */
export interface BloomMirrorOptions {
  /**
   * How often the mirror asks Redis whether the filter changed (one `HMGET`); it reloads the bitmap when the
   * version changed (a rebuild or clear) or another process added items. Items added by another process
   * can be missing from this mirror for up to about this long; items added through this instance never are.
   * @default 1000
   */
  readonly refreshIntervalMs?: number;
}

/** Options of `new RedisBloomFilter()`. */
export interface RedisBloomFilterOptions {
  /** How many items the filter is sized for. Past it, the false-positive rate climbs above `errorRate`. */
  readonly capacity: number;
  /** The false-positive rate wanted at `capacity` items, in (0, 0.5]. */
  readonly errorRate: number;
  /**
   * First part of the keys' hash tag: `{<prefix>:bf:<name>}:…`.
   * @default "fsk"
   */
  readonly prefix?: string;
  /**
   * Bits per Redis key; a larger bitmap is split over several keys (all under the filter's hash tag, so one
   * script reaches all of them, on Cluster too). A multiple of 8 between 1024 and 2^32.
   * @default 67108864 (8 MiB per key)
   */
  readonly bitsPerKey?: number;
  /**
   * Keep a copy of the bitmap in this process, so `mightContain` answers with no round trip. Costs
   * `bits / 8` bytes of memory and one `HMGET` per refresh interval.
   * @default false
   */
  readonly mirror?: boolean | BloomMirrorOptions;
  /**
   * How long a rebuild may go without a sign of life before it counts as abandoned (its commit is then
   * refused and adds stop being queued for it). A running rebuild renews it every third of this.
   * @default 60000
   */
  readonly rebuildLeaseMs?: number;
  /**
   * Items per script call in `addMany`, `mightContainMany` and `rebuild` (at most 10,000, and at most
   * 50,000 / k so that one call carries no more than 50,000 bit positions).
   * @default 1000
   */
  readonly batchSize?: number;
  /** Receives errors of the mirror's background refresh (the mirror keeps its last good copy meanwhile). */
  readonly onError?: (err: unknown) => void;
}

/** The outcome of `rebuild`. */
export type RebuildResult =
  | { readonly ok: true; readonly version: number; readonly items: number }
  /** Another rebuild started after this one (last one wins), or this one stalled past its lease. */
  | { readonly ok: false; readonly reason: "SUPERSEDED" };

/** Options of `rebuild`. */
export interface RebuildOptions {
  /** Stops the rebuild (its staging keys are deleted); the live filter is untouched. */
  readonly signal?: AbortSignal;
}

/** The keys of one filter. */
export interface BloomFilterKeys {
  /** Hash: shape, version, add counter, rebuild state. */
  readonly meta: string;
  /** List of bit positions added while a rebuild runs. */
  readonly pending: string;
  /** The bitmap, one key per segment. */
  readonly segments: readonly string[];
}

type SyncOrAsyncIterable<T> = Iterable<T> | AsyncIterable<T>;

function pair(reply: unknown, script: string): [number, unknown, unknown] {
  if (!Array.isArray(reply) || typeof reply[0] !== "number") {
    throw new UnexpectedReplyError(`${script} returned ${JSON.stringify(reply)}`);
  }
  return [reply[0], reply[1], reply[2]];
}

/**
 * A Bloom filter shared by every process through a bitmap in plain Redis (no module needed), on standalone,
 * Sentinel or Cluster. Sized by `bloom-filters`' formulas for `capacity` and `errorRate`; bit positions are
 * computed on the client (a fast non-cryptographic hash and enhanced double hashing), so one script call
 * sets or tests all k bits. It never answers "no" for an item that was added (no false negatives), and
 * answers "maybe" for an item never added with about `errorRate` probability.
 *
 * With `mirror`, each process keeps a copy of the bitmap and checks it with no round trip; `rebuild(items)`
 * fills a new version beside the live one and switches to it in one step, so readers never see a half-built
 * filter. Keys: `{<prefix>:bf:<name>}:meta`, `:pending` and `:bits:<n>`.
 *
 * @example
 * ```ts
 * const products = new RedisBloomFilter(redis, "products", { capacity: 1_000_000, errorRate: 0.01, mirror: true });
 * await products.addMany(await db.allProductIds());
 * if (!(await products.mightContain(req.params.id))) return reply.code(404).send(); // surely unknown
 * ```
 */
export class RedisBloomFilter {
  /** The filter's name (part of its hash tag). */
  readonly name: string;
  /** The first part of the keys' hash tag (`{<prefix>:bf:<name>}`). */
  readonly prefix: string;
  /** Bits in the bitmap (m), from `bloom-filters`' `optimalFilterSize(capacity, errorRate)`. */
  readonly bits: number;
  /** Bits per item (k), from `bloom-filters`' `optimalHashes(m, capacity)`. */
  readonly hashes: number;
  /** How many Redis keys the bitmap is split over. */
  readonly segmentCount: number;
  /** How many items the filter is sized for. */
  readonly capacity: number;
  /** The false-positive rate it is sized for at `capacity` items. */
  readonly errorRate: number;

  private readonly perKey: number;
  private readonly shape: string;
  private readonly k: ReturnType<typeof entityKeys>;
  private readonly meta: string;
  private readonly pending: string;
  private readonly segments: readonly string[];
  private readonly leaseMs: number;
  private readonly batchSize: number;
  private readonly refreshMs: number | undefined;
  private readonly onError: (err: unknown) => void;
  private readonly check: LuaScript;
  /** Remote checks that arrive in one tick share one script call (the script takes any number of items). */
  private readonly checks = new TickBatcher<0, string, boolean>((_, batch) => this.sendChecks(batch), 32);
  private shapeChecked = false;
  private shapeCheck: Promise<void> | undefined;

  // The mirror: a copy of the bitmap, the (version, adds) it reflects, and positions added through this
  // instance while a reload was in flight (re-applied after it, so the reload cannot lose them).
  private mirrorBits: Uint8Array | undefined;
  private mirrorVersion = -1;
  private mirrorAdds = -1;
  /** When the filter's meta hash was created: keys deleted and built again count from zero again. */
  private mirrorEpoch: string | null = null;
  private mirrorStarted = false;
  /** Set by `close()`: checks no longer restart the mirror's timer; `refresh()` does. */
  private mirrorClosed = false;
  private mirrorTimer: ReturnType<typeof setInterval> | undefined;
  private reloading: Promise<void> | undefined;
  /** A reload that starts once the running one is done (for callers that need a copy read after their call). */
  private queuedReload: Promise<void> | undefined;
  private addedDuringReload: number[] | undefined;
  private ticking = false;

  constructor(
    private readonly redis: RedisClient,
    name: string,
    options: RedisBloomFilterOptions,
  ) {
    validateOptions("options", options, { required: true });
    if (redis === null || typeof redis !== "object" || typeof redis.defineCommand !== "function") {
      throw new InvalidArgumentError("redis", "must be an ioredis Redis or Cluster client");
    }
    validateId("name", name);
    validateInt("capacity", options.capacity, { min: 1 });
    const rate = options.errorRate;
    if (typeof rate !== "number" || !(rate > 0 && rate <= 0.5)) {
      throw new InvalidArgumentError("errorRate", "must be a number in (0, 0.5]");
    }
    validateOptionalInt("bitsPerKey", options.bitsPerKey, { min: 1024, max: MAX_FILTER_BITS });
    validateOptionalInt("rebuildLeaseMs", options.rebuildLeaseMs, { min: 100 });
    validateOptionalInt("batchSize", options.batchSize, { min: 1, max: 10_000 });
    const perKey = options.bitsPerKey ?? DEFAULT_BITS_PER_KEY;
    if (perKey % 8 !== 0) throw new InvalidArgumentError("bitsPerKey", "must be a multiple of 8");
    const m = optimalFilterSize(options.capacity, rate);
    if (m > MAX_FILTER_BITS) {
      throw new InvalidArgumentError(
        "capacity",
        `with errorRate ${rate} needs ${m} bits, more than the 2^32 a filter can have`,
      );
    }
    const segments = Math.ceil(m / perKey);
    if (segments > MAX_FILTER_SEGMENTS) {
      throw new InvalidArgumentError(
        "bitsPerKey",
        `splits ${m} bits over ${segments} keys; at most ${MAX_FILTER_SEGMENTS}`,
      );
    }
    let refreshMs: number | undefined;
    if (options.mirror !== undefined && options.mirror !== false) {
      const mo = options.mirror === true ? {} : options.mirror;
      if (mo === null || typeof mo !== "object") {
        throw new InvalidArgumentError("mirror", "must be a boolean or { refreshIntervalMs }");
      }
      validateOptionalInt("mirror.refreshIntervalMs", mo.refreshIntervalMs, { min: 10 });
      refreshMs = mo.refreshIntervalMs ?? 1000;
    }

    this.name = name;
    this.capacity = options.capacity;
    this.errorRate = rate;
    this.bits = m;
    this.hashes = optimalHashes(m, options.capacity);
    this.perKey = perKey;
    this.segmentCount = segments;
    this.shape = `${m}:${this.hashes}:${perKey}:${HASH_SCHEME}`;
    this.prefix = resolvePrefix(options.prefix);
    this.k = entityKeys(this.prefix, `bf:${name}`, "name");
    this.meta = this.k.key("meta");
    this.pending = this.k.key("pending");
    this.check = CHECK(segments);
    this.segments = Array.from({ length: segments }, (_, i) => this.k.key(`bits:${i}`));
    this.leaseMs = options.rebuildLeaseMs ?? 60_000;
    // Positions travel as script arguments (a spread call): keep one call under ~50,000 of them.
    this.batchSize = Math.max(
      1,
      Math.min(options.batchSize ?? 1000, Math.floor(MAX_POSITIONS_PER_CALL / this.hashes)),
    );
    this.refreshMs = refreshMs;
    this.onError = options.onError ?? (() => {});
  }

  /**
   * The filter's keys, for inspection or to delete a filter for good (`redis.del(meta, pending, ...segments)`).
   *
   * @example
   * ```ts
   * const { meta, segments } = products.keys(); // "{fsk:bf:products}:meta", ["{fsk:bf:products}:bits:0"]
   * ```
   */
  keys(): BloomFilterKeys {
    return { meta: this.meta, pending: this.pending, segments: [...this.segments] };
  }

  /**
   * Adds one item. Once this resolves, `mightContain(item)` is true in every process (through Redis at
   * once; through other processes' mirrors after their next refresh).
   *
   * @example
   * ```ts
   * await products.add("sku-42");
   * ```
   */
  async add(item: string): Promise<void> {
    checkItem("item", item);
    const positions: number[] = [];
    pushPositions(item, this.bits, this.hashes, positions);
    await this.addPositions(positions);
  }

  /**
   * Adds many items, `batchSize` per script call.
   *
   * @example
   * ```ts
   * await products.addMany(["sku-1", "sku-2", "sku-3"]);
   * ```
   */
  async addMany(items: Iterable<string> | AsyncIterable<string>): Promise<void> {
    checkItems(items);
    const batch: number[] = [];
    let n = 0;
    for await (const item of items as SyncOrAsyncIterable<string>) {
      checkItem("items", item);
      pushPositions(item, this.bits, this.hashes, batch);
      if (++n === this.batchSize) {
        await this.addPositions(batch);
        batch.length = 0;
        n = 0;
      }
    }
    if (n > 0) await this.addPositions(batch);
  }

  private async addPositions(positions: number[]): Promise<void> {
    this.startMirror();
    const reply = await ADD(this.segmentCount).run(
      this.redis,
      [this.meta, this.pending, ...this.segments],
      [this.shape, this.perKey, ...positions],
    );
    const [code, changed, adds] = pair(reply, "cache/bloom-add");
    if (code === 1) throw this.shapeError(String(changed));
    if (code !== 0) throw new UnexpectedReplyError(`cache/bloom-add returned code ${code}`);
    this.shapeChecked = true;
    if (this.mirrorBits !== undefined) {
      setBits(this.mirrorBits, positions);
      // Our own add moved the counter by one: the mirror already has it, no reload needed.
      if (Number(changed) > 0 && Number(adds) === this.mirrorAdds + 1) this.mirrorAdds = Number(adds);
    }
    const during = this.addedDuringReload;
    if (during !== undefined) for (const p of positions) during.push(p);
  }

  /**
   * `false` when `item` was surely never added; `true` when it probably was (wrong with about `errorRate`
   * probability). Answers from the mirror when it is enabled and loaded, else with one script call, shared
   * with the other checks of the same tick.
   *
   * @example
   * ```ts
   * if (!(await products.mightContain(id))) return notFound();
   * ```
   */
  mightContain(item: string): Promise<boolean> {
    // Not `async`: the hot path, so one promise layer fewer.
    if (typeof item !== "string") return Promise.reject(new InvalidArgumentError("item", "must be strings"));
    const local = this.mightContainLocal(item);
    if (local !== undefined) return Promise.resolve(local);
    if (!this.shapeChecked) return this.checkShape().then(() => this.checkRemote(item));
    return this.checkRemote(item);
  }

  private checkRemote(item: string): Promise<boolean> {
    return this.checks.submit(0, item);
  }

  /** Checks the items of one tick with one script call, each settled with its own answer. */
  private async sendChecks(batch: Pending<string, boolean>[]): Promise<void> {
    const args = [this.perKey, this.hashes];
    for (const p of batch) pushPositions(p.item, this.bits, this.hashes, args);
    const reply = await this.check.run(this.redis, this.segments, args);
    if (!Array.isArray(reply) || reply.length !== batch.length) {
      throw new UnexpectedReplyError(`cache/bloom-check returned ${JSON.stringify(reply)}`);
    }
    batch.forEach((p, i) => p.resolve(reply[i] === 1));
  }

  /**
   * `mightContain` for many items, `batchSize` per script call (or none, from the mirror).
   *
   * @example
   * ```ts
   * const [a, b] = await products.mightContainMany(["sku-1", "nope"]); // [true, false]
   * ```
   */
  async mightContainMany(items: readonly string[]): Promise<boolean[]> {
    if (!Array.isArray(items)) throw new InvalidArgumentError("items", "must be an array of strings");
    for (const item of items) checkItem("items", item);
    this.startMirror();
    const bits = this.mirrorBits;
    if (bits !== undefined) return items.map((item) => testBits(bits, item, this.bits, this.hashes));
    if (!this.shapeChecked) await this.checkShape();
    const out: boolean[] = [];
    for (let i = 0; i < items.length; i += this.batchSize) {
      const args = [this.perKey, this.hashes];
      const chunk = items.slice(i, i + this.batchSize);
      for (const item of chunk) pushPositions(item, this.bits, this.hashes, args);
      const reply = await this.check.run(this.redis, this.segments, args);
      if (!Array.isArray(reply) || reply.length !== chunk.length) {
        throw new UnexpectedReplyError(`cache/bloom-check returned ${JSON.stringify(reply)}`);
      }
      for (const r of reply) out.push(r === 1);
    }
    return out;
  }

  /**
   * The mirror's answer with no I/O at all: `undefined` when there is no mirror or it has not loaded yet
   * (the first call starts loading it).
   *
   * @example
   * ```ts
   * const known = products.mightContainLocal(id) ?? (await products.mightContain(id));
   * ```
   */
  mightContainLocal(item: string): boolean | undefined {
    this.startMirror();
    const bits = this.mirrorBits;
    if (bits === undefined) return undefined;
    return testBits(bits, item, this.bits, this.hashes);
  }

  /**
   * Removes every item (the shape stays) and bumps the version, so every mirror reloads. A rebuild running
   * meanwhile (in any process) is ended: its switch would bring back what was cleared, so it returns
   * `{ ok: false, reason: "SUPERSEDED" }` and leaves the filter empty.
   *
   * @example
   * ```ts
   * await products.clear();
   * ```
   */
  async clear(): Promise<void> {
    const reply = pair(
      await CLEAR(this.segmentCount).run(
        this.redis,
        [this.meta, this.pending, ...this.segments],
        [this.shape],
      ),
      "cache/bloom-clear",
    );
    if (reply[0] === 1) throw this.shapeError(String(reply[1]));
    if (this.mirrorBits !== undefined) await this.reload(true);
  }

  /**
   * Replaces the filter's contents with `items` (removed items stop matching), without a moment where
   * readers see a half-built filter: the new version is filled in staging keys beside the live ones and
   * renamed over them in one script. Items added (through any process) while the rebuild runs are kept.
   * Items added before it started are kept only if `items` has them, so read your source of truth after
   * calling (an async iterable is read lazily, after the rebuild has started).
   *
   * Two rebuilds at once: the one started last wins; the other returns `{ ok: false, reason: "SUPERSEDED" }`,
   * and so does a rebuild during which {@link RedisBloomFilter.clear} was called.
   *
   * @example
   * ```ts
   * const r = await products.rebuild(db.streamProductIds()); // an AsyncIterable<string>
   * if (r.ok) console.log(`version ${r.version}: ${r.items} items`);
   * ```
   */
  async rebuild(
    items: Iterable<string> | AsyncIterable<string>,
    options: RebuildOptions = {},
  ): Promise<RebuildResult> {
    checkItems(items); // before anything is written: a rebuild from a string would be one of its characters
    validateOptions("options", options);
    const { signal } = options;
    signal?.throwIfAborted();
    const id = randomUUID();
    const staging = this.segments.map((_, i) => this.k.key(`build:${id}:${i}`));
    const begun = pair(
      await BEGIN.run(this.redis, [this.meta, this.pending], [this.shape, id, this.leaseMs]),
      "cache/bloom-begin",
    );
    if (begun[0] === 1) throw this.shapeError(String(begun[1]));
    this.shapeChecked = true;

    let superseded = false;
    const build = (positions: readonly number[]) =>
      BUILD(this.segmentCount)
        .run(this.redis, [this.meta, this.pending, ...staging], [id, this.perKey, ...positions])
        .then((code) => {
          if (code === 1) superseded = true;
          else if (code !== 0) throw new UnexpectedReplyError(`cache/bloom-build returned ${String(code)}`);
        });
    // Renew the lease even while the item source is slow to yield.
    const heartbeat = setInterval(
      () => void build([]).catch(this.onError),
      Math.max(50, Math.floor(this.leaseMs / 3)),
    );
    heartbeat.unref?.();
    let count = 0;
    try {
      const batch: number[] = [];
      let n = 0;
      for await (const item of items as SyncOrAsyncIterable<string>) {
        checkItem("items", item);
        pushPositions(item, this.bits, this.hashes, batch);
        count++;
        if (++n === this.batchSize) {
          signal?.throwIfAborted();
          await build(batch);
          if (superseded) break;
          batch.length = 0;
          n = 0;
        }
      }
      signal?.throwIfAborted();
      if (!superseded && n > 0) await build(batch);
      if (superseded) {
        await this.dropStaging(staging);
        return { ok: false, reason: "SUPERSEDED" };
      }
      const reply = pair(
        await COMMIT(this.segmentCount).run(
          this.redis,
          [this.meta, this.pending, ...this.segments, ...staging],
          [id, this.perKey, this.segmentCount],
        ),
        "cache/bloom-commit",
      );
      if (reply[0] !== 0) {
        await this.dropStaging(staging);
        return { ok: false, reason: "SUPERSEDED" };
      }
      if (this.mirrorBits !== undefined) await this.reload(true).catch(this.onError);
      return { ok: true, version: Number(reply[1]), items: count };
    } catch (err) {
      await this.dropStaging(staging);
      throw err;
    } finally {
      clearInterval(heartbeat);
    }
  }

  private async dropStaging(staging: readonly string[]): Promise<void> {
    try {
      await this.redis.del(...staging);
    } catch (err) {
      this.onError(toRedisError(err)); // they expire on their own
    }
  }

  /**
   * Loads the mirror from Redis now and starts its refresh timer; resolves once this process answers from
   * its own copy. Without `mirror` it throws {@link InvalidArgumentError}.
   *
   * @example
   * ```ts
   * const products = new RedisBloomFilter(redis, "products", { capacity: 1e6, errorRate: 0.01, mirror: true });
   * await products.refresh(); // before taking traffic
   * ```
   */
  async refresh(): Promise<void> {
    if (this.refreshMs === undefined)
      throw new InvalidArgumentError("mirror", "is not enabled on this filter");
    this.mirrorClosed = false;
    this.startMirror(false);
    await this.reload(true);
  }

  /**
   * Stops the mirror's refresh timer (it is `unref`'d, so it never keeps a process alive by itself). The
   * mirror keeps answering from its last copy; `refresh()` starts it again.
   *
   * @example
   * ```ts
   * products.close();
   * ```
   */
  close(): void {
    if (this.mirrorTimer !== undefined) clearInterval(this.mirrorTimer);
    this.mirrorTimer = undefined;
    this.mirrorStarted = false;
    this.mirrorClosed = true;
  }

  private startMirror(load = true): void {
    if (this.refreshMs === undefined || this.mirrorStarted || this.mirrorClosed) return;
    this.mirrorStarted = true;
    this.mirrorTimer = setInterval(() => void this.tick(), this.refreshMs);
    this.mirrorTimer.unref?.();
    if (load) this.reload().catch(this.onError);
  }

  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      if (this.mirrorBits === undefined) return await this.reload();
      const [version, adds, epoch] = await this.redis.hmget(this.meta, "version", "adds", "epoch");
      if (
        Number(version ?? 0) !== this.mirrorVersion ||
        Number(adds ?? 0) !== this.mirrorAdds ||
        (epoch ?? null) !== this.mirrorEpoch
      ) {
        await this.reload();
      }
    } catch (err) {
      this.onError(toRedisError(err));
    } finally {
      this.ticking = false;
    }
  }

  /**
   * Reloads the whole bitmap in one MULTI (one consistent snapshot); concurrent callers share it. `fresh`:
   * the copy must be read after this call (a reload already running may have read before a write the caller
   * knows of), so it chains one more reload after a running one; callers share that one too.
   */
  private reload(fresh = false): Promise<void> {
    if (this.reloading === undefined) {
      const run: Promise<void> = this.doReload().finally(() => {
        if (this.reloading === run) this.reloading = undefined;
      });
      this.reloading = run;
      return run;
    }
    if (!fresh) return this.reloading;
    // One reload queued behind the running one serves every fresh caller that arrives before it starts.
    this.queuedReload ??= this.reloading
      .catch(() => undefined)
      .then(() => {
        this.queuedReload = undefined;
        return this.reload();
      });
    return this.queuedReload;
  }

  private async doReload(): Promise<void> {
    this.addedDuringReload = [];
    try {
      let tx = this.redis.multi().hmget(this.meta, "shape", "version", "adds", "epoch");
      for (const key of this.segments) tx = tx.getBuffer(key);
      let replies: [Error | null, unknown][] | null;
      try {
        replies = await tx.exec();
      } catch (err) {
        throw toRedisError(err);
      }
      if (replies === null) throw new UnexpectedReplyError("the mirror's MULTI was discarded");
      for (const [err] of replies) if (err) throw toRedisError(err);
      const [shape, version, adds, epoch] = replies[0]![1] as (string | null)[];
      if (shape != null && shape !== this.shape) {
        // Another client stored another shape since: this copy means nothing any more. Without it, checks go
        // to Redis, whose scripts throw the conflict to the caller instead of answering from stale bits.
        this.mirrorBits = undefined;
        this.shapeChecked = false;
        throw this.shapeError(shape);
      }
      // Everything from here on is synchronous: readers see the old copy or the new one, never a mix.
      const bytes = Math.ceil(this.bits / 8);
      const bits = this.mirrorBits ?? new Uint8Array(bytes);
      bits.fill(0);
      const bytesPerKey = this.perKey / 8;
      for (let i = 0; i < this.segments.length; i++) {
        const buf = replies[i + 1]![1] as Buffer | null;
        if (buf === null) continue;
        const at = i * bytesPerKey;
        bits.set(buf.subarray(0, Math.max(0, Math.min(buf.length, bytes - at))), at);
      }
      setBits(bits, this.addedDuringReload);
      this.mirrorBits = bits;
      this.mirrorVersion = Number(version ?? 0);
      this.mirrorAdds = Number(adds ?? 0);
      this.mirrorEpoch = epoch ?? null;
    } finally {
      this.addedDuringReload = undefined;
    }
  }

  private async checkShape(): Promise<void> {
    this.shapeCheck ??= (async () => {
      const reply = pair(await INIT.run(this.redis, [this.meta], [this.shape]), "cache/bloom-init");
      if (reply[0] === 1) throw this.shapeError(String(reply[1]));
      this.shapeChecked = true;
    })().finally(() => {
      this.shapeCheck = undefined;
    });
    return this.shapeCheck;
  }

  private shapeError(stored: string): ConflictError {
    return new ConflictError(
      "BLOOM_SHAPE_MISMATCH",
      `filter ${this.name} is stored with shape ${stored} (bits:hashes:bitsPerKey:scheme), this client ` +
        `wants ${this.shape}: every process must use the same capacity, errorRate and bitsPerKey`,
    );
  }
}

/** An iterable of items, and not a string (which iterates its characters). */
function checkItems(items: unknown): void {
  if (
    typeof items !== "object" ||
    items === null ||
    (typeof (items as Iterable<string>)[Symbol.iterator] !== "function" &&
      typeof (items as AsyncIterable<string>)[Symbol.asyncIterator] !== "function")
  ) {
    throw new InvalidArgumentError(
      "items",
      "must be an iterable or async iterable of strings (not a string)",
    );
  }
}

function checkItem(name: string, item: unknown): asserts item is string {
  if (typeof item !== "string") throw new InvalidArgumentError(name, "must be strings");
}
