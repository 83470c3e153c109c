// The relay's retry schedule: p-retry's exponential backoff formula, computed here so that the next attempt
// can be stored as `now() + delay` by the database (the relay never sleeps through a retry in memory).
import { InvalidArgumentError } from "../errors.js";
import { optionKeys, validateInt, validateOptions } from "../internal/validate.js";

/**
 * Retry backoff, with the meaning and formula of p-retry's options: the delay after the n-th failed attempt
 * is `round(r * minTimeoutMs * factor ** (n - 1))`, capped at `maxTimeoutMs`, where `r` is 1, or a random
 * number in [1, 2) when `randomize` is on. (Randomized delays are floored instead of rounded, so they stay
 * strictly below twice the base.)
 */
export interface RelayBackoffOptions {
  /**
   * Growth factor between consecutive delays.
   * @default 2
   */
  readonly factor?: number;
  /**
   * Delay after the first failed attempt (ms).
   * @default 1000
   */
  readonly minTimeoutMs?: number;
  /**
   * Longest delay (ms).
   * @default 300000
   */
  readonly maxTimeoutMs?: number;
  /**
   * Multiply each delay by a random factor in [1, 2) so that messages failing together do not retry together.
   * @default true
   */
  readonly randomize?: boolean;
}

const KNOWN = optionKeys<RelayBackoffOptions>({ factor: 1, minTimeoutMs: 1, maxTimeoutMs: 1, randomize: 1 });

/**
 * The defaults of {@link RelayBackoffOptions}.
 *
 * @example
 * ```ts
 * new OutboxRelay(outbox, { publish, backoff: { ...DEFAULT_RELAY_BACKOFF, maxTimeoutMs: 60_000 } });
 * ```
 */
export const DEFAULT_RELAY_BACKOFF: Readonly<Required<RelayBackoffOptions>> = Object.freeze({
  factor: 2,
  minTimeoutMs: 1000,
  maxTimeoutMs: 300_000,
  randomize: true,
});

/** Validates backoff options and fills in defaults. @internal */
export function resolveBackoff(options: RelayBackoffOptions = {}): Required<RelayBackoffOptions> {
  if (typeof options !== "object" || options === null) {
    throw new InvalidArgumentError("backoff", "must be an object or a function");
  }
  validateOptions("backoff", options, { known: KNOWN });
  const o = { ...DEFAULT_RELAY_BACKOFF, ...options };
  if (typeof o.factor !== "number" || !Number.isFinite(o.factor) || o.factor <= 0) {
    throw new InvalidArgumentError("backoff.factor", "must be a finite number above 0");
  }
  validateInt("backoff.minTimeoutMs", o.minTimeoutMs, { min: 0 });
  validateInt("backoff.maxTimeoutMs", o.maxTimeoutMs, { min: 0 });
  if (typeof o.randomize !== "boolean")
    throw new InvalidArgumentError("backoff.randomize", "must be a boolean");
  return o;
}

/**
 * The delay (ms) before the next attempt after `failedAttempts` attempts have failed, as p-retry computes it
 * (`calculateDelay`): `round(random * minTimeoutMs * factor ** (failedAttempts - 1))`, at most `maxTimeoutMs`,
 * with `random` in [1, 2) when `randomize` is on and 1 otherwise.
 *
 * @example
 * ```ts
 * retryDelayMs(1, { randomize: false }); // 1000
 * retryDelayMs(3, { randomize: false }); // 4000
 * retryDelayMs(3);                       // between 4000 and 8000
 * ```
 */
export function retryDelayMs(
  failedAttempts: number,
  options: RelayBackoffOptions = {},
  random: () => number = Math.random,
): number {
  validateInt("failedAttempts", failedAttempts, { min: 1 });
  const o = resolveBackoff(options);
  const r = o.randomize ? random() + 1 : 1;
  if (o.minTimeoutMs === 0) return 0;
  const exact = r * o.minTimeoutMs * o.factor ** (failedAttempts - 1);
  // Randomized: floored, so that r < 2 keeps the delay below twice the base even after rounding.
  const delay = o.randomize ? Math.floor(exact) : Math.round(exact);
  return Number.isFinite(delay) ? Math.min(delay, o.maxTimeoutMs) : o.maxTimeoutMs;
}
