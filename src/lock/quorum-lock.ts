// QuorumLock: Redlock over several independent Redis nodes, through the `redlock` package, with the same
// acquire / tryAcquire / using and handle as SpinLock (minus fencing: independent nodes share no counter).
import Redlock, { ExecutionError, ResourceLockedError, type Lock, type RedlockClientShape } from "redlock";
import { InvalidArgumentError, RedisUnavailableError } from "../errors.js";
import { entityKeys, resolvePrefix } from "../internal/keys.js";
import { toRedisError, type RedisClient } from "../internal/scripts.js";
import { validateInt, validateOptionalInt, validateOptions } from "../internal/validate.js";
import { LockTimeoutError } from "./errors.js";
import { lockTimings, MAX_LOCK_MS, TIMING_OPTIONS } from "./timings.js";
import type { AcquireOptions, LockHandle, LockedRoutine, Locker, UsingOptions } from "./types.js";
import { ACQUIRE_OPTIONS, using } from "./using.js";
import { abortable, jittered, pause, validateSignal } from "./wait.js";
import { traced } from "../internal/trace.js";
import { channels, type AcquireTrace } from "../metrics/channels.js";

const TRACE_ACQUIRE = traced<AcquireTrace>(channels.acquire);

/** Options of `new QuorumLock()`. All durations are integer milliseconds. */
export interface QuorumLockOptions {
  /**
   * First part of every key's hash tag: `{<prefix>:<resource>}:lock` on each node.
   * @default "fsk"
   */
  readonly prefix?: string;
  /**
   * How long a lock lives on each node unless extended.
   * @default 10_000
   */
  readonly ttlMs?: number;
  /**
   * Mean pause between attempts while waiting, jittered to 0.5–1.5 times this.
   * @default 50
   */
  readonly retryDelayMs?: number;
  /**
   * How long `acquire` keeps attempting before throwing {@link LockTimeoutError}; 0 makes it one attempt.
   * @default 10_000
   */
  readonly acquireTimeoutMs?: number;
  /**
   * How long one node may take to answer one command before it counts as a vote against. Redlock needs it
   * small next to `ttlMs` so a dead node cannot eat the lock's validity; it also bounds each attempt, so a
   * majority of dead nodes fails within the retry budget rather than hanging in a client's offline queue.
   * @default 200
   */
  readonly requestTimeoutMs?: number;
  /**
   * Share of the TTL assumed lost to clock drift between nodes; `expiresAt` is shortened by it (plus 2 ms).
   * @default 0.01
   */
  readonly driftFactor?: number;
}

/** The key of one resource's lock; it has the same name on every node. */
export interface QuorumLockKeys {
  /** String: the owner's token, with the lock's TTL (on each node that granted it). */
  readonly lock: string;
}

/** Each node wrapped so that a command unanswered after `ms` rejects (the node votes against). */
function withDeadline(client: RedisClient, ms: number): RedlockClientShape {
  const timed = (run: () => Promise<unknown>) =>
    new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`node did not answer within ${ms} ms`)), ms);
      timer.unref();
      run().then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  return {
    evalsha: (sha, numberOfKeys, args) => timed(() => client.evalsha(sha, numberOfKeys, ...args)),
    eval: (script, numberOfKeys, args) => timed(() => client.eval(script, numberOfKeys, ...args)),
    // Redlock#quit is never called: the clients are the user's.
    quit: async () => undefined,
  };
}

/**
 * Why a quorum was not reached: `null` when a majority of nodes holds another owner's value (or no longer
 * holds ours), otherwise a RedisUnavailableError carrying the nodes' errors: a single node without the key
 * (restarted, or down at acquire time) next to a node that did not answer decides nothing.
 */
async function refusal(err: ExecutionError): Promise<RedisUnavailableError | null> {
  const last = err.attempts.at(-1);
  if (last === undefined) return null;
  const stats = await last; // settles once every node has voted: bounded by requestTimeoutMs
  const errors = [...stats.votesAgainst.values()];
  const refusals = errors.filter((e) => e instanceof ResourceLockedError).length;
  if (refusals >= stats.quorumSize) return null;
  return new RedisUnavailableError(
    `only ${stats.votesFor.size} of ${stats.membershipSize} nodes agreed (quorum ${stats.quorumSize})`,
    { cause: new AggregateError(errors, errors.map((e) => e.message).join("; ")) },
  );
}

class QuorumLockHandle implements LockHandle<undefined> {
  readonly fence = undefined;
  private released = false;

  constructor(
    private readonly redlock: Redlock,
    private lock: Lock,
    readonly resource: string,
    private readonly ttlMs: number,
  ) {}

  get token(): string {
    return this.lock.value;
  }

  get expiresAt(): number {
    return this.released ? 0 : this.lock.expiration;
  }

  async extend(ttlMs: number = this.ttlMs): Promise<boolean> {
    validateInt("ttlMs", ttlMs, { min: 1, max: MAX_LOCK_MS });
    if (this.released) return false;
    try {
      this.lock = await this.redlock.extend(this.lock, ttlMs);
      return true;
    } catch (err) {
      if (!(err instanceof ExecutionError)) throw toRedisError(err);
      const unavailable = await refusal(err);
      if (unavailable !== null) throw unavailable;
      return false;
    }
  }

  async release(): Promise<boolean> {
    if (this.released) return false;
    try {
      await this.redlock.release(this.lock);
      this.released = true;
      return true;
    } catch (err) {
      if (!(err instanceof ExecutionError)) throw toRedisError(err);
      const unavailable = await refusal(err);
      if (unavailable !== null) throw unavailable;
      this.released = true;
      return false;
    }
  }
}

/**
 * Redlock over independent Redis nodes (3 or 5 masters that do not replicate each other), through the
 * `redlock` package: a lock is held when a majority of nodes stored it within its validity, so it survives
 * the loss of a minority of nodes. Same `acquire` / `tryAcquire` / `using` and handle as {@link SpinLock};
 * `handle.fence` is `undefined`, because independent nodes share no counter to draw fences from.
 *
 * Redlock rests on timing assumptions (bounded pauses and clock drift), and without fences a paused holder
 * can still write after losing its lock. Use it where one Redis going down must not stop the locking; for
 * correctness with a database in the loop, prefer SpinLock's fence checked by the database.
 *
 * @example
 * ```ts
 * import { Redis } from "ioredis";
 * import { QuorumLock } from "flash-sale-kit/lock";
 *
 * const nodes = ["redis-a", "redis-b", "redis-c"].map((host) => new Redis({ host }));
 * const lock = new QuorumLock(nodes, { ttlMs: 5_000 });
 * await lock.using("nightly-report", async (signal) => {
 *   for (const shop of shops) {
 *     signal.throwIfAborted();
 *     await buildReport(shop);
 *   }
 * });
 * ```
 */
export class QuorumLock implements Locker<undefined> {
  /** The TTL of a lock and of each extension, in ms. */
  readonly ttlMs: number;
  /** The mean pause between attempts, in ms. */
  readonly retryDelayMs: number;
  /** How long `acquire` keeps attempting, in ms. */
  readonly acquireTimeoutMs: number;
  private readonly prefix: string;
  private readonly redlock: Redlock;

  constructor(clients: readonly RedisClient[], options: QuorumLockOptions = {}) {
    validateOptions("options", options, {
      known: [...TIMING_OPTIONS, "requestTimeoutMs", "driftFactor"],
    });
    if (!Array.isArray(clients) || clients.length === 0) {
      throw new InvalidArgumentError("clients", "must be a non-empty array of ioredis clients");
    }
    for (const c of clients) {
      if (c === null || typeof c !== "object" || typeof c.evalsha !== "function") {
        throw new InvalidArgumentError("clients", "must be a non-empty array of ioredis clients");
      }
    }
    if (new Set(clients).size !== clients.length) {
      throw new InvalidArgumentError("clients", "must not list the same client twice");
    }
    // redlock decides a vote once "for" or "against" reaches the majority: with an even count a tie (one
    // node down, or held by another owner) never decides, and every call would hang.
    if (clients.length % 2 === 0) {
      throw new InvalidArgumentError("clients", "must be an odd number of independent nodes (1, 3, 5…)");
    }
    this.prefix = resolvePrefix(options.prefix);
    ({
      ttlMs: this.ttlMs,
      retryDelayMs: this.retryDelayMs,
      acquireTimeoutMs: this.acquireTimeoutMs,
    } = lockTimings(options));
    validateOptionalInt("requestTimeoutMs", options.requestTimeoutMs, { min: 1, max: this.ttlMs - 1 });
    const drift = options.driftFactor ?? 0.01;
    if (typeof drift !== "number" || !(drift >= 0 && drift < 0.5)) {
      throw new InvalidArgumentError("driftFactor", "must be a number in [0, 0.5)");
    }
    const requestTimeoutMs = options.requestTimeoutMs ?? Math.min(200, Math.max(1, this.ttlMs - 1));
    this.redlock = new Redlock(
      clients.map((c) => withDeadline(c, requestTimeoutMs)),
      // One attempt per call: the waiting (with jitter, a deadline and an AbortSignal) is ours.
      { retryCount: 0, retryDelay: this.retryDelayMs, retryJitter: 0, driftFactor: drift },
    );
  }

  /**
   * The key of a resource's lock, the same on every node: useful to inspect a lock.
   *
   * @example
   * ```ts
   * await Promise.all(nodes.map((n) => n.pttl(lock.keys("nightly-report").lock))); // -2 where it is free
   * ```
   */
  keys(resource: string): QuorumLockKeys {
    return { lock: entityKeys(this.prefix, resource, "resource").key("lock") };
  }

  /**
   * One attempt on every node: the handle, or `null` when another owner holds a majority. Throws
   * `RedisUnavailableError` when too few nodes answered to decide.
   *
   * @example
   * ```ts
   * const handle = await lock.tryAcquire("nightly-report");
   * if (handle === null) return; // another instance runs it
   * ```
   */
  tryAcquire(resource: string): Promise<LockHandle<undefined> | null> {
    if (!TRACE_ACQUIRE.active) return this.#tryAcquire(resource);
    return TRACE_ACQUIRE.trace(() => this.#tryAcquire(resource), { lock: "quorum", resource, wait: false });
  }

  async #tryAcquire(resource: string): Promise<LockHandle<undefined> | null> {
    const { handle, unavailable } = await this.attempt(resource, this.keys(resource).lock);
    if (unavailable !== null) throw unavailable;
    return handle;
  }

  /**
   * Attempts until a majority of nodes grants the lock, pausing a jittered `retryDelayMs` in between, or
   * throws {@link LockTimeoutError} after `acquireTimeoutMs` (its `cause` is a `RedisUnavailableError` when
   * the last attempt failed for want of live nodes). `signal` cancels the wait at once.
   *
   * @example
   * ```ts
   * const handle = await lock.acquire("nightly-report", { signal: AbortSignal.timeout(30_000) });
   * try { await buildReports(); } finally { await handle.release(); }
   * ```
   */
  acquire(resource: string, options: AcquireOptions = {}): Promise<LockHandle<undefined>> {
    if (!TRACE_ACQUIRE.active) return this.#acquire(resource, options);
    return TRACE_ACQUIRE.trace(() => this.#acquire(resource, options), {
      lock: "quorum",
      resource,
      wait: true,
    });
  }

  async #acquire(resource: string, options: AcquireOptions = {}): Promise<LockHandle<undefined>> {
    validateOptions("options", options, { known: ACQUIRE_OPTIONS });
    const { signal } = options;
    validateSignal(signal);
    signal?.throwIfAborted();
    const key = this.keys(resource).lock;
    const started = Date.now();
    const deadline = started + this.acquireTimeoutMs;
    for (;;) {
      const { handle, unavailable } = await abortable(this.attempt(resource, key), signal, (late) => {
        late.handle?.release().catch(() => {});
      });
      if (handle !== null) return handle;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new LockTimeoutError(resource, Date.now() - started, unavailable ? { cause: unavailable } : {});
      }
      await pause(Math.min(left, jittered(this.retryDelayMs)), signal);
    }
  }

  /**
   * Runs `routine` under the lock with the same guarantees as {@link SpinLock.using}: auto-extension when a
   * third of the TTL (at least 100 ms) is left, the signal aborted with a `LockLostError` when a majority can no longer be
   * extended, release in `finally`.
   *
   * @example
   * ```ts
   * await lock.using("nightly-report", async (signal) => build(signal), { maxHoldMs: 600_000 });
   * ```
   */
  using<T>(resource: string, routine: LockedRoutine<T, undefined>, options?: UsingOptions): Promise<T> {
    return using(this, resource, routine, options);
  }

  private async attempt(
    resource: string,
    key: string,
  ): Promise<{ handle: QuorumLockHandle | null; unavailable: RedisUnavailableError | null }> {
    let lock: Lock;
    try {
      lock = await this.redlock.acquire([key], this.ttlMs);
    } catch (err) {
      if (!(err instanceof ExecutionError)) throw toRedisError(err);
      return { handle: null, unavailable: await refusal(err) };
    }
    const handle = new QuorumLockHandle(this.redlock, lock, resource, this.ttlMs);
    if (lock.expiration <= Date.now()) {
      // The votes took longer than the TTL: the lock is not valid anywhere it matters.
      await handle.release().catch(() => {});
      return { handle: null, unavailable: null };
    }
    return { handle, unavailable: null };
  }
}
