// The options and key set of a RedisBloomFilter.

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
