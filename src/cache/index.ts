// flash-sale-kit/cache: a Bloom filter shared through plain Redis, a penetration guard, and a read-through
// cache with single-flight loading in and across processes.
export { RedisBloomFilter } from "./bloom.js";
export { MAX_FILTER_BITS, MAX_FILTER_SEGMENTS } from "./bloom-sizing.js";
export type {
  RedisBloomFilterOptions,
  BloomMirrorOptions,
  BloomFilterKeys,
  RebuildOptions,
} from "./bloom-options.js";
export type { RebuildResult } from "./bloom-rebuild.js";
export { PenetrationGuard, type PenetrationGuardOptions, type GuardVerdict } from "./guard.js";
export { ReadThroughCache } from "./read-through.js";
export {
  CacheWaitTimeoutError,
  type ReadThroughCacheOptions,
  type CacheSerializer,
  type CacheLock,
  type CacheLockHandle,
  type CacheKeys,
  type LocalTierOptions,
} from "./read-through-types.js";
