// SpinLock: an owner-checked lock on one Redis (standalone, Sentinel or Cluster) with fencing tokens,
// release wake-ups for waiters, and `using` with auto-extension.
import { randomUUID } from "node:crypto";
import { InvalidArgumentError, RedisCommandError, RedisUnavailableError } from "../errors.js";
import { validateRedisClient } from "../internal/client.js";
import { resolvePrefix } from "../internal/keys.js";
import type { RedisClient } from "../internal/scripts.js";
import { slotOf } from "../internal/slot.js";
import { validateId, validateInt, validateOptions } from "../internal/validate.js";
import { LockNotReplicatedError, LockTimeoutError } from "./errors.js";
import { batchersOf, EXTEND, replicatedAcquireOf } from "./scripts.js";
import { lockTimings, MAX_LOCK_MS, TIMING_OPTIONS } from "./timings.js";
import type { AcquireOptions, LockHandle, LockedRoutine, Locker, UsingOptions } from "./types.js";
import { ACQUIRE_OPTIONS, using } from "./using.js";
import { abortable, jittered, pause, validateSignal, withDeadline } from "./wait.js";
import { Wakeups } from "./wakeups.js";
import { traced } from "../internal/trace.js";
import { channels, type AcquireTrace } from "../metrics/channels.js";

const TRACE_ACQUIRE = traced<AcquireTrace>(channels.acquire);

/** Options of `new SpinLock()`. All durations are integer milliseconds. */
export interface SpinLockOptions {
  /**
   * First part of every key's hash tag: `{<prefix>:<resource>}:…`.
   * @default "fsk"
   */
  readonly prefix?: string;
  /**
   * How long a lock lives unless extended. A holder that crashes blocks the resource this long.
   * @default 10_000
   */
  readonly ttlMs?: number;
  /**
   * Mean pause between attempts while waiting (each pause is jittered to 0.5–1.5 times this, and cut short
   * when the holder's TTL runs out sooner or a release wakes the waiter).
   * @default 50
   */
  readonly retryDelayMs?: number;
  /**
   * How long `acquire` waits before throwing {@link LockTimeoutError}; 0 makes it a single attempt.
   * @default 10_000
   */
  readonly acquireTimeoutMs?: number;
  /**
   * A connection the lock may put into subscriber mode (for example `redis.duplicate()`, which you create
   * and close), to hear releases from other processes: a waiter then gets in about one round trip after a
   * release instead of after its next retry pause. Several SpinLocks can share one. A Cluster client may be
   * passed as its own subscriber (ioredis subscribes on a separate connection). Omitted: waiters are woken
   * by releases made through this SpinLock and otherwise retry every `retryDelayMs`.
   */
  readonly subscriber?: RedisClient;
  /**
   * Give a lock only once `WAIT` has counted `replicas` replicas holding the grant (its fence `INCR` and
   * its `SET`) within `timeoutMs`. A short count is not a grant: the lock is released again, `tryAcquire`
   * throws {@link LockNotReplicatedError} and `acquire` keeps trying until `acquireTimeoutMs`. With it, a
   * failover to a replica that had confirmed (Sentinel promotes the most up-to-date one) never hands out a
   * fence again that a holder already got. Omitted: a grant is given as soon as the master has it, and a
   * failover that loses the last writes can repeat fences (a fenced store then refuses the writes).
   */
  readonly replicated?: LockReplicatedOptions;
}

/** The `replicated` option of {@link SpinLockOptions}: acknowledge a grant only once replicas have it. */
export interface LockReplicatedOptions {
  /** How many replicas must confirm each grant (`WAIT`'s count), at least 1. */
  readonly replicas: number;
  /**
   * How long `WAIT` may wait for them, in ms (at least 1; keep it below the client's `commandTimeout`). A
   * batch of acquires waits at most this long on top of its round trip.
   */
  readonly timeoutMs: number;
  /**
   * The connection acquires (and their `WAIT`) go out on, for example `redis.duplicate()` (you create and
   * close it; it must reach the same master as the lock's client). `WAIT` holds up the commands queued
   * behind it on its connection, so a connection of its own keeps the other users of the lock's client
   * from waiting on replicas. Omitted: the lock's client.
   */
  readonly connection?: RedisClient;
}

/** The keys and the release channel of one resource; all share the hash tag `{<prefix>:<resource>}`. */
export interface SpinLockKeys {
  /** String: the owner's token, with the lock's TTL. */
  readonly lock: string;
  /** Integer: the last fencing token handed out. Never expires (fences must keep increasing). */
  readonly fence: string;
  /** Present (briefly) while a subscribed waiter wants a release message. */
  readonly waiters: string;
  /** Pub/sub channel a release publishes to when the waiters flag is set. */
  readonly channel: string;
}

/** The checked `replicated` option. */
interface Replication {
  readonly replicas: number;
  readonly timeoutMs: number;
}

class SpinLockHandle implements LockHandle<number> {
  private released = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: SpinLockKeys,
    readonly resource: string,
    readonly token: string,
    readonly fence: number,
    private expiry: number,
    private readonly ttlMs: number,
    private readonly wakeups: Wakeups,
  ) {}

  get expiresAt(): number {
    return this.expiry;
  }

  async extend(ttlMs: number = this.ttlMs): Promise<boolean> {
    validateInt("ttlMs", ttlMs, { min: 1, max: MAX_LOCK_MS });
    if (this.released) return false;
    const sentAt = Date.now();
    const extended = await EXTEND.run(this.redis, [this.keys.lock], [this.token, ttlMs]);
    if (extended && !this.released) this.expiry = sentAt + ttlMs;
    return extended;
  }

  async release(): Promise<boolean> {
    if (this.released) return false;
    const reply = await batchersOf(this.redis).release.submit(slotOf(this.redis, this.keys.lock), {
      keys: this.keys,
      token: this.token,
    });
    this.released = true;
    this.expiry = 0;
    if (reply === 1) this.wakeups.wake(this.keys.channel);
    return reply === 1;
  }
}

/**
 * An owner-checked lock on one Redis: standalone, Sentinel or Cluster (a resource's keys share one hash
 * tag). Acquiring is one script: `SET NX PX` with a random token plus an `INCR` of the resource's fencing
 * counter; release and extend compare the token first, so a holder whose lock expired can never delete or
 * prolong the next owner's. Waiters retry with jitter until `acquireTimeoutMs`, and are woken early by
 * releases (see `subscriber`).
 *
 * Use it for efficiency (one worker does the job, one loader fills the cache) on its own; for correctness
 * (money, stock, orders) also pass `handle.fence` to the store and let it refuse stale fences: a lock that
 * expires under a paused holder cannot be made safe any other way.
 *
 * @example
 * ```ts
 * import { Redis } from "ioredis";
 * import { SpinLock } from "flash-sale-kit/lock";
 *
 * const redis = new Redis();
 * const lock = new SpinLock(redis, { ttlMs: 5_000, subscriber: redis.duplicate() });
 *
 * await lock.using("order:42", async (signal, { fence }) => {
 *   const order = await loadOrder(42);
 *   signal.throwIfAborted(); // the lock was lost: stop before writing
 *   await db.query(
 *     "UPDATE orders SET status = 'paid', last_fence = $2 WHERE id = $1 AND last_fence < $2",
 *     [order.id, fence],
 *   );
 * });
 * ```
 */
export class SpinLock implements Locker<number> {
  /** The TTL of a lock and of each extension, in ms. */
  readonly ttlMs: number;
  /** The mean pause between attempts, in ms. */
  readonly retryDelayMs: number;
  /** How long `acquire` waits, in ms. */
  readonly acquireTimeoutMs: number;
  private readonly prefix: string;
  private readonly wakeups: Wakeups;
  // How long a subscribed waiter's flag outlives its last attempt: its pause is at most 1.5 retry delays.
  private readonly waitFlagMs: number;
  // Where acquires go out: the lock's client, or the `replicated.connection`.
  private readonly acquirer: RedisClient;
  private readonly replication: Replication | undefined;

  constructor(
    private readonly redis: RedisClient,
    options: SpinLockOptions = {},
  ) {
    validateOptions("options", options, { known: [...TIMING_OPTIONS, "subscriber", "replicated"] });
    validateRedisClient("redis", redis);
    this.prefix = resolvePrefix(options.prefix);
    ({
      ttlMs: this.ttlMs,
      retryDelayMs: this.retryDelayMs,
      acquireTimeoutMs: this.acquireTimeoutMs,
    } = lockTimings(options));
    this.waitFlagMs = Math.max(1000, 4 * this.retryDelayMs);
    const { subscriber } = options;
    if (subscriber !== undefined) {
      validateRedisClient("subscriber", subscriber);
      if (subscriber === redis && !("nodes" in redis)) {
        throw new InvalidArgumentError(
          "subscriber",
          "must be a connection of its own (for example redis.duplicate()): subscriber mode blocks other commands",
        );
      }
    }
    this.wakeups = Wakeups.for(subscriber);
    const { replicated } = options;
    this.acquirer = redis;
    if (replicated !== undefined) {
      validateOptions("replicated", replicated, { known: ["replicas", "timeoutMs", "connection"] });
      validateInt("replicated.replicas", replicated.replicas, { min: 1, max: 100 });
      // WAIT 0 would block for ever: a bound is required (the limits of Inventory's `replicated`).
      validateInt("replicated.timeoutMs", replicated.timeoutMs, { min: 1, max: 60_000 });
      if (replicated.connection !== undefined) {
        validateRedisClient("replicated.connection", replicated.connection);
        if (replicated.connection === subscriber) {
          throw new InvalidArgumentError(
            "replicated.connection",
            "must not be the subscriber (subscriber mode blocks other commands)",
          );
        }
        this.acquirer = replicated.connection;
      }
      this.replication = { replicas: replicated.replicas, timeoutMs: replicated.timeoutMs };
    }
  }

  /**
   * The keys of one resource. Useful to inspect a lock, or to delete a retired resource's fencing counter
   * (`fence` never expires, since a restarted counter would hand out fences a store already saw).
   *
   * @example
   * ```ts
   * await redis.pttl(lock.keys("order:42").lock); // remaining TTL of the current holder, -2 when free
   * ```
   */
  keys(resource: string): SpinLockKeys {
    validateId("resource", resource);
    // The hash tag of entityKeys (internal/keys.ts), built inline: this runs on every attempt.
    const tag = `{${this.prefix}:${resource}}`;
    return {
      lock: `${tag}:lock`,
      fence: `${tag}:fence`,
      waiters: `${tag}:waiters`,
      channel: `${tag}:released`,
    };
  }

  /**
   * One attempt: the handle, or `null` when another owner holds the lock (nothing is written then).
   *
   * @example
   * ```ts
   * const handle = await lock.tryAcquire("rebuild:catalog");
   * if (handle === null) return; // someone else is already on it
   * try { await rebuild(); } finally { await handle.release(); }
   * ```
   */
  tryAcquire(resource: string): Promise<LockHandle<number> | null> {
    if (!TRACE_ACQUIRE.active) return this.#tryAcquire(resource);
    return TRACE_ACQUIRE.trace(() => this.#tryAcquire(resource), { lock: "spin", resource, wait: false });
  }

  async #tryAcquire(resource: string): Promise<LockHandle<number> | null> {
    const got = await this.attempt(resource, this.keys(resource), 0);
    if (got instanceof LockNotReplicatedError) throw got;
    return typeof got === "number" ? null : got;
  }

  /**
   * Waits for the lock: attempts, then pauses (jittered `retryDelayMs`, cut short by a release wake-up or
   * when the holder's TTL ends) until it gets it, or throws {@link LockTimeoutError} once
   * `acquireTimeoutMs` has passed. `signal` cancels the wait at once (rejecting with `signal.reason`); a lock
   * acquired by an attempt already in flight at that moment is released.
   *
   * @example
   * ```ts
   * const handle = await lock.acquire("order:42", { signal: AbortSignal.timeout(2_000) });
   * try {
   *   await work(handle.fence);
   * } finally {
   *   await handle.release();
   * }
   * ```
   */
  acquire(resource: string, options: AcquireOptions = {}): Promise<LockHandle<number>> {
    if (!TRACE_ACQUIRE.active) return this.#acquire(resource, options);
    return TRACE_ACQUIRE.trace(() => this.#acquire(resource, options), {
      lock: "spin",
      resource,
      wait: true,
    });
  }

  async #acquire(resource: string, options: AcquireOptions = {}): Promise<LockHandle<number>> {
    validateOptions("options", options, { known: ACQUIRE_OPTIONS });
    const { signal } = options;
    validateSignal(signal);
    signal?.throwIfAborted();
    const keys = this.keys(resource);
    const started = Date.now();
    // The fast path registers nothing: a release that lands while this attempt is in flight shows up as a
    // changed release count instead, and sends the waiter straight into a second attempt.
    const releases = this.wakeups.releases;
    const first = await this.attemptOnce(resource, keys, 0, signal, started);
    if (first instanceof SpinLockHandle) return first;
    if (this.acquireTimeoutMs === 0) throw timeout(resource, started, first);
    return this.wait(resource, keys, started, first, releases !== this.wakeups.releases, signal);
  }

  /** The slow path of `acquire`: pause, attempt, until the lock is ours or the deadline passes. */
  private async wait(
    resource: string,
    keys: SpinLockKeys,
    started: number,
    first: number | LockNotReplicatedError,
    releasedMeanwhile: boolean,
    signal: AbortSignal | undefined,
  ): Promise<LockHandle<number>> {
    const deadline = started + this.acquireTimeoutMs;
    const subscription = this.wakeups.subscribe(keys.channel);
    // The last attempt's outcome: the holder's remaining TTL, or a grant too few replicas confirmed.
    let last = first;
    let again = releasedMeanwhile;
    // Registered across pauses and attempts alike, so a release that lands while an attempt is in flight
    // still reaches this waiter; it keeps its place in the queue until a release wakes it.
    let waiter = this.wakeups.waiter(keys.channel);
    try {
      for (;;) {
        if (!again) {
          const left = deadline - Date.now();
          if (left <= 0) throw timeout(resource, started, last);
          const wakes: Promise<unknown>[] = [waiter.woken];
          // Once subscribed, attempt again at once, with the flag set: no release can be missed after that.
          if (subscription?.pending) wakes.push(subscription.settled);
          const untilExpiry = typeof last === "number" && last > 0 ? last + 1 : Infinity;
          await pause(Math.min(left, jittered(this.retryDelayMs), untilExpiry), signal, wakes);
        }
        again = false;
        // A woken waiter has left the queue: register again before the attempt goes out.
        if (waiter.fired) waiter = this.wakeups.waiter(keys.channel);
        const flag = subscription?.ready ? this.waitFlagMs : 0;
        const got = await this.attemptOnce(resource, keys, flag, signal, started, last);
        if (got instanceof SpinLockHandle) return got;
        last = got;
        if (Date.now() >= deadline) throw timeout(resource, started, last);
        // Woken while the attempt was in flight: the script may have run just before that release, and the
        // wake-up is spent (no other waiter here got it), so attempt again at once instead of pausing.
        again = waiter.fired;
      }
    } catch (err) {
      // Woken, but leaving (abort, timeout) without an attempt after it: pass the wake-up on to the next
      // waiter in this process, which would otherwise sleep through that release.
      waiter.cancel();
      if (waiter.fired) this.wakeups.wake(keys.channel);
      throw err;
    } finally {
      waiter.cancel();
      subscription?.leave();
    }
  }

  /**
   * One attempt that a signal, or the acquire deadline (a server that does not answer), can abandon; a lock
   * it acquires after the caller left is released.
   */
  private attemptOnce(
    resource: string,
    keys: SpinLockKeys,
    waitFlagMs: number,
    signal: AbortSignal | undefined,
    started: number,
    last?: number | LockNotReplicatedError,
  ): Promise<Attempt> {
    const orphan = (late: Attempt): void => {
      if (late instanceof SpinLockHandle) late.release().catch(() => {});
    };
    let work = this.attempt(resource, keys, waitFlagMs);
    // acquireTimeoutMs 0 is "one attempt": it waits for its answer (bounded by the client's commandTimeout).
    if (this.acquireTimeoutMs > 0) {
      work = withDeadline(
        work,
        started + this.acquireTimeoutMs - Date.now(),
        () => timeout(resource, started, last ?? 0),
        orphan,
      );
    }
    return signal === undefined ? work : abortable(work, signal, orphan);
  }

  /**
   * Runs `routine` under the lock: acquires (waiting as `acquire` does), extends the lock whenever a third
   * of its TTL (at least 100 ms, for short TTLs) is left for as long as the routine runs (up to
   * `maxHoldMs`), aborts the routine's `signal`
   * with a {@link LockLostError} when an extension finds another owner or the lock expires unextended, and
   * releases in `finally` after any extension in flight. Resolves with the routine's result.
   *
   * @example
   * ```ts
   * const total = await lock.using("settle:2026-06-18", async (signal, handle) => {
   *   let sum = 0;
   *   for (const batch of batches) {
   *     signal.throwIfAborted();
   *     sum += await settle(batch, handle.fence);
   *   }
   *   return sum;
   * }, { maxHoldMs: 60_000 });
   * ```
   */
  using<T>(resource: string, routine: LockedRoutine<T, number>, options?: UsingOptions): Promise<T> {
    return using(this, resource, routine, options);
  }

  /**
   * One acquire script: the handle, the holder's remaining TTL (-1: no expiry, -2: gone meanwhile), or (with
   * `replicated`) a grant too few replicas confirmed, already being released.
   */
  private async attempt(resource: string, keys: SpinLockKeys, waitFlagMs: number): Promise<Attempt> {
    const token = randomUUID();
    const sentAt = Date.now();
    const item = { keys, token, ttlMs: this.ttlMs, waitFlagMs };
    const slot = slotOf(this.acquirer, keys.lock);
    const replication = this.replication;
    let reply: number;
    let acked = Infinity;
    try {
      if (replication === undefined) reply = await batchersOf(this.redis).acquire.submit(slot, item);
      else
        ({ reply, acked } = await replicatedAcquireOf(
          this.acquirer,
          replication.replicas,
          replication.timeoutMs,
        ).submit(slot, item));
    } catch (err) {
      // No answer (a timeout, a dropped connection): the script may still run, or have run, and leave a lock
      // that nobody holds until its TTL. Only this attempt knows the token, so it removes that lock itself.
      if (err instanceof RedisUnavailableError) this.cleanUp(keys, token);
      throw err;
    }
    if (reply === 0) {
      throw new RedisCommandError(
        `lock/acquire: the fence counter ${keys.fence} is not a count that can be raised exactly (a non-negative integer below 2^53 - 1)`,
      );
    }
    if (reply < 0) return -reply - 2;
    if (replication !== undefined && acked < replication.replicas) {
      this.cleanUp(keys, token);
      return new LockNotReplicatedError(resource, replication.replicas, acked);
    }
    return new SpinLockHandle(
      this.redis,
      keys,
      resource,
      token,
      reply,
      sentAt + this.ttlMs,
      this.ttlMs,
      this.wakeups,
    );
  }

  /**
   * Removes the lock `token` may hold (compare-and-delete), in the background. Sent on the connection the
   * acquire went out on, so Redis runs it after that acquire even when the acquire is still queued (a paused
   * or stalled server answers both in order). A release that gets no answer either is sent again, with a
   * growing pause, for up to the lock's TTL (after which the lock is gone anyway), and not once the client is
   * closed. Timers are unref'd: they never keep a process alive.
   */
  private cleanUp(keys: SpinLockKeys, token: string): void {
    const conn = this.acquirer;
    const until = Date.now() + this.ttlMs;
    let delayMs = 50;
    const once = (): void => {
      batchersOf(conn)
        .release.submit(slotOf(conn, keys.lock), { keys, token })
        .then(
          (released) => {
            if (released === 1) this.wakeups.wake(keys.channel);
          },
          (err: unknown) => {
            if (!(err instanceof RedisUnavailableError) || conn.status === "end") return;
            if (Date.now() + delayMs > until) return;
            setTimeout(once, delayMs).unref();
            delayMs = Math.min(delayMs * 2, 1_000);
          },
        );
    };
    once();
  }
}

/** What one attempt yields: the handle, the holder's remaining TTL, or an unconfirmed grant. */
type Attempt = SpinLockHandle | number | LockNotReplicatedError;

/** The LockTimeoutError of a wait whose last attempt ended in `last` (its cause when replicas fell short). */
function timeout(resource: string, started: number, last: number | LockNotReplicatedError): LockTimeoutError {
  return new LockTimeoutError(
    resource,
    Date.now() - started,
    last instanceof LockNotReplicatedError ? { cause: last } : undefined,
  );
}
