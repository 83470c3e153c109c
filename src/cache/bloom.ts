// RedisBloomFilter: a Bloom filter shared by every process through a plain Redis bitmap (no RedisBloom
// module), with bit positions computed on the client and an optional in-process mirror of the bitmap.
import { ConflictError, InvalidArgumentError, UnexpectedReplyError } from "../errors.js";
import { entityKeys, resolvePrefix } from "../internal/keys.js";
import { TickBatcher, type Pending } from "../internal/batch.js";
import type { RedisClient } from "../internal/scripts.js";
import { validateId, validateOptionalInt, validateOptions } from "../internal/validate.js";
import { validateRedisClient } from "../internal/client.js";
import { BloomMirror } from "./bloom-mirror.js";
import { rebuildFilter, type RebuildResult } from "./bloom-rebuild.js";
import { ADD, CHECK, CLEAR, INIT } from "./bloom-scripts.js";
import { bloomSize } from "./bloom-sizing.js";
import { HASH_SCHEME, pushPositions } from "./hash.js";
import type { BloomFilterKeys, RebuildOptions, RedisBloomFilterOptions } from "./bloom-options.js";

const MAX_POSITIONS_PER_CALL = 50_000;
const OPTION_KEYS = [
  "capacity",
  "errorRate",
  "prefix",
  "bitsPerKey",
  "mirror",
  "rebuildLeaseMs",
  "batchSize",
  "onError",
] as const;

type SyncOrAsyncIterable<T> = Iterable<T> | AsyncIterable<T>;

/**
 * A Bloom filter shared by every process through a bitmap in plain Redis (no module needed), on standalone,
 * Sentinel or Cluster. Sized by the textbook optimum for `capacity` and `errorRate`
 * (m = ⌈-n·ln p / (ln 2)²⌉ bits, k = round(m/n · ln 2) bits per item); bit positions are computed on the
 * client (a fast non-cryptographic hash and enhanced double hashing), so one script call sets or tests all k
 * bits. It never answers "no" for an item that was added (no false negatives), and answers "maybe" for an
 * item never added with about `errorRate` probability.
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
  /** Bits in the bitmap: m = ⌈-capacity · ln(errorRate) / (ln 2)²⌉. */
  readonly bits: number;
  /** Bits per item: k = round(bits / capacity · ln 2), at least 1. */
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
  private readonly onError: (err: unknown) => void;
  private readonly mirror: BloomMirror | undefined;
  /** Remote checks that arrive in one tick share one script call (the script takes any number of items). */
  private readonly checks = new TickBatcher<0, string, boolean>((_, batch) => this.sendChecks(batch), 32);
  private shapeChecked = false;
  private shapeCheck: Promise<void> | undefined;

  constructor(
    private readonly redis: RedisClient,
    name: string,
    options: RedisBloomFilterOptions,
  ) {
    validateOptions("options", options, { required: true, known: OPTION_KEYS });
    validateRedisClient("redis", redis);
    validateId("name", name);
    const size = bloomSize(options.capacity, options.errorRate, options.bitsPerKey);
    validateOptionalInt("rebuildLeaseMs", options.rebuildLeaseMs, { min: 100 });
    validateOptionalInt("batchSize", options.batchSize, { min: 1, max: 10_000 });
    if (options.onError !== undefined && typeof options.onError !== "function") {
      throw new InvalidArgumentError("onError", "must be a function");
    }
    let refreshMs: number | undefined;
    if (options.mirror !== undefined && options.mirror !== false) {
      const mo = options.mirror === true ? {} : options.mirror;
      validateOptions("mirror", mo, { required: true, known: ["refreshIntervalMs"] });
      validateOptionalInt("mirror.refreshIntervalMs", mo.refreshIntervalMs, { min: 10 });
      refreshMs = mo.refreshIntervalMs ?? 1000;
    }

    this.name = name;
    this.capacity = options.capacity;
    this.errorRate = options.errorRate;
    this.bits = size.bits;
    this.hashes = size.hashes;
    this.perKey = size.perKey;
    this.segmentCount = size.segments;
    this.shape = `${size.bits}:${size.hashes}:${size.perKey}:${HASH_SCHEME}`;
    this.prefix = resolvePrefix(options.prefix);
    this.k = entityKeys(this.prefix, `bf:${name}`, "name");
    this.meta = this.k.key("meta");
    this.pending = this.k.key("pending");
    this.segments = Array.from({ length: size.segments }, (_, i) => this.k.key(`bits:${i}`));
    this.leaseMs = options.rebuildLeaseMs ?? 60_000;
    // Positions travel as script arguments (a spread call): keep one call under ~50,000 of them.
    this.batchSize = Math.max(
      1,
      Math.min(options.batchSize ?? 1000, Math.floor(MAX_POSITIONS_PER_CALL / this.hashes)),
    );
    this.onError = options.onError ?? (() => {});
    this.mirror =
      refreshMs === undefined
        ? undefined
        : new BloomMirror({
            redis,
            meta: this.meta,
            segments: this.segments,
            bits: this.bits,
            hashes: this.hashes,
            perKey: this.perKey,
            shape: this.shape,
            refreshMs,
            onError: this.onError,
            onShapeConflict: (stored) => {
              this.shapeChecked = false;
              return this.shapeError(stored);
            },
          });
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
    this.mirror?.start();
    const reply = await ADD.run(
      this.redis,
      [this.meta, this.pending, ...this.segments],
      [this.shape, this.perKey, ...positions],
    );
    if (!reply.ok) throw this.shapeError(reply.storedShape);
    this.shapeChecked = true;
    this.mirror?.added(positions, reply.values[0]!, reply.values[1]!);
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
    const local = this.mirror?.test(item);
    if (local !== undefined) return Promise.resolve(local);
    if (!this.shapeChecked) return this.checkShape().then(() => this.checks.submit(0, item));
    return this.checks.submit(0, item);
  }

  /** Checks the items of one tick with one script call, each settled with its own answer. */
  private async sendChecks(batch: Pending<string, boolean>[]): Promise<void> {
    const answers = await this.checkPositions(batch.map((p) => p.item));
    batch.forEach((p, i) => p.resolve(answers[i]!));
  }

  private async checkPositions(items: readonly string[]): Promise<boolean[]> {
    const args = [this.perKey, this.hashes];
    for (const item of items) pushPositions(item, this.bits, this.hashes, args);
    const answers = await CHECK.run(this.redis, this.segments, args);
    if (answers.length !== items.length) {
      throw new UnexpectedReplyError(`cache/bloom-check answered ${answers.length} of ${items.length} items`);
    }
    return answers;
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
    const mirror = this.mirror;
    mirror?.start();
    if (mirror?.loaded === true) return items.map((item) => mirror.test(item)!);
    if (!this.shapeChecked) await this.checkShape();
    const out: boolean[] = [];
    for (let i = 0; i < items.length; i += this.batchSize) {
      out.push(...(await this.checkPositions(items.slice(i, i + this.batchSize))));
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
    return this.mirror?.test(item);
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
    const reply = await CLEAR.run(this.redis, [this.meta, this.pending, ...this.segments], [this.shape]);
    if (!reply.ok) throw this.shapeError(reply.storedShape);
    await this.mirror?.reloadIfLoaded();
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
    validateOptions("options", options, { known: ["signal"] });
    const { signal } = options;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new InvalidArgumentError("signal", "must be an AbortSignal");
    }
    const result = await rebuildFilter(
      {
        redis: this.redis,
        meta: this.meta,
        pending: this.pending,
        segments: this.segments,
        bits: this.bits,
        hashes: this.hashes,
        perKey: this.perKey,
        shape: this.shape,
        leaseMs: this.leaseMs,
        batchSize: this.batchSize,
        onError: this.onError,
        stagingKey: (id, i) => this.k.key(`build:${id}:${i}`),
        shapeError: (stored) => this.shapeError(stored),
        committed: () => this.mirror?.reloadIfLoaded().catch(this.onError) ?? Promise.resolve(),
      },
      items,
      checkItem,
      signal,
    );
    this.shapeChecked = true;
    return result;
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
    if (this.mirror === undefined) throw new InvalidArgumentError("mirror", "is not enabled on this filter");
    await this.mirror.refresh();
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
    this.mirror?.close();
  }

  private async checkShape(): Promise<void> {
    this.shapeCheck ??= (async () => {
      const reply = await INIT.run(this.redis, [this.meta], [this.shape]);
      if (!reply.ok) throw this.shapeError(reply.storedShape);
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
