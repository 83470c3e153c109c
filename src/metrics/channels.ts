// The diagnostics channels every module publishes (`node:diagnostics_channel`): their names and payloads.
// Publishing costs one `hasSubscribers` check when nobody listens.
import type { LockHandle } from "../lock/index.js";
import type { ProcessOutcome, RelayRound } from "../outbox/index.js";
import type { AdmitResult } from "../gate/index.js";
import type { RateLimitsResult, TakeResult } from "../ratelimit/index.js";
import type { ConfirmResult, ReleaseResult, ReserveResult } from "../stock/index.js";

/**
 * The names of the library's tracing channels, one per async operation. Each is a
 * `diagnostics_channel.tracingChannel(name)`: subscribe to its `start`, `end`, `asyncStart`, `asyncEnd` and
 * `error` events (the channel `tracing:<name>:<event>`). The payload of every event is the operation's
 * context object (see {@link TracePayloads}); Node sets its `result` (on `asyncEnd`) or `error` (on `error`).
 * An outcome returned as data (sold out, rate limited) is a `result`, never an `error`.
 *
 * @example
 * ```ts
 * import { tracingChannel } from "node:diagnostics_channel";
 * import { channels, type ReserveTrace } from "flash-sale-kit/metrics";
 *
 * tracingChannel<unknown, ReserveTrace>(channels.reserve).subscribe({
 *   start() {},
 *   end() {},
 *   asyncStart() {},
 *   asyncEnd(ctx) {
 *     if (ctx.result?.ok === false) console.log("refused", ctx.sku, ctx.result.reason);
 *   },
 *   error(ctx) {
 *     console.error("reserve failed", ctx.sku, ctx.error);
 *   },
 * });
 * ```
 */
export const channels = {
  /** `Inventory.reserve` and `PostgresInventory.reserve`: {@link ReserveTrace}. */
  reserve: "flash-sale-kit:stock.reserve",
  /** `Inventory.confirm` and `PostgresInventory.confirm`: {@link ConfirmTrace}. */
  confirm: "flash-sale-kit:stock.confirm",
  /** `Inventory.release` and `PostgresInventory.release`: {@link ReleaseTrace}. */
  release: "flash-sale-kit:stock.release",
  /** `SpinLock.acquire`/`tryAcquire` and `QuorumLock.acquire`: {@link AcquireTrace}; its duration is the lock wait. */
  acquire: "flash-sale-kit:lock.acquire",
  /** `TokenBucket.take`: {@link TakeTrace}. */
  take: "flash-sale-kit:ratelimit.take",
  /** `RateLimits.check`: {@link CheckTrace}. */
  check: "flash-sale-kit:ratelimit.check",
  /** `SaleGate.admit`: {@link AdmitTrace}. */
  admit: "flash-sale-kit:gate.admit",
  /** One message handed to the broker by an `OutboxRelay`: {@link PublishTrace}. */
  publish: "flash-sale-kit:outbox.publish",
  /** `PostgresInbox.processOnce`: {@link ProcessTrace}. */
  process: "flash-sale-kit:outbox.process",
} as const;

/**
 * The names of the library's plain channels (`diagnostics_channel.channel(name)`), for facts that are not
 * operations of their own.
 *
 * @example
 * ```ts
 * import { subscribe } from "node:diagnostics_channel";
 * import { events, type CacheLookupEvent } from "flash-sale-kit/metrics";
 *
 * subscribe(events.cacheLookup, (message) => {
 *   const e = message as CacheLookupEvent;
 *   if (e.outcome === "miss") console.log("cache miss", e.cache, e.id);
 * });
 * ```
 */
export const events = {
  /** Each `ReadThroughCache.get`: {@link CacheLookupEvent}. */
  cacheLookup: "flash-sale-kit:cache.lookup",
  /** Each round of an `OutboxRelay`: {@link RelayRoundEvent}. */
  relayRound: "flash-sale-kit:outbox.relay-round",
} as const;

/** What every traced operation's payload carries once it ends. */
export interface TraceOutcome<R> {
  /**
   * `performance.now()` when the operation started, set by the library before `start`: a subscriber can time
   * the call from `asyncEnd` alone (`performance.now() - startedAt`, in milliseconds).
   */
  readonly startedAt?: number;
  /** The operation's result, set by Node before `asyncEnd`. */
  result?: R;
  /** The thrown error, set by Node before `error`. */
  error?: unknown;
}

/** The payload of {@link channels}.reserve. */
export interface ReserveTrace extends TraceOutcome<ReserveResult> {
  /** `"redis"` for `Inventory`, `"postgresql"` for `PostgresInventory`. */
  readonly store: "redis" | "postgresql";
  readonly sku: string;
  readonly userId: string;
  readonly quantity: number;
  /** The caller's idempotency key, when it gave one. */
  readonly reservationId: string | undefined;
}

/** The payload of {@link channels}.confirm. */
export interface ConfirmTrace extends TraceOutcome<ConfirmResult> {
  readonly store: "redis" | "postgresql";
  readonly sku: string;
  readonly reservationId: string;
}

/** The payload of {@link channels}.release. */
export interface ReleaseTrace extends TraceOutcome<ReleaseResult> {
  readonly store: "redis" | "postgresql";
  readonly sku: string;
  readonly reservationId: string;
}

/** The payload of {@link channels}.acquire. `result` is the handle, or `null` when a `tryAcquire` found it held. */
export interface AcquireTrace extends TraceOutcome<LockHandle<number | undefined> | null> {
  readonly lock: "spin" | "quorum";
  readonly resource: string;
  /** `false` for `tryAcquire` (one attempt). */
  readonly wait: boolean;
}

/** The payload of {@link channels}.take. */
export interface TakeTrace extends TraceOutcome<TakeResult> {
  /** The bucket's name (its key prefix). */
  readonly bucket: string;
  readonly key: string;
  readonly cost: number;
}

/** The payload of {@link channels}.check. */
export interface CheckTrace extends TraceOutcome<RateLimitsResult> {
  /** The names of the limits checked, in order. */
  readonly limits: readonly string[];
}

/** The payload of {@link channels}.admit. */
export interface AdmitTrace extends TraceOutcome<AdmitResult> {
  /** The gate's name (its key prefix). */
  readonly gate: string;
}

/** The payload of {@link channels}.publish: one message handed to the broker. */
export interface PublishTrace extends TraceOutcome<void> {
  readonly messageId: string;
  readonly topic: string;
  /** The attempt number, from 1. */
  readonly attempt: number;
}

/** The payload of {@link channels}.process. */
export interface ProcessTrace extends TraceOutcome<ProcessOutcome> {
  readonly consumer: string;
  readonly messageId: string;
}

/** The message of {@link events}.cacheLookup. */
export interface CacheLookupEvent {
  /** The cache's name (its key prefix). */
  readonly cache: string;
  readonly id: string;
  /**
   * `l1`: answered in process; `hit`: from Redis; `stale`: from Redis, past its stale time (a refresh
   * follows); `miss`: not cached (the loader runs); `rejected`: refused by the Bloom filter.
   */
  readonly outcome: "l1" | "hit" | "stale" | "miss" | "rejected";
}

/** The message of {@link events}.relayRound. */
export interface RelayRoundEvent extends RelayRound {
  /** Age in ms (database clock) of the oldest message still due, `0` when none; the relay's lag. */
  readonly lagMs: number;
  /** Messages still waiting to be sent (pending or scheduled for a retry). */
  readonly pending: number;
  /** Messages dead (attempts used up), all time. */
  readonly deadTotal: number;
}
