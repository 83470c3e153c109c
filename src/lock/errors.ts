// The lock module's faults: a wait that ran out, and a lock lost while its holder was still working.
import { FlashSaleError, RedisUnavailableError } from "../errors.js";

/**
 * `acquire` waited `acquireTimeoutMs` and the lock stayed taken. For `QuorumLock`, `cause` is a
 * `RedisUnavailableError` when the last attempt failed because too few nodes answered rather than because
 * another owner holds the lock.
 *
 * @example
 * ```ts
 * try {
 *   const handle = await lock.acquire("order:42");
 * } catch (err) {
 *   if (err instanceof LockTimeoutError) return reply.code(409).send({ error: "busy" });
 *   throw err;
 * }
 * ```
 */
export class LockTimeoutError extends FlashSaleError {
  /** The class's stable name, matched by `instanceof` across copies of the package. */
  static override readonly kind: string = "LockTimeoutError";

  constructor(
    /** The resource that could not be locked. */
    readonly resource: string,
    /** How long `acquire` waited, in ms. */
    readonly waitedMs: number,
    options?: { cause?: unknown },
  ) {
    super("LOCK_TIMEOUT", `could not lock ${resource} within ${waitedMs} ms`, options);
  }
}

/**
 * The lock was lost while `using` ran its routine: an extension found another owner (the key expired and
 * was taken, or was overwritten), extensions failed until the lock expired, or `maxHoldMs` was reached. It
 * is the `reason` of the routine's AbortSignal; mutual exclusion no longer holds from that moment, so stop,
 * or write only through a fenced statement.
 *
 * @example
 * ```ts
 * await lock.using("order:42", async (signal) => {
 *   await step1();
 *   signal.throwIfAborted(); // throws the LockLostError
 *   await step2();
 * });
 * ```
 */
export class LockLostError extends FlashSaleError {
  /** The class's stable name, matched by `instanceof` across copies of the package. */
  static override readonly kind: string = "LockLostError";

  constructor(
    /** The resource whose lock was lost. */
    readonly resource: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super("LOCK_LOST", `lock on ${resource} lost: ${message}`, options);
  }
}

/**
 * A lock with `replicated` acknowledgement was granted on the master, but `WAIT` counted fewer replicas than
 * asked within its timeout. The grant was not given: the lock was released again (compare-and-delete), and
 * its fence was never handed out, so a failover to a replica without it cannot repeat a fence anyone holds.
 * Retrying is safe. `tryAcquire` throws it; `acquire` keeps trying until `acquireTimeoutMs` and then throws
 * a {@link LockTimeoutError} with this error as its `cause`.
 *
 * @example
 * ```ts
 * try {
 *   const handle = await lock.tryAcquire("order:42");
 * } catch (err) {
 *   if (err instanceof LockNotReplicatedError) console.warn(`${err.acknowledged}/${err.replicas} replicas`);
 *   throw err;
 * }
 * ```
 */
export class LockNotReplicatedError extends RedisUnavailableError {
  /** The class's stable name, matched by `instanceof` across copies of the package. */
  static override readonly kind: string = "LockNotReplicatedError";

  constructor(
    /** The resource that was not locked. */
    readonly resource: string,
    /** How many replicas had to confirm the grant. */
    readonly replicas: number,
    /** How many did within the timeout. */
    readonly acknowledged: number,
  ) {
    super(
      `lock on ${resource} not granted: ${acknowledged} of ${replicas} replicas confirmed it in time (WAIT); it was released`,
    );
  }
}
