// Shapes shared by SpinLock and QuorumLock: the handle of a held lock, and the options of acquire / using.

/**
 * A held lock. `TFence` is `number` for {@link SpinLock} (fencing tokens) and `undefined` for
 * {@link QuorumLock} (independent nodes share no counter, so Redlock cannot fence).
 *
 * @example
 * ```ts
 * const handle = await lock.acquire("order:42");
 * try {
 *   await db.query("UPDATE orders SET status = $2, last_fence = $3 WHERE id = $1 AND last_fence < $3",
 *     [42, "paid", handle.fence]);
 * } finally {
 *   await handle.release();
 * }
 * ```
 */
export interface LockHandle<TFence extends number | undefined = number> {
  /** The resource name given to `acquire`. */
  readonly resource: string;
  /** The random value stored in the lock key; only its holder knows it. */
  readonly token: string;
  /**
   * Fencing token: strictly increasing per resource across every acquisition, so a store that keeps the
   * highest fence it has seen can refuse a stale holder's late write. `undefined` on a QuorumLock.
   */
  readonly fence: TFence;
  /**
   * Epoch ms (this process's clock) before which the lock is certainly still held: measured from the moment
   * the acquire or the last extension was sent, so it errs early. Updated by `extend`.
   */
  readonly expiresAt: number;
  /**
   * Sets the lock to expire `ttlMs` from now (default: the lock's `ttlMs`). Resolves `false`, changing
   * nothing, when this handle no longer owns the lock (it expired, was taken over or released).
   */
  extend(ttlMs?: number): Promise<boolean>;
  /**
   * Deletes the lock if this handle still owns it and wakes waiters. Resolves `false` when it no longer
   * owns it; it never deletes another owner's lock. Safe to call twice.
   */
  release(): Promise<boolean>;
}

/** Options of `acquire`. */
export interface AcquireOptions {
  /** Cancels the wait at once; `acquire` then rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
}

/** Options of `using`. */
export interface UsingOptions extends AcquireOptions {
  /**
   * Stop extending once the lock has been held this long: the lock then expires and the routine's signal
   * aborts with a {@link LockLostError}. Omitted: extended for as long as the routine runs.
   */
  readonly maxHoldMs?: number;
}

/**
 * A routine run under a lock. `signal` aborts with a {@link LockLostError} when the lock is lost (or with
 * the caller's `signal.reason` when the caller aborts).
 */
export type LockedRoutine<T, TFence extends number | undefined> = (
  signal: AbortSignal,
  handle: LockHandle<TFence>,
) => Promise<T>;

/**
 * What SpinLock and QuorumLock have in common, for code that accepts either.
 *
 * @example
 * ```ts
 * async function exclusively(lock: Locker<number | undefined>, id: string, job: () => Promise<void>) {
 *   return lock.using(id, () => job());
 * }
 * ```
 */
export interface Locker<TFence extends number | undefined> {
  acquire(resource: string, options?: AcquireOptions): Promise<LockHandle<TFence>>;
  tryAcquire(resource: string): Promise<LockHandle<TFence> | null>;
  using<T>(resource: string, routine: LockedRoutine<T, TFence>, options?: UsingOptions): Promise<T>;
}
