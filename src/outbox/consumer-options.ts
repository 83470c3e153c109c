// What a RedisStreamConsumer is given: its options, and the stream entries it hands to the handler.
import { optionKeys } from "../internal/validate.js";

/** One stream entry handed to a handler. */
export interface StreamEntry {
  /** The stream key it was read from. */
  readonly stream: string;
  /** The entry id (`<ms>-<seq>`). */
  readonly id: string;
  readonly fields: Readonly<Record<string, string>>;
  /** How many times the group has delivered this entry, this delivery included (1 the first time). */
  readonly deliveries: number;
}

/** Options of `new RedisStreamConsumer()`. */
export interface RedisStreamConsumerOptions {
  /**
   * The stream keys to read, or a function returning them (called every round, so streams can come and go,
   * like one `Inventory` event stream per SKU). Each stream gets its own consumer group and is read with its
   * own commands, so streams may live on different Redis Cluster nodes.
   */
  readonly streams: readonly string[] | (() => readonly string[] | Promise<readonly string[]>);
  /** The consumer group (created on first use with `XGROUP CREATE … MKSTREAM`). */
  readonly group: string;
  /** This consumer's name within the group; give each process its own (say, the host name and pid). */
  readonly consumer: string;
  /**
   * Applies one entry. Resolve only once its effect is durable (its transaction committed): the entry is
   * acknowledged (XACK) after that and never before. Throwing leaves the entry pending: it is delivered
   * again after `claimIdleMs`, and dead-lettered when its `maxDeliveries`-th delivery fails. Entries can be
   * delivered more than once (a consumer that dies before XACK), so make the effect idempotent, e.g. with
   * {@link PostgresInbox.processOnce} keyed on `<stream>/<id>` or on the message id inside the entry.
   */
  readonly handler: (entry: StreamEntry) => Promise<unknown>;
  /**
   * Entries read (and reclaimed) per stream per round.
   * @default 100
   */
  readonly batchSize?: number;
  /**
   * Pause after a round that read nothing. (Reads do not BLOCK: the consumer shares your client.)
   * @default 200
   */
  readonly pollIntervalMs?: number;
  /**
   * An entry pending (delivered, not acknowledged) longer than this is taken over by whichever consumer of
   * the group reclaims first. Keep it above your slowest handler, or entries are handled twice at once.
   * @default 30000
   */
  readonly claimIdleMs?: number;
  /**
   * Deliveries per entry. When the last one fails, or its consumer dies during it, the entry goes to the
   * dead-letter stream with the error and is acknowledged.
   * @default 5
   */
  readonly maxDeliveries?: number;
  /**
   * Where a new group starts: `"0"` reads the stream's whole history, `"$"` only entries added afterwards.
   * @default "0"
   */
  readonly startId?: string;
  /**
   * The dead-letter stream of a stream. On Redis Cluster it must hash to the same slot as the stream, or
   * {@link InvalidArgumentError} is thrown (by the constructor for a stream array, else by the round that
   * meets the stream) instead of every reclaim failing with `CROSSSLOT`. It must be a stream or not exist: a
   * key of another type fails each reclaim with a `WRONGTYPE` `RedisCommandError`, changing nothing.
   * Default: the stream key plus `:dead` when the key has a hash tag (`{fsk:sku-1}:events` →
   * `{fsk:sku-1}:events:dead`), else `{<stream>}:dead`.
   */
  readonly deadLetterStream?: (stream: string) => string;
  /** Trim dead-letter streams to about this many entries. Omitted: never trimmed. */
  readonly deadLetterMaxLen?: number;
  /** Called with handler errors (and the entry) and with errors of background rounds; the loop goes on. */
  readonly onError?: (err: unknown, entry?: StreamEntry) => void;
}

/** The keys of {@link RedisStreamConsumerOptions}. @internal */
export const CONSUMER_OPTIONS = optionKeys<RedisStreamConsumerOptions>({
  streams: 1,
  group: 1,
  consumer: 1,
  handler: 1,
  batchSize: 1,
  pollIntervalMs: 1,
  claimIdleMs: 1,
  maxDeliveries: 1,
  startId: 1,
  deadLetterStream: 1,
  deadLetterMaxLen: 1,
  onError: 1,
});
