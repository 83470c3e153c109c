// Key naming: every key of one entity (a SKU, a lock resource, a limiter key) shares the hash tag
// `{<prefix>:<id>}` so multi-key scripts run on one slot and the library works unchanged on Redis Cluster.
import { validateId } from "./validate.js";

/**
 * The key prefix used when a module is given none.
 *
 * @example
 * ```ts
 * new Inventory(redis).keys("s").stock; // `{${DEFAULT_PREFIX}:s}:stock`
 * ```
 */
export const DEFAULT_PREFIX = "fsk";

/**
 * Builds keys for one entity. All keys share the hash tag `{<prefix>:<id>}`.
 *
 * @example
 * ```ts
 * const k = entityKeys("fsk", "sku-1");
 * k.tag;           // "{fsk:sku-1}"
 * k.key("stock");  // "{fsk:sku-1}:stock"
 * ```
 */
export interface EntityKeys {
  /** The hash tag, braces included. */
  readonly tag: string;
  /** A key of this entity: `<tag>:<part>`. */
  key(part: string): string;
}

/**
 * Returns the key builder of one entity after validating the prefix and the id (see {@link validateId}).
 *
 * @example
 * ```ts
 * entityKeys("shop", "sku-1").key("meta"); // "{shop:sku-1}:meta"
 * ```
 */
export function entityKeys(prefix: string, id: string, idName = "id"): EntityKeys {
  validateId(idName, id);
  const tag = `{${prefix}:${id}}`;
  return { tag, key: (part: string) => `${tag}:${part}` };
}

/**
 * Validates a key prefix (same rules as ids) and returns it, or the default prefix when none is given.
 *
 * @example
 * ```ts
 * resolvePrefix(undefined); // "fsk"
 * resolvePrefix("shop");    // "shop"
 * ```
 */
export function resolvePrefix(prefix: string | undefined): string {
  if (prefix === undefined) return DEFAULT_PREFIX;
  validateId("prefix", prefix);
  return prefix;
}
