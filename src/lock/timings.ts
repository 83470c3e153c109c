// The timing options every lock shares (TTL, retry pause, acquire timeout): their limits and defaults.
import { validateOptionalInt } from "../internal/validate.js";

/**
 * The longest `ttlMs`, `retryDelayMs`, `acquireTimeoutMs` (and `requestTimeoutMs`) accepted: the longest a
 * Node timer can wait, since a TTL beyond it could not be extended on time.
 *
 * @example
 * ```ts
 * new SpinLock(redis, { ttlMs: MAX_LOCK_MS }); // about 24.8 days
 * ```
 */
export const MAX_LOCK_MS = 2_147_483_647;

/** The option keys every lock accepts. */
export const TIMING_OPTIONS = ["prefix", "ttlMs", "retryDelayMs", "acquireTimeoutMs"] as const;

/** A lock's checked timings. */
export interface LockTimings {
  readonly ttlMs: number;
  readonly retryDelayMs: number;
  readonly acquireTimeoutMs: number;
}

/** Checks the timing options and fills in their defaults (10 s TTL, 50 ms pauses, 10 s timeout). */
export function lockTimings(options: {
  readonly ttlMs?: number;
  readonly retryDelayMs?: number;
  readonly acquireTimeoutMs?: number;
}): LockTimings {
  validateOptionalInt("ttlMs", options.ttlMs, { min: 1, max: MAX_LOCK_MS });
  validateOptionalInt("retryDelayMs", options.retryDelayMs, { min: 1, max: MAX_LOCK_MS });
  validateOptionalInt("acquireTimeoutMs", options.acquireTimeoutMs, { min: 0, max: MAX_LOCK_MS });
  return {
    ttlMs: options.ttlMs ?? 10_000,
    retryDelayMs: options.retryDelayMs ?? 50,
    acquireTimeoutMs: options.acquireTimeoutMs ?? 10_000,
  };
}
