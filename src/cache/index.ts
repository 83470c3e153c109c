// flash-sale-kit/cache: a Bloom filter shared through plain Redis, a penetration guard, and a read-through
// cache with single-flight loading in and across processes.
export {
  RedisBloomFilter,
  MAX_FILTER_BITS,
  MAX_FILTER_SEGMENTS,
  type RedisBloomFilterOptions,
  type BloomMirrorOptions,
  type BloomFilterKeys,
  type RebuildResult,
  type RebuildOptions,
} from "./bloom.js";
export { PenetrationGuard, type PenetrationGuardOptions, type GuardVerdict } from "./guard.js";
export {
  ReadThroughCache,
  CacheWaitTimeoutError,
  type ReadThroughCacheOptions,
  type CacheSerializer,
  type CacheLock,
  type CacheLockHandle,
  type CacheKeys,
} from "./read-through.js";
