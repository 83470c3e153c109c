// flash-sale-kit/ratelimit: token buckets on Redis time, several limits checked as one (a refusal consumes
// nothing), refusals of known-empty buckets and bans answered in process, an insurance limiter while Redis is
// down, the client IP behind trusted proxies, and Fastify / Express middleware.
export {
  TokenBucket,
  MAX_CAPACITY,
  type TokenBucketOptions,
  type TokenBucketBan,
  type TokenBucketKeys,
  type TakeOptions,
  type TakeResult,
  type BucketState,
} from "./token-bucket.js";
export {
  RateLimits,
  type RateLimit,
  type RateLimitsOptions,
  type RateLimitsResult,
  type LimitState,
  type LimitPolicy,
} from "./rate-limits.js";
export {
  clientIp,
  ipKey,
  type ClientIpOptions,
  type ClientIpRequest,
  type IpKeyOptions,
} from "./client-ip.js";
export {
  fastifyRateLimit,
  fastifyRateLimitHook,
  expressRateLimit,
  RateLimitTimeoutError,
  type RateLimitMiddlewareOptions,
  type FastifyReplyLike,
  type FastifyInstanceLike,
  type FastifyRateLimitHook,
  type FastifyRateLimitPlugin,
  type ExpressResponseLike,
  type ExpressRateLimitMiddleware,
} from "./middleware.js";
