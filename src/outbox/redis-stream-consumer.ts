// RedisStreamConsumer: reads Redis Streams through a consumer group, at least once. An entry is acknowledged
// only after its handler resolved (after the handler's transaction committed); entries left pending by a
// failed or dead consumer are reclaimed (XAUTOCLAIM) and, after maxDeliveries, dead-lettered.
import { InvalidArgumentError } from "../errors.js";
import { validateRedisClient } from "../internal/client.js";
import { PollingLoop } from "../internal/loop.js";
import { replyError, toRedisError, type RedisClient } from "../internal/scripts.js";
import { slotOf } from "../internal/slot.js";
import { validateId, validateInt, validateOptionalInt, validateOptions } from "../internal/validate.js";
import {
  DEAD_LETTER,
  defaultDeadLetterStream,
  entriesOf,
  fieldsOf,
  isNoGroup,
  KEEP,
  RECLAIM,
} from "./stream-scripts.js";
import { errorText } from "./types.js";
import { CONSUMER_OPTIONS, type RedisStreamConsumerOptions, type StreamEntry } from "./consumer-options.js";

export type { RedisStreamConsumerOptions, StreamEntry };

/** What one round did, summed over the streams. */
export interface ConsumerRound {
  /** Entries handed to the handler (new and reclaimed). */
  readonly delivered: number;
  readonly acked: number;
  readonly failed: number;
  readonly deadLettered: number;
}

/**
 * Consumes Redis Streams through a consumer group, at least once, on standalone Redis or Cluster. Each
 * round, per stream: entries pending longer than `claimIdleMs` (their consumer failed or died) are taken
 * over with `XAUTOCLAIM`, and those already delivered `maxDeliveries` times go to the dead-letter stream;
 * then new entries are read with `XREADGROUP`. Each entry is handed to `handler` (in stream order within a
 * stream; streams in parallel) and acknowledged with `XACK` only after the handler resolved.
 *
 * It consumes `Inventory` event streams (`inventory.keys(sku).events`, fields `type`, `sku`,
 * `reservationId`, `userId`, `quantity`, `at`, `cause`; see {@link readStockEvent}) and streams written by
 * {@link RedisStreamPublisher} (see {@link readStreamedMessage}).
 *
 * @example
 * ```ts
 * const consumer = new RedisStreamConsumer(redis, {
 *   streams: () => skus.map((sku) => inventory.keys(sku).events),
 *   group: "orders",
 *   consumer: `${os.hostname()}-${process.pid}`,
 *   handler: async (entry) => {
 *     const event = readStockEvent(entry);
 *     if (event.type !== "reserved") return;
 *     await transaction(db, (tx) =>
 *       inbox.processOnce(tx, { consumer: "orders", messageId: `${entry.stream}/${entry.id}` }, (tx) =>
 *         orders.create(tx, event),
 *       ),
 *     ); // committed: now the entry is acknowledged
 *   },
 * });
 * await consumer.start();
 * ```
 */
export class RedisStreamConsumer {
  private readonly streams: RedisStreamConsumerOptions["streams"];
  private readonly group: string;
  private readonly consumer: string;
  private readonly handler: (entry: StreamEntry) => Promise<unknown>;
  private readonly batchSize: number;
  private readonly pollIntervalMs: number;
  private readonly claimIdleMs: number;
  private readonly maxDeliveries: number;
  private readonly startId: string;
  private readonly deadKey: (stream: string) => string;
  private readonly deadMaxLen: string;
  private readonly onError: (err: unknown, entry?: StreamEntry) => void;

  private readonly groups = new Set<string>();
  private readonly cursors = new Map<string, string>();
  private readonly lastReclaim = new Map<string, number>();
  private readonly loop: PollingLoop;

  constructor(
    private readonly redis: RedisClient,
    options: RedisStreamConsumerOptions,
  ) {
    validateOptions("options", options, { required: true, known: CONSUMER_OPTIONS });
    validateRedisClient("redis", redis);
    if (!Array.isArray(options.streams) && typeof options.streams !== "function") {
      throw new InvalidArgumentError(
        "streams",
        "must be an array of stream keys or a function returning one",
      );
    }
    this.streams = Array.isArray(options.streams) ? [...options.streams] : options.streams;
    validateId("group", options.group);
    validateId("consumer", options.consumer);
    this.group = options.group;
    this.consumer = options.consumer;
    if (typeof options.handler !== "function") {
      throw new InvalidArgumentError("handler", "must be a function (entry) => Promise");
    }
    this.handler = options.handler;
    this.batchSize = options.batchSize ?? 100;
    validateInt("batchSize", this.batchSize, { min: 1, max: 10_000 });
    this.pollIntervalMs = options.pollIntervalMs ?? 200;
    validateInt("pollIntervalMs", this.pollIntervalMs, { min: 1 });
    this.claimIdleMs = options.claimIdleMs ?? 30_000;
    validateInt("claimIdleMs", this.claimIdleMs, { min: 1 });
    this.maxDeliveries = options.maxDeliveries ?? 5;
    validateInt("maxDeliveries", this.maxDeliveries, { min: 1, max: 1_000_000 });
    this.startId = options.startId ?? "0";
    if (typeof this.startId !== "string" || !/^(\$|0|\d+(-\d+)?)$/.test(this.startId)) {
      throw new InvalidArgumentError("startId", 'must be "0", "$" or a stream entry id');
    }
    if (options.deadLetterStream !== undefined && typeof options.deadLetterStream !== "function") {
      throw new InvalidArgumentError("deadLetterStream", "must be a function (stream) => key");
    }
    this.deadKey = options.deadLetterStream ?? defaultDeadLetterStream;
    validateOptionalInt("deadLetterMaxLen", options.deadLetterMaxLen, { min: 1 });
    this.deadMaxLen = options.deadLetterMaxLen === undefined ? "" : String(options.deadLetterMaxLen);
    this.onError = options.onError ?? (() => {});
    // Streams known now get their dead-letter keys checked now; those a function returns, every round.
    if (Array.isArray(this.streams)) for (const stream of this.streams) this.deadKeyOf(stream);
    this.loop = new PollingLoop({
      round: async () => (await this.runOnce()).delivered > 0,
      intervalMs: this.pollIntervalMs,
      onError: (err) => this.report(err),
    });
  }

  /**
   * The dead-letter stream key of a stream.
   *
   * @example
   * ```ts
   * const dead = await redis.xrange(consumer.deadLetterStream(inventory.keys("sku-1").events), "-", "+");
   * ```
   */
  deadLetterStream(stream: string): string {
    const key = this.deadKey(stream);
    if (typeof key !== "string" || key.length === 0 || key === stream) {
      throw new InvalidArgumentError("deadLetterStream", "must return a key other than the stream's");
    }
    // On Cluster the reclaim and dead-letter scripts touch both keys: another slot would fail every round.
    if (slotOf(this.redis, key) !== slotOf(this.redis, stream)) {
      throw new InvalidArgumentError(
        "deadLetterStream",
        `must return a key in the cluster slot of its stream: ${JSON.stringify(key)} is not in the slot of ` +
          `${JSON.stringify(stream)} (give both the same hash tag, e.g. "{tag}:events" and "{tag}:events:dead")`,
      );
    }
    return key;
  }

  /** Whether the background loop is running. */
  get running(): boolean {
    return this.loop.running;
  }

  /**
   * Runs one round over every stream: reclaim, read, handle, acknowledge.
   *
   * @example
   * ```ts
   * const { delivered, acked } = await consumer.runOnce();
   * ```
   */
  runOnce(): Promise<ConsumerRound> {
    return this.loop.track(this.round());
  }

  /**
   * Starts the background loop: rounds back to back while entries arrive, else one every `pollIntervalMs`.
   * Errors go to `onError` and the loop goes on. A second call does nothing.
   *
   * @example
   * ```ts
   * await consumer.start();
   * ```
   */
  start(): Promise<void> {
    return this.loop.start();
  }

  /**
   * Stops the loop after the round in flight: the entries it read are handled and acknowledged first.
   *
   * @example
   * ```ts
   * await consumer.stop();
   * ```
   */
  stop(): Promise<void> {
    return this.loop.stop();
  }

  private async round(): Promise<ConsumerRound> {
    const streams = typeof this.streams === "function" ? await this.streams() : this.streams;
    if (!Array.isArray(streams))
      throw new InvalidArgumentError("streams", "must return an array of stream keys");
    const totals = { delivered: 0, acked: 0, failed: 0, deadLettered: 0 };
    const results = await Promise.allSettled([...new Set(streams)].map((s) => this.streamRound(s)));
    let firstError: unknown;
    for (const r of results) {
      if (r.status === "fulfilled") {
        totals.delivered += r.value.delivered;
        totals.acked += r.value.acked;
        totals.failed += r.value.failed;
        totals.deadLettered += r.value.deadLettered;
      } else firstError ??= r.reason;
    }
    // One stream's trouble (a node down) must not hide the others' work; it is reported after them.
    if (firstError !== undefined) {
      if (totals.delivered === 0) throw firstError;
      this.report(firstError);
    }
    return totals;
  }

  /** Checks a stream key and returns its dead-letter key. */
  private deadKeyOf(stream: unknown): string {
    if (typeof stream !== "string" || stream.length === 0) {
      throw new InvalidArgumentError("streams", "must contain non-empty stream keys");
    }
    return this.deadLetterStream(stream);
  }

  private async streamRound(stream: string): Promise<ConsumerRound> {
    const dead = this.deadKeyOf(stream);
    const totals = { delivered: 0, acked: 0, failed: 0, deadLettered: 0 };
    try {
      await this.ensureGroup(stream);
      // Reclaimed entries are handled before anything else can fail: the reclaim already counted their
      // delivery, so a failed read of new entries must not leave them unhandled until the next reclaim.
      await this.handleAll(stream, await this.reclaim(stream, dead, totals), dead, totals);
      await this.handleAll(stream, await this.readNew(stream), dead, totals);
    } catch (err) {
      if (isNoGroup(err)) this.groups.delete(stream);
      throw err;
    }
    return totals;
  }

  private async ensureGroup(stream: string): Promise<void> {
    if (this.groups.has(stream)) return;
    try {
      await this.redis.call("XGROUP", "CREATE", stream, this.group, this.startId, "MKSTREAM");
    } catch (err) {
      if (!(err instanceof Error && /BUSYGROUP/.test(err.message))) throw toRedisError(err);
    }
    this.groups.add(stream);
    this.cursors.set(stream, "0-0");
  }

  /** Takes over entries idle past claimIdleMs; at most every claimIdleMs / 2 per stream unless mid-scan. */
  private async reclaim(
    stream: string,
    dead: string,
    totals: { deadLettered: number },
  ): Promise<StreamEntry[]> {
    const cursor = this.cursors.get(stream) ?? "0-0";
    const now = performance.now();
    const last = this.lastReclaim.get(stream);
    if (cursor === "0-0" && last !== undefined && now - last < this.claimIdleMs / 2) return [];
    this.lastReclaim.set(stream, now);
    const {
      cursor: next,
      entries,
      deadLettered,
    } = await RECLAIM.run(
      this.redis,
      [stream, dead],
      [
        this.group,
        this.consumer,
        this.claimIdleMs,
        cursor,
        this.batchSize,
        this.maxDeliveries,
        this.deadMaxLen,
        `not acknowledged within ${this.claimIdleMs} ms of its last delivery (the consumer failed or stopped)`,
      ],
    );
    this.cursors.set(stream, next);
    totals.deadLettered += deadLettered;
    return entries.map(([id, deliveries, fields]) => ({ stream, id, deliveries, fields: fieldsOf(fields) }));
  }

  private async readNew(stream: string): Promise<StreamEntry[]> {
    let reply: unknown;
    try {
      reply = await this.redis.call(
        "XREADGROUP",
        "GROUP",
        this.group,
        this.consumer,
        "COUNT",
        this.batchSize,
        "STREAMS",
        stream,
        ">",
      );
    } catch (err) {
      throw toRedisError(err);
    }
    const out: StreamEntry[] = [];
    for (const [id, fields] of entriesOf(reply)) {
      if (fields === null) continue; // deleted before it was read; reclaim acknowledges it
      out.push({ stream, id, deliveries: 1, fields: fieldsOf(fields) });
    }
    return out;
  }

  /**
   * Handles a batch in order. The entries of a batch were all delivered at once, so those still waiting
   * their turn look idle to the other consumers; every `claimIdleMs / 3` the rest of the batch is kept
   * (its idle time reset, no delivery counted), and entries another consumer took over meanwhile are skipped.
   */
  private async handleAll(
    stream: string,
    entries: StreamEntry[],
    dead: string,
    totals: ConsumerRoundCounts,
  ): Promise<void> {
    let keptAt = performance.now();
    for (let i = 0; i < entries.length; i++) {
      if (performance.now() - keptAt > this.claimIdleMs / 3) {
        const rest = entries.slice(i);
        const mine = await KEEP.run(
          this.redis,
          [stream],
          [this.group, this.consumer, ...rest.map((e) => e.id)],
        );
        if (mine.length !== rest.length) throw replyError("outbox/keep", mine, `${rest.length} integers`);
        entries = [...entries.slice(0, i), ...rest.filter((_, j) => mine[j] === 1)];
        keptAt = performance.now();
        if (i >= entries.length) break;
      }
      totals.delivered++;
      await this.handle(entries[i]!, dead, totals);
    }
  }

  private async handle(entry: StreamEntry, dead: string, totals: ConsumerRoundCounts): Promise<void> {
    try {
      await this.handler(entry);
    } catch (err) {
      totals.failed++;
      this.report(err, entry);
      if (entry.deliveries >= this.maxDeliveries) {
        try {
          const moved = await DEAD_LETTER.run(
            this.redis,
            [entry.stream, dead],
            [this.group, this.consumer, entry.id, errorText(err), this.deadMaxLen],
          );
          if (moved) totals.deadLettered++;
        } catch (moveErr) {
          // Still pending: the next reclaim dead-letters it (without the handler's error).
          this.report(moveErr, entry);
        }
      }
      return;
    }
    try {
      await this.redis.call("XACK", entry.stream, this.group, entry.id);
      totals.acked++;
    } catch (err) {
      // The effect is committed; the entry will be delivered again and the handler must see a duplicate.
      this.report(toRedisError(err), entry);
    }
  }

  private report(err: unknown, entry?: StreamEntry): void {
    try {
      this.onError(err, entry);
    } catch {
      // an onError that throws must not kill the loop
    }
  }
}

type ConsumerRoundCounts = { -readonly [K in keyof ConsumerRound]: ConsumerRound[K] };
