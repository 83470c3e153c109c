// PenetrationGuard: stops lookups of ids that do not exist before they reach the cache or the database, with a
// Bloom filter of every known id plus a short-lived negative cache for the ids the filter lets through.
import { InvalidArgumentError } from "../errors.js";
import { entityKeys, resolvePrefix } from "../internal/keys.js";
import { toRedisError, type RedisClient } from "../internal/scripts.js";
import { validateId, validateOptionalInt, validateOptions } from "../internal/validate.js";
import { validateRedisClient } from "../internal/client.js";
import type { RedisBloomFilter } from "./bloom.js";

/** Options of `new PenetrationGuard()`. */
export interface PenetrationGuardOptions {
  /** The filter of every id that exists. */
  readonly filter: RedisBloomFilter;
  /** Where the negative cache lives (usually the client the filter uses). */
  readonly redis: RedisClient;
  /**
   * How long an id stays known-missing after `rememberMissing`.
   * @default 60000
   */
  readonly negativeTtlMs?: number;
  /**
   * First part of the negative-cache keys' hash tag: `{<prefix>:<id>}:miss:<name>`.
   * @default the filter's prefix
   */
  readonly prefix?: string;
  /**
   * Namespace of the negative cache, so two guards over different id spaces never share entries.
   * @default the filter's name
   */
  readonly name?: string;
}

/** The answer of `check`: `"absent"` surely does not exist; `"maybe"` may exist (look it up). */
export type GuardVerdict = "absent" | "maybe";

/**
 * Penetration guard: `check(id)` says `"absent"` when the Bloom filter has never seen the id, or when a
 * negative-cache entry says a lookup found nothing a moment ago; otherwise `"maybe"`. With a mirrored filter
 * an unknown id costs no round trip at all; an id the filter lets through (a false positive, about
 * `errorRate` of unknown ids) costs one `GET`, and reaches the database at most once per `negativeTtlMs`
 * once the caller reports it with `rememberMissing`.
 *
 * Ids are checked like every id of the library (non-empty, at most 200 characters, no braces, whitespace or
 * control characters); others throw {@link InvalidArgumentError}.
 *
 * @example
 * ```ts
 * const guard = new PenetrationGuard({ filter: products, redis, negativeTtlMs: 30_000 });
 * if ((await guard.check(id)) === "absent") return notFound();
 * const row = await db.product(id);
 * if (!row) await guard.rememberMissing(id);
 * ```
 */
export class PenetrationGuard {
  /** The filter of every id that exists. */
  readonly filter: RedisBloomFilter;
  /** How long `rememberMissing` keeps an id known-missing. */
  readonly negativeTtlMs: number;
  private readonly redis: RedisClient;
  private readonly prefix: string;
  private readonly part: string;

  constructor(options: PenetrationGuardOptions) {
    validateOptions("options", options, {
      required: true,
      known: ["filter", "redis", "negativeTtlMs", "prefix", "name"],
    });
    const { filter, redis } = options;
    if (filter === null || typeof filter !== "object" || typeof filter.mightContain !== "function") {
      throw new InvalidArgumentError("filter", "must be a RedisBloomFilter");
    }
    validateRedisClient("redis", redis);
    validateOptionalInt("negativeTtlMs", options.negativeTtlMs, { min: 1 });
    const name = options.name ?? filter.name;
    validateId("name", name);
    this.filter = filter;
    this.redis = redis;
    this.negativeTtlMs = options.negativeTtlMs ?? 60_000;
    // The filter's prefix by default: two guards over same-named filters of two prefixes (two shops) never
    // share negative entries.
    this.prefix = resolvePrefix(options.prefix ?? filter.prefix);
    this.part = `miss:${name}`;
  }

  /**
   * The negative-cache key of `id`.
   *
   * @example
   * ```ts
   * guard.negativeKey("sku-9"); // "{fsk:sku-9}:miss:products"
   * ```
   */
  negativeKey(id: string): string {
    return entityKeys(this.prefix, id).key(this.part);
  }

  /**
   * `"absent"` when the filter rejects `id` or it is negative-cached, else `"maybe"`.
   *
   * @example
   * ```ts
   * if ((await guard.check(req.params.id)) === "absent") return reply.code(404).send();
   * ```
   */
  async check(id: string): Promise<GuardVerdict> {
    validateId("id", id);
    if (!(await this.filter.mightContain(id))) return "absent";
    return (await this.isRememberedMissing(id)) ? "absent" : "maybe";
  }

  /**
   * True when `id` is in the negative cache (one `GET`; the filter is not consulted).
   *
   * @example
   * ```ts
   * await guard.isRememberedMissing("sku-9"); // true for negativeTtlMs after rememberMissing("sku-9")
   * ```
   */
  async isRememberedMissing(id: string): Promise<boolean> {
    const key = this.negativeKey(id);
    try {
      return (await this.redis.get(key)) === MISSING;
    } catch (err) {
      throw toRedisError(err);
    }
  }

  /**
   * Records that a lookup of `id` found nothing: `check(id)` says `"absent"` for `negativeTtlMs`. Unless
   * `forget(id)` ran in the last `negativeTtlMs`: a lookup that read the source before the item was created,
   * and reports its miss after `forget`, must not hide the new item (`forget` wins).
   *
   * @example
   * ```ts
   * if (!(await db.product(id))) await guard.rememberMissing(id);
   * ```
   */
  async rememberMissing(id: string): Promise<void> {
    const key = this.negativeKey(id);
    try {
      await this.redis.set(key, MISSING, "PX", this.negativeTtlMs, "NX");
    } catch (err) {
      throw toRedisError(err);
    }
  }

  /**
   * Call when an item appears: adds `id` to the filter and replaces its negative-cache entry with a "present"
   * marker for `negativeTtlMs`, so `check(id)` says `"maybe"` at once through Redis (and in other processes'
   * mirrors after their next refresh), and a stale `rememberMissing` from a lookup made before cannot undo it.
   *
   * @example
   * ```ts
   * await db.insertProduct(p);
   * await guard.forget(p.id);
   * ```
   */
  async forget(id: string): Promise<void> {
    const key = this.negativeKey(id);
    await this.filter.add(id);
    try {
      await this.redis.set(key, PRESENT, "PX", this.negativeTtlMs);
    } catch (err) {
      throw toRedisError(err);
    }
  }
}

/** Values of a negative-cache key: the id was looked up and missing, or `forget` said it now exists. */
const MISSING = "1";
const PRESENT = "0";
