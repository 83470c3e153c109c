// `using`: run a routine while a held lock is extended in the background, abort its signal when the lock is
// lost, and release in `finally` once any extension in flight has settled. Shared by SpinLock and QuorumLock.
import { InvalidArgumentError } from "../errors.js";
import { validateOptionalInt, validateOptions } from "../internal/validate.js";
import { LockLostError } from "./errors.js";
import type { AcquireOptions, LockHandle, LockedRoutine, UsingOptions } from "./types.js";
import { validateSignal } from "./wait.js";

/** The option keys of `acquire`. */
export const ACQUIRE_OPTIONS = ["signal"] as const;

/**
 * `using()` of every lock: checks the arguments (before anything is written), acquires as `acquire` does,
 * and runs `routine` under the handle ({@link holdWhile}).
 */
export async function using<T, F extends number | undefined>(
  lock: {
    acquire(resource: string, options?: AcquireOptions): Promise<LockHandle<F>>;
    readonly ttlMs: number;
    readonly retryDelayMs: number;
  },
  resource: string,
  routine: LockedRoutine<T, F>,
  options: UsingOptions = {},
): Promise<T> {
  validateOptions("options", options, { known: [...ACQUIRE_OPTIONS, "maxHoldMs"] });
  if (typeof routine !== "function") throw new InvalidArgumentError("routine", "must be a function");
  validateSignal(options.signal);
  validateOptionalInt("maxHoldMs", options.maxHoldMs, { min: 1 });
  const handle = await lock.acquire(resource, { signal: options.signal });
  return holdWhile(handle, routine, {
    ttlMs: lock.ttlMs,
    retryDelayMs: lock.retryDelayMs,
    maxHoldMs: options.maxHoldMs,
    signal: options.signal,
  });
}

/**
 * How long before expiry `using` extends: a third of the TTL, but at least 100 ms (at most half the TTL), so
 * that a short TTL survives the event-loop lag of a busy process.
 */
export function extensionLeadMs(ttlMs: number): number {
  return Math.max(Math.floor(ttlMs / 3), Math.min(100, Math.floor(ttlMs / 2)));
}

export interface HoldOptions {
  /** The lock's TTL: each extension asks for this much (less near `maxHoldMs`). */
  readonly ttlMs: number;
  /** Pause before retrying an extension that failed with a Redis fault, while the lock is still valid. */
  readonly retryDelayMs: number;
  readonly maxHoldMs?: number;
  /** The caller's signal: aborting it aborts the routine's signal with the same reason. */
  readonly signal?: AbortSignal;
}

/**
 * Runs `routine` under `handle`. Timers are unref'd and nothing in them can throw: every outcome of an
 * extension is turned into a rescheduled timer or an abort of the routine's signal.
 */
export async function holdWhile<T, F extends number | undefined>(
  handle: LockHandle<F>,
  routine: LockedRoutine<T, F>,
  options: HoldOptions,
): Promise<T> {
  const { ttlMs, retryDelayMs, maxHoldMs, signal: outer } = options;
  const controller = new AbortController();
  const holdUntil = maxHoldMs === undefined ? Infinity : handle.expiresAt - ttlMs + maxHoldMs;
  let done = false;
  let lost = false;
  let capped = false;
  let lastError: unknown;
  let extendTimer: NodeJS.Timeout | undefined;
  let lossTimer: NodeJS.Timeout | undefined;
  let inflight: Promise<void> | undefined;

  const stopTimers = () => {
    clearTimeout(extendTimer);
    clearTimeout(lossTimer);
  };
  const lose = (message: string, cause?: unknown) => {
    stopTimers();
    if (done || lost) return;
    lost = true;
    // The caller may have aborted already (its reason stays); either way, extending ends here.
    if (controller.signal.aborted) return;
    controller.abort(
      new LockLostError(handle.resource, message, cause === undefined ? undefined : { cause }),
    );
  };
  let extending = false;
  let extensions = 0;
  const expire = () =>
    capped
      ? lose(`maxHoldMs (${maxHoldMs} ms) reached`)
      : lose("it expired before an extension succeeded", lastError);
  // Fires when the lock's validity runs out with no successful extension since: lost, whatever the reason.
  // After a stall the event loop runs due timers before it reads sockets, so an extension whose reply is
  // already in gets one turn of the loop to land first (setImmediate runs after the poll phase). A reply
  // that has not arrived is not waited for: the server may be hung, and the routine must stop now.
  const onExpiry = () => {
    if (!extending) return expire();
    const seen = extensions;
    // Not unref'd: an unref'd immediate lets the poll phase block, and would run only on the next I/O.
    setImmediate(() => {
      if (extensions === seen) expire();
    });
  };
  const armLossTimer = () => {
    clearTimeout(lossTimer);
    lossTimer = setTimeout(onExpiry, Math.max(0, handle.expiresAt - Date.now()));
    lossTimer.unref();
  };
  const scheduleExtension = (delayMs: number) => {
    clearTimeout(extendTimer);
    extendTimer = setTimeout(extendNow, Math.max(0, delayMs));
    extendTimer.unref();
  };
  const lead = extensionLeadMs(ttlMs);
  const scheduleNext = () => scheduleExtension(handle.expiresAt - lead - Date.now());

  function extendNow(): void {
    if (done || lost) return;
    const ttl = Math.min(ttlMs, Math.floor(holdUntil - Date.now()));
    if (ttl <= 0) {
      capped = true;
      return; // the loss timer fires when the last extension runs out
    }
    extending = true;
    inflight = handle.extend(ttl).then(
      (ok) => {
        extending = false;
        if (done || lost) return;
        if (!ok) return lose("another owner holds it (it expired and was taken, or was overwritten)");
        extensions++;
        lastError = undefined;
        armLossTimer();
        if (ttl < ttlMs) capped = true;
        else scheduleNext();
      },
      (err: unknown) => {
        extending = false;
        if (done || lost) return;
        lastError = err;
        // A Redis fault: the lock may still be ours until expiresAt; try again while there is time.
        const left = handle.expiresAt - Date.now();
        if (left > 0) scheduleExtension(Math.max(1, Math.min(retryDelayMs, Math.floor(left / 2))));
        else lose("it could not be extended", err);
      },
    );
  }

  const onOuterAbort = () => {
    if (!controller.signal.aborted) controller.abort(outer!.reason);
  };
  if (outer?.aborted) onOuterAbort();
  else outer?.addEventListener("abort", onOuterAbort, { once: true });
  armLossTimer();
  if (maxHoldMs !== undefined && maxHoldMs < ttlMs) {
    // Shorter than the lock's TTL: shorten the lock now (one "extension" to holdUntil), so that it frees
    // and the signal aborts at maxHoldMs, not when the TTL runs out.
    extendNow();
  } else if (maxHoldMs === ttlMs) capped = true;
  else scheduleNext();

  try {
    return await routine(controller.signal, handle);
  } finally {
    done = true;
    stopTimers();
    outer?.removeEventListener("abort", onOuterAbort);
    // An extension in flight could land after the release and recreate nothing (it is compare-and-pexpire),
    // but waiting for it keeps the release the last word and the handle's state consistent.
    await inflight?.catch(() => {});
    // A failed release is not the routine's failure: its work is done and the lock expires within its TTL.
    await handle.release().catch(() => {});
  }
}
