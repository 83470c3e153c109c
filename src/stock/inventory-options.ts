// The options of `new Inventory()`, with what each one guarantees.
import type { RedisClient } from "../internal/scripts.js";
import type { ReplicatedOptions } from "./replication.js";

export type { ReplicatedOptions } from "./replication.js";

/** Options of `new Inventory()`. */
export interface InventoryOptions {
  /**
   * First part of every key's hash tag: `{<prefix>:<sku>}:…`.
   * @default "fsk"
   */
  readonly prefix?: string;
  /**
   * Trim each SKU's event stream to about this many entries (`XADD MAXLEN ~`). Omitted: never trimmed, so a
   * consumer that falls behind loses nothing; trim it once the order pipeline has read it.
   */
  readonly eventsMaxLen?: number;
  /**
   * Answer `reserve` in process, with no round trip, when Redis's answer is already known: `SOLD_OUT` once
   * Redis has said a SKU has no unit left, and `NOT_STARTED` / `ENDED` when the call is clearly before the
   * SKU's `startsAt` or at/after its `endsAt` on a Redis-synced clock (never the application's clock; a call
   * within the clock's error bound of a boundary asks Redis). A call with its own `reservationId` is answered
   * in process only when no reservation of the SKU has that id (the ids are read from Redis once the SKU is
   * sold out or over, at most `localMaxIds` of them); a retry of a reservation made in any process still
   * gets its replay from Redis.
   *
   * With a `subscriber`, what is known stands until a change message (release or expired hold of a sold-out
   * SKU, any `setStock`) and only while the subscriber is subscribed; without one, for `localCacheMs` after
   * the reply it came from. `0` turns in-process answers off.
   * @default 1000
   */
  readonly localCacheMs?: number;
  /**
   * The most reservation ids held in process for one SKU. A sold-out SKU with more reservations than this
   * answers only calls without a `reservationId` in process.
   * @default 100000
   */
  readonly localMaxIds?: number;
  /**
   * A connection this Inventory may put in subscriber mode to hear changes (`<prefix>:restock`), e.g.
   * `redis.duplicate()`. In-process answers then hold until a change and only while it is subscribed; all are
   * dropped when its connection drops (a change published meanwhile would be missed). Omitted: they time out
   * after `localCacheMs`.
   */
  readonly subscriber?: RedisClient;
  /**
   * Let `reserve` calls for one SKU that arrive in the same tick share one script call (up to 32 at a time),
   * each still applied atomically and in order with its own result. Saves most of the per-call cost of
   * EVALSHA under a crowd; adds no waiting (the batch leaves at the end of the current tick).
   * @default true
   */
  readonly batch?: boolean;
  /**
   * Replicated acknowledgement: `reserve`, `confirm` and `release` answer that a write stands only once
   * `WAIT <replicas> <timeoutMs>` says that many replicas have it, so a failover to one of them cannot lose
   * it. One `WAIT` per batch at most (calls that finish while one is out share the next), on a connection of
   * the Inventory's own (`redis.duplicate()`, closed by `close()`), so a blocked `WAIT` never holds up other
   * commands. Refusals answer at once (they wrote nothing). Too few replicas in time: `IN_DOUBT` (after
   * retries, within `settleMs`). `setStock` waits too and throws `RedisUnavailableError` on a short count.
   * `expireHolds` does not wait: a release lost in a failover is simply expired again.
   *
   * Sentinel promotes the most up-to-date replica it knows of; `replicas` equal to the number of replicas
   * makes every acknowledged write survive any single promotion, but stops acknowledgements (all
   * `IN_DOUBT`) while a replica is missing.
   */
  readonly replicated?: ReplicatedOptions;
  /**
   * How long (ms) `reserve`, `confirm` and `release` may spend settling a call whose outcome is in doubt (a
   * lost reply: command timeout, dropped connection, failover; or a short replica count): the same call is
   * repeated with the same reservation id, with p-retry's backoff (10 ms doubling to 500 ms, randomised),
   * until it gets an answer that stands; when time runs out the answer is `IN_DOUBT`, never an error. A
   * `reserve` without a `reservationId` is settled with the id generated for it (returned in every answer).
   * Failures known to have changed nothing (READONLY, LOADING… during a failover) are retried too, and
   * thrown when time runs out. `0`: no retry; a lost reply throws `RedisUnavailableError` (whether it ran is
   * unknown) and a short replica count answers `IN_DOUBT` at once. Set it to what the caller can wait: a
   * Sentinel failover takes `down-after-milliseconds` plus about a second.
   * @default 0
   */
  readonly settleMs?: number;
}
