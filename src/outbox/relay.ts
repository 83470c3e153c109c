// OutboxRelay: delivers outbox rows at least once. Claims due rows with FOR UPDATE SKIP LOCKED (so several
// relays share the work), publishes, marks sent; failures are retried on the database clock, then dead.
import { randomUUID } from "node:crypto";
import { InvalidArgumentError } from "../errors.js";
import { optionKeys, validateInt, validateOptionalInt, validateOptions } from "../internal/validate.js";
import { PollingLoop } from "../internal/loop.js";
import { resolveBackoff, retryDelayMs, type RelayBackoffOptions } from "./backoff.js";
import type { OutboxRecord, PostgresOutbox } from "./postgres-outbox.js";
import { checkListenClient, listen, type ListenClient } from "./listen.js";
import { errorText, validateTopic, type OutboxMessage } from "./types.js";
import { backlog } from "./backlog.js";
import { published, traced } from "../internal/trace.js";
import { channels, events, type PublishTrace, type RelayRoundEvent } from "../metrics/channels.js";

const PUBLISH = traced<PublishTrace>(channels.publish);
const ROUND = published<RelayRoundEvent>(events.relayRound);

/** What a relay passes to `publish` besides the message. */
export interface PublishContext {
  /** Aborted when the attempt has run out of `publishTimeoutMs` (the relay no longer waits for it). */
  readonly signal: AbortSignal;
}

/** Options of `new OutboxRelay()`. */
export interface OutboxRelayOptions {
  /**
   * Delivers one message; resolves once the transport has it (a publisher confirm, an XADD reply, a handler's
   * commit). Throwing (or rejecting) fails the attempt. It may run more than once for one message: a relay
   * that dies after publishing and before marking the message sent leaves it to be published again, so
   * consumers deduplicate on `message.id` (see {@link PostgresInbox}). A publish that has not settled after
   * `publishTimeoutMs` fails its attempt, and `signal` is aborted so that the transport can give up too.
   */
  readonly publish: (message: OutboxMessage, context: PublishContext) => Promise<unknown>;
  /**
   * How long one publish may take before its attempt counts as failed (a hung broker connection must not
   * stall the round, its other messages and `stop()` for good). Below `leaseMs`: a round starts a publish
   * only while it can end before the claim's lease does, and leaves the rest of its batch unattempted (due
   * at once, no attempt counted) for the next round, so a round never outlasts its lease.
   * @default leaseMs / 2
   */
  readonly publishTimeoutMs?: number;
  /**
   * Messages claimed per round.
   * @default 100
   */
  readonly batchSize?: number;
  /**
   * Messages of one batch published at the same time. Above 1, messages with the same `key` are still
   * published one after another in their order; others in any order.
   * @default 1
   */
  readonly concurrency?: number;
  /**
   * Pause after a round that found less than a full batch.
   * @default 1000
   */
  readonly pollIntervalMs?: number;
  /**
   * Attempts per message; a message whose last attempt fails is marked dead with its error.
   * @default 10
   */
  readonly maxAttempts?: number;
  /**
   * Delay before a retry, as p-retry computes it ({@link RelayBackoffOptions}), or a function of the number of
   * failed attempts returning ms. The retry is stored as `now() + delay` on the database's clock.
   * @default { factor: 2, minTimeoutMs: 1000, maxTimeoutMs: 300000, randomize: true }
   */
  readonly backoff?: RelayBackoffOptions | ((failedAttempts: number) => number);
  /**
   * How long a claimed message stays reserved for this relay. A relay that stops mid-round (crash, kill) loses
   * its messages to the other relays after this; keep it well above the time a batch takes to publish.
   * @default 30000
   */
  readonly leaseMs?: number;
  /**
   * Consumer-acknowledged mode. A message the transport accepted is `sent`, and stays so until a consumer's
   * inbox transaction marks it `processed` ({@link PostgresInbox} built with `{ outbox }`, or
   * {@link PostgresOutbox.acknowledge}); one still unprocessed this long after it was sent is published
   * again, as a new attempt (so `maxAttempts` and the dead state apply). A message lost after the broker
   * accepted it (a broker failover, a trimmed stream, a purged queue) is then delivered again, and the
   * inbox applies it once. Keep it above the time a consumer takes to process a message, or messages are
   * published again for nothing (harmless: the inbox answers `duplicate`). Use it only for topics whose
   * consumers acknowledge: any other message would be re-sent until it is dead. Omitted: off (a sent
   * message is done).
   */
  readonly ackTimeoutMs?: number;
  /** Deliver only these topics (several relays can split the topics between them). Omitted: all. */
  readonly topics?: readonly string[];
  /** While started, delete sent messages older than this (ms, database time). Omitted: keep them. */
  readonly retentionMs?: number;
  /**
   * How often the started relay runs that cleanup.
   * @default 60000
   */
  readonly cleanupIntervalMs?: number;
  /**
   * A dedicated connection (`pg.Client`, or PGlite) to LISTEN on the outbox's channel: a relay then wakes up
   * as soon as a message is committed (with `new PostgresOutbox(db, { notify: true })`) instead of at its
   * next poll. Polling continues as a fallback.
   */
  readonly listen?: ListenClient;
  /** Errors of background rounds (database down…); the relay keeps going. */
  readonly onError?: (err: unknown) => void;
}

const KNOWN = optionKeys<OutboxRelayOptions>({
  publish: 1,
  publishTimeoutMs: 1,
  batchSize: 1,
  concurrency: 1,
  pollIntervalMs: 1,
  maxAttempts: 1,
  backoff: 1,
  leaseMs: 1,
  ackTimeoutMs: 1,
  topics: 1,
  retentionMs: 1,
  cleanupIntervalMs: 1,
  listen: 1,
  onError: 1,
});

/** What one round did. */
export interface RelayRound {
  /** Messages claimed (including those found with their attempts used up). */
  readonly claimed: number;
  readonly sent: number;
  /** Failed attempts scheduled for a retry. */
  readonly retried: number;
  /** Messages marked dead in this round. */
  readonly dead: number;
  /**
   * Consumer-acknowledged mode: sent messages no consumer acknowledged within `ackTimeoutMs`, put back in
   * line to be published again (by this round, or the next when the batch was full). 0 otherwise.
   */
  readonly resent: number;
}

/**
 * Delivers the messages of a {@link PostgresOutbox} through `publish`, at least once. Each round claims due
 * rows with `FOR UPDATE SKIP LOCKED` and leases them, so any number of relays (in any number of processes)
 * can run side by side; publishes them in order; marks them sent. A failed attempt is retried after a
 * backoff counted from the database's `now()`; after `maxAttempts` the message is marked dead with its last
 * error, and the other messages keep flowing. A relay that dies between publishing and marking sent leaves
 * the message to be published again when its lease runs out: consumers deduplicate on the message id.
 *
 * @example
 * ```ts
 * import { OutboxRelay, PostgresOutbox, RedisStreamPublisher } from "flash-sale-kit/outbox";
 *
 * const publisher = new RedisStreamPublisher(redis);
 * const relay = new OutboxRelay(outbox, {
 *   publish: (m) => publisher.publish(m),
 *   maxAttempts: 8,
 *   backoff: { minTimeoutMs: 500, maxTimeoutMs: 60_000 },
 * });
 * await relay.start();
 * // on shutdown:
 * await relay.stop(); // finishes the round in flight
 * ```
 */
export class OutboxRelay {
  private readonly publish: (message: OutboxMessage, context: PublishContext) => Promise<unknown>;
  private readonly publishTimeoutMs: number;
  private readonly batchSize: number;
  private readonly concurrency: number;
  private readonly pollIntervalMs: number;
  private readonly maxAttempts: number;
  private readonly delay: (failedAttempts: number) => number;
  private readonly leaseMs: number;
  private readonly ackTimeoutMs: number | undefined;
  private readonly topics: readonly string[] | null;
  private readonly retentionMs: number | undefined;
  private readonly cleanupIntervalMs: number;
  private readonly listenClient: ListenClient | undefined;
  private readonly onError: (err: unknown) => void;

  private readonly loop: PollingLoop;
  private lastCleanup = 0;

  constructor(
    /** The outbox this relay delivers. */
    readonly outbox: PostgresOutbox,
    options: OutboxRelayOptions,
  ) {
    validateOptions("options", options, { required: true, known: KNOWN });
    if (outbox === null || typeof outbox !== "object" || typeof outbox.claim !== "function") {
      throw new InvalidArgumentError("outbox", "must be a PostgresOutbox");
    }
    if (typeof options.publish !== "function") {
      throw new InvalidArgumentError("publish", "must be a function (message) => Promise");
    }
    this.publish = options.publish;
    this.batchSize = options.batchSize ?? 100;
    validateInt("batchSize", this.batchSize, { min: 1, max: 10_000 });
    this.concurrency = options.concurrency ?? 1;
    validateInt("concurrency", this.concurrency, { min: 1, max: 1000 });
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    validateInt("pollIntervalMs", this.pollIntervalMs, { min: 1 });
    this.maxAttempts = options.maxAttempts ?? 10;
    validateInt("maxAttempts", this.maxAttempts, { min: 1, max: 1_000_000 });
    this.leaseMs = options.leaseMs ?? 30_000;
    validateInt("leaseMs", this.leaseMs, { min: 1 });
    this.publishTimeoutMs = options.publishTimeoutMs ?? Math.max(1, Math.floor(this.leaseMs / 2));
    // Below the lease: a round starts a publish only while it can end before the lease does.
    validateInt("publishTimeoutMs", this.publishTimeoutMs, { min: 1, max: this.leaseMs - 1 });
    validateOptionalInt("ackTimeoutMs", options.ackTimeoutMs, { min: 1 });
    this.ackTimeoutMs = options.ackTimeoutMs;
    validateOptionalInt("retentionMs", options.retentionMs, { min: 0 });
    this.retentionMs = options.retentionMs;
    this.cleanupIntervalMs = options.cleanupIntervalMs ?? 60_000;
    validateInt("cleanupIntervalMs", this.cleanupIntervalMs, { min: 1 });
    if (options.topics !== undefined) {
      if (!Array.isArray(options.topics) || options.topics.length === 0) {
        throw new InvalidArgumentError("topics", "must be a non-empty array of topics");
      }
      options.topics.forEach((t, i) => validateTopic(`topics[${i}]`, t));
    }
    this.topics = options.topics ? [...options.topics] : null;

    const backoff = options.backoff;
    if (typeof backoff === "function") {
      this.delay = (n) => {
        const ms = backoff(n);
        validateInt("backoff()", ms, { min: 0 });
        return ms;
      };
    } else {
      const resolved = resolveBackoff(backoff);
      this.delay = (n) => retryDelayMs(n, resolved);
    }

    if (options.listen !== undefined) checkListenClient("listen", options.listen);
    this.listenClient = options.listen;
    this.onError = options.onError ?? (() => {});
    const listenClient = this.listenClient;
    this.loop = new PollingLoop({
      round: async () => {
        const r = await this.runOnce();
        await this.cleanup();
        return r.claimed >= this.batchSize;
      },
      intervalMs: this.pollIntervalMs,
      onError: this.onError,
      setup: listenClient && (() => listen(listenClient, this.outbox.channel, this.nudge)),
    });
  }

  /** Whether the background loop is running. */
  get running(): boolean {
    return this.loop.running;
  }

  /**
   * Runs one round: claim up to `batchSize` due messages, publish them in order, mark the published ones
   * sent, and schedule a retry (or death) for the failed ones. Safe to call alongside other relays.
   *
   * @example
   * ```ts
   * const { sent, retried, dead } = await relay.runOnce();
   * ```
   */
  runOnce(): Promise<RelayRound> {
    return this.loop.track(this.round().then((r) => this.reportRound(r)));
  }

  /** Publishes the round (with the backlog, read only while someone listens) on the relay-round channel. */
  private async reportRound(round: RelayRound): Promise<RelayRound> {
    if (!ROUND.active) return round;
    // The round's messages are sent already: a failed backlog query costs the event, not the round.
    let b;
    try {
      b = await backlog(this.outbox);
    } catch (err) {
      this.onError(err);
      return round;
    }
    ROUND.publish(() => ({ ...round, ...b }));
    return round;
  }

  private async round(): Promise<RelayRound> {
    const claimId = randomUUID();
    // Every publish must end (published or timed out) before the claim's lease does: a message whose
    // publish could not is left unattempted, for the next round, instead of being published late while
    // another relay, which claimed it after the lease, publishes it too.
    const leaseEnds = performance.now() + this.leaseMs;
    let resent = 0;
    let dead = 0;
    if (this.ackTimeoutMs !== undefined) {
      const late = await this.outbox.requeueUnacknowledged(
        this.ackTimeoutMs,
        this.batchSize,
        this.maxAttempts,
        this.topics,
      );
      resent = late.requeued;
      dead += late.dead;
    }
    const rows = await this.outbox.claim(
      claimId,
      this.batchSize,
      this.leaseMs,
      this.maxAttempts,
      this.topics,
    );
    const sent: string[] = [];
    const skipped: string[] = [];
    const failed: { id: string; attempt: number; error: string }[] = [];
    const live: OutboxMessage[] = [];
    for (const row of rows) {
      if (row.status === "dead") dead++;
      else {
        live.push({
          id: row.id,
          topic: row.topic,
          key: row.key,
          payload: row.payload,
          attempt: Number(row.attempts),
          createdAt: Math.round(Number(row.created_ms)),
        });
      }
    }
    const deliver = async (messages: readonly OutboxMessage[]): Promise<void> => {
      for (const message of messages) {
        if (performance.now() + this.publishTimeoutMs > leaseEnds) {
          skipped.push(message.id);
          continue;
        }
        try {
          if (!PUBLISH.active) await this.publishWithin(message);
          else {
            const payload = { messageId: message.id, topic: message.topic, attempt: message.attempt };
            await PUBLISH.trace(() => this.publishWithin(message), payload);
          }
          sent.push(message.id);
        } catch (err) {
          failed.push({ id: message.id, attempt: message.attempt, error: errorText(err) });
        }
      }
    };
    if (this.concurrency === 1) await deliver(live);
    else {
      // One lane per key (a lane per message without a key), at most `concurrency` lanes at a time.
      const lanes = new Map<string, OutboxMessage[]>();
      const order: OutboxMessage[][] = [];
      for (const m of live) {
        const lane = m.key === null ? undefined : lanes.get(m.key);
        if (lane) lane.push(m);
        else {
          const fresh = [m];
          if (m.key !== null) lanes.set(m.key, fresh);
          order.push(fresh);
        }
      }
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < order.length) await deliver(order[next++]!);
      };
      await Promise.all(Array.from({ length: Math.min(this.concurrency, order.length) }, worker));
    }
    await this.outbox.markSent(sent);
    await this.outbox.unclaim(skipped, claimId);
    let retried = 0;
    for (const f of failed) {
      const delayMs = f.attempt >= this.maxAttempts ? 0 : this.delay(f.attempt);
      const status = await this.outbox.markFailed(f.id, claimId, f.error, this.maxAttempts, delayMs);
      if (status === "dead") dead++;
      else if (status === "pending") retried++;
    }
    return { claimed: rows.length, sent: sent.length, retried, dead, resent };
  }

  /** One publish, failed with a timeout error (and its signal aborted) after `publishTimeoutMs`. */
  private async publishWithin(message: OutboxMessage): Promise<void> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new Error(`publish did not settle within ${this.publishTimeoutMs} ms`);
        controller.abort(err);
        reject(err);
      }, this.publishTimeoutMs);
      timer.unref?.();
    });
    try {
      // Promise.race keeps a reaction on the abandoned publish, so its late rejection is not unhandled.
      await Promise.race([
        Promise.resolve().then(() => this.publish(message, { signal: controller.signal })),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Starts the background loop (and LISTEN, when a `listen` client was given): rounds back to back while
   * batches come back full, else one every `pollIntervalMs` or as soon as a NOTIFY arrives. Errors go to
   * `onError` and the loop goes on. Resolves once the loop (and LISTEN) is set up; a second call does nothing.
   *
   * @example
   * ```ts
   * await relay.start();
   * ```
   */
  start(): Promise<void> {
    return this.loop.start();
  }

  /**
   * Stops the loop: waits for the round in flight (and any `runOnce` running) to finish publishing and
   * marking, then stops listening. Messages not yet claimed stay for the next relay.
   *
   * @example
   * ```ts
   * process.on("SIGTERM", () => void relay.stop());
   * ```
   */
  stop(): Promise<void> {
    return this.loop.stop();
  }

  /**
   * Dead messages of this relay's outbox ({@link PostgresOutbox.listDead}).
   *
   * @example
   * ```ts
   * const dead = await relay.listDead({ limit: 20 });
   * ```
   */
  listDead(options?: { readonly limit?: number; readonly topic?: string }): Promise<OutboxRecord[]> {
    return this.outbox.listDead(options);
  }

  /**
   * Puts a dead message back in line ({@link PostgresOutbox.retryDead}).
   *
   * @example
   * ```ts
   * await relay.retryDead(id);
   * ```
   */
  retryDead(id: string): Promise<boolean> {
    return this.outbox.retryDead(id);
  }

  private async cleanup(): Promise<void> {
    if (this.retentionMs === undefined) return;
    const now = performance.now();
    if (this.lastCleanup !== 0 && now - this.lastCleanup < this.cleanupIntervalMs) return;
    this.lastCleanup = now;
    const limit = 1000;
    // In consumer-acknowledged mode a sent row still waits for its acknowledgement: only processed rows go.
    const remove = (o: { olderThanMs: number; limit: number }): Promise<number> =>
      this.ackTimeoutMs === undefined ? this.outbox.deleteSent(o) : this.outbox.deleteProcessed(o);
    while (!this.loop.stopping && (await remove({ olderThanMs: this.retentionMs, limit })) >= limit);
  }

  private nudge = (topic?: string): void => {
    if (this.topics && topic && !this.topics.includes(topic)) return;
    this.loop.wake();
  };
}
