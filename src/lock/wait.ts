// Waiting between lock attempts: a jittered delay that ends early on a wake-up and at once on abort.
import { InvalidArgumentError } from "../errors.js";

/** The reason an aborted signal carries, or a standard AbortError when it carries none. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("This operation was aborted", "AbortError");
}

/** `delayMs` scaled by a random factor in [0.5, 1.5): waiters that met at one lock drift apart. */
export function jittered(delayMs: number): number {
  return Math.max(1, Math.round(delayMs * (0.5 + Math.random())));
}

/**
 * Resolves after `ms`, or as soon as one of `wakes` resolves; rejects with the signal's reason the moment
 * `signal` aborts. Leaves no timer or listener behind.
 */
export function pause(ms: number, signal: AbortSignal | undefined, wakes: readonly Promise<unknown>[] = []) {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      fn();
    };
    const onAbort = () => finish(() => reject(abortReason(signal!)));
    const timer = setTimeout(() => finish(resolve), ms);
    signal?.addEventListener("abort", onAbort, { once: true });
    for (const w of wakes)
      w.then(
        () => finish(resolve),
        () => finish(resolve),
      );
  });
}

/**
 * Settles like `work`, unless `signal` aborts first: then rejects with its reason at once and hands the
 * late result of `work` to `orphan` (to release a lock acquired after the caller gave up).
 */
/**
 * Checks an optional AbortSignal argument (before any I/O). @internal
 */
export function validateSignal(signal: unknown): asserts signal is AbortSignal | undefined {
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new InvalidArgumentError("signal", "must be an AbortSignal");
  }
}

/**
 * `work`, or `timedOut()` once `ms` have passed; a value `work` yields after that goes to `orphan` (a lock
 * taken after the caller gave up is released). @internal
 */
export function withDeadline<T>(
  work: Promise<T>,
  ms: number,
  timedOut: () => Error,
  orphan: (value: T) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let late = false;
    let settled = false;
    // After a stall the event loop runs due timers before it reads sockets: a reply already in gets one
    // turn of the loop (setImmediate runs after the poll phase) before the deadline counts.
    const timer = setTimeout(
      () =>
        setImmediate(() => {
          if (settled) return;
          late = true;
          reject(timedOut());
        }),
      Math.max(0, ms),
    );
    work.then(
      (value) => {
        settled = true;
        clearTimeout(timer);
        if (late) orphan(value);
        else resolve(value);
      },
      (err: unknown) => {
        settled = true;
        clearTimeout(timer);
        if (!late) reject(err);
      },
    );
  });
}

export function abortable<T>(
  work: Promise<T>,
  signal: AbortSignal | undefined,
  orphan: (value: T) => void,
): Promise<T> {
  if (signal === undefined) return work;
  return new Promise<T>((resolve, reject) => {
    let abandoned = false;
    const onAbort = () => {
      abandoned = true;
      reject(abortReason(signal));
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        if (abandoned) orphan(value);
        else resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        if (!abandoned) reject(err);
      },
    );
  });
}
