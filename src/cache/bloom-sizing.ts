// Sizing of a Bloom filter: the bitmap's length m and the number of bits per item k for a capacity and a
// false-positive rate, and how the bitmap is split over Redis keys.
import { InvalidArgumentError } from "../errors.js";
import { validateInt, validateOptionalInt } from "../internal/validate.js";

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
/** 8 MiB per key: large enough for ~7M items at 1%, small enough to move. */
const DEFAULT_BITS_PER_KEY = 2 ** 26;

/** A filter's shape: what every process sharing it must agree on. */
export interface BloomSize {
  /** Bits in the bitmap (m). */
  readonly bits: number;
  /** Bits per item (k). */
  readonly hashes: number;
  /** Bits per Redis key. */
  readonly perKey: number;
  /** Redis keys the bitmap is split over. */
  readonly segments: number;
}

/**
 * The textbook optimum for `n` items at false-positive rate `p`: m = ⌈-n·ln p / (ln 2)²⌉ bits and
 * k = round(m/n · ln 2) (at least 1) bits per item, which gives a rate of about p at n items.
 */
export function optimalSize(n: number, p: number): { bits: number; hashes: number } {
  const bits = Math.ceil((-n * Math.log(p)) / (Math.LN2 * Math.LN2));
  return { bits, hashes: Math.max(1, Math.round((bits / n) * Math.LN2)) };
}

/** Checks a filter's sizing options and computes its shape; throws {@link InvalidArgumentError}. */
export function bloomSize(capacity: unknown, errorRate: unknown, bitsPerKey: unknown): BloomSize {
  validateInt("capacity", capacity, { min: 1 });
  if (typeof errorRate !== "number" || !(errorRate > 0 && errorRate <= 0.5)) {
    throw new InvalidArgumentError("errorRate", "must be a number in (0, 0.5]");
  }
  validateOptionalInt("bitsPerKey", bitsPerKey, { min: 1024, max: MAX_FILTER_BITS });
  const perKey = bitsPerKey ?? DEFAULT_BITS_PER_KEY;
  if (perKey % 8 !== 0) throw new InvalidArgumentError("bitsPerKey", "must be a multiple of 8");
  const { bits, hashes } = optimalSize(capacity, errorRate);
  if (bits > MAX_FILTER_BITS) {
    throw new InvalidArgumentError(
      "capacity",
      `with errorRate ${errorRate} needs ${bits} bits, more than the 2^32 a filter can have`,
    );
  }
  const segments = Math.ceil(bits / perKey);
  if (segments > MAX_FILTER_SEGMENTS) {
    throw new InvalidArgumentError(
      "bitsPerKey",
      `splits ${bits} bits over ${segments} keys; at most ${MAX_FILTER_SEGMENTS}`,
    );
  }
  return { bits, hashes, perKey, segments };
}
