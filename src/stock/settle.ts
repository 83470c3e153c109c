// Settling calls whose outcome is in doubt: the reply was lost (a command timeout, a dropped connection, a
// failover) or fewer replicas than asked acknowledged it. Every stock step is idempotent by its
// reservation id, so the same call is simply made again, with p-retry's backoff, until it gets an answer
// it can stand by or the time given runs out; then the answer is IN_DOUBT, never an error, so nobody is
// told "failed" for a unit that is then held in their name.
import pRetry, { AbortError } from "p-retry";
import { FlashSaleError, RedisCommandError, RedisUnavailableError } from "../errors.js";

/**
 * An attempt whose write happened (or may have) but is not acknowledged as asked: too few replicas, or the
 * master that answered the WAIT does not hold it. Internal: callers see `IN_DOUBT`. @internal
 */
export class InDoubt extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "InDoubt";
  }
}

/** Server replies that mean the command did not run and may succeed on a retry (failover, loading). */
const TRANSIENT = /^(READONLY|LOADING|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|NOREPLICAS|BUSY) /;

/** Whether `err` leaves the outcome unknown (true), means nothing ran but a retry may work (false), or neither. */
function classify(err: unknown): "doubt" | "transient" | "final" {
  if (err instanceof InDoubt || err instanceof RedisUnavailableError) return "doubt";
  if (err instanceof RedisCommandError) {
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof Error && TRANSIENT.test(cause.message)) return "transient";
  }
  return "final";
}

/** Backoff between attempts: p-retry's exponential formula, from 10 ms up to 500 ms, randomised. */
const BACKOFF = { factor: 2, minTimeout: 10, maxTimeout: 500, randomize: true } as const;

/**
 * Runs `attempt` until it returns, retrying in-doubt and transient failures with the same arguments for
 * up to `settleMs` (0: one attempt). When time runs out after an attempt whose outcome is unknown, returns
 * `inDoubt()`; a failure that is known to have changed nothing (or is not retryable) is thrown. @internal
 */
export async function settle<T>(settleMs: number, attempt: () => Promise<T>, inDoubt: () => T): Promise<T> {
  if (settleMs === 0) {
    try {
      return await attempt();
    } catch (err) {
      if (err instanceof InDoubt) return inDoubt();
      throw err;
    }
  }
  let doubtful = false;
  let last: unknown;
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<"deadline">((resolve) => {
    timer = setTimeout(() => resolve("deadline"), settleMs);
    timer.unref();
  });
  const retried = pRetry(
    async () => {
      try {
        return await attempt();
      } catch (err) {
        const kind = classify(err);
        if (kind === "doubt") doubtful = true;
        last = err;
        if (kind === "final") throw new AbortError(err instanceof Error ? err : new Error(String(err)));
        throw err instanceof Error ? err : new Error(String(err));
      }
    },
    {
      ...BACKOFF,
      retries: Number.POSITIVE_INFINITY,
      maxRetryTime: settleMs,
      signal: controller.signal,
      unref: true,
    },
  ).then(
    (value) => ({ value }),
    (err: unknown) => ({ err }),
  );
  try {
    const outcome = await Promise.race([retried, deadline]);
    if (outcome !== "deadline" && "value" in outcome) return outcome.value;
    if (outcome !== "deadline" && classify(last) === "final") throw unwrap(outcome.err, last);
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  // Out of time. An attempt may still be in flight (its late answer is dropped: it applies, or not, as a
  // retry with the same id will tell).
  if (doubtful || last === undefined) return inDoubt();
  throw unwrap(undefined, last);
}

function unwrap(err: unknown, last: unknown): unknown {
  if (err instanceof AbortError) return last instanceof FlashSaleError ? last : err.originalError;
  return last ?? err;
}
