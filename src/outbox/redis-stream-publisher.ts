// RedisStreamPublisher: an OutboxRelay transport that appends each message to a Redis Stream (XADD).
import { InvalidArgumentError, UnexpectedReplyError } from "../errors.js";
import { entityKeys, resolvePrefix } from "../internal/keys.js";
import { toRedisError, type RedisClient } from "../internal/scripts.js";
import { validateRedisClient } from "../internal/client.js";
import { optionKeys, validateOptionalInt, validateOptions } from "../internal/validate.js";
import { payloadJson, type OutboxMessage } from "./types.js";
import type { StreamEntry } from "./redis-stream-consumer.js";

/** Options of `new RedisStreamPublisher()`. */
export interface RedisStreamPublisherOptions {
  /**
   * First part of the default stream key's hash tag: topic `t` goes to `{<prefix>:t}:stream`.
   * @default "fsk-outbox"
   */
  readonly prefix?: string;
  /** The stream key of a message, overriding the default per-topic key. */
  readonly stream?: (message: OutboxMessage) => string;
  /** Trim each stream to about this many entries (`XADD MAXLEN ~`). Omitted: never trimmed. */
  readonly maxLen?: number;
}

const KNOWN = optionKeys<RedisStreamPublisherOptions>({ prefix: 1, stream: 1, maxLen: 1 });

/** An outbox message as read back from a stream entry written by {@link RedisStreamPublisher}. */
export interface StreamedMessage<P = unknown> {
  readonly id: string;
  readonly topic: string;
  readonly key: string | null;
  readonly payload: P;
}

/**
 * Publishes outbox messages to Redis Streams: one `XADD` per message with the fields `id`, `topic`, `key`
 * (when set) and `payload` (JSON). By default each topic has its own stream, `{<prefix>:<topic>}:stream`;
 * read it with a {@link RedisStreamConsumer} and {@link readStreamedMessage}, and deduplicate on `id`.
 *
 * @example
 * ```ts
 * const publisher = new RedisStreamPublisher(redis, { maxLen: 1_000_000 });
 * const relay = new OutboxRelay(outbox, { publish: publisher.publish });
 * publisher.streamKey("order-created"); // "{fsk-outbox:order-created}:stream"
 * ```
 */
export class RedisStreamPublisher {
  private readonly prefix: string;
  private readonly maxLen: number | undefined;
  private readonly streamOf: (message: OutboxMessage) => string;

  constructor(
    private readonly redis: RedisClient,
    options: RedisStreamPublisherOptions = {},
  ) {
    validateOptions("options", options, { known: KNOWN });
    validateRedisClient("redis", redis);
    this.prefix = resolvePrefix(options.prefix ?? "fsk-outbox");
    validateOptionalInt("maxLen", options.maxLen, { min: 1 });
    this.maxLen = options.maxLen;
    if (options.stream !== undefined && typeof options.stream !== "function") {
      throw new InvalidArgumentError("stream", "must be a function (message) => stream key");
    }
    this.streamOf = options.stream ?? ((m) => this.streamKey(m.topic));
  }

  /**
   * The default stream key of a topic.
   *
   * @example
   * ```ts
   * publisher.streamKey("payment-timeout"); // "{fsk-outbox:payment-timeout}:stream"
   * ```
   */
  streamKey(topic: string): string {
    return entityKeys(this.prefix, topic, "topic").key("stream");
  }

  /**
   * Appends one message to its stream; resolves with the entry id. Bound to the instance, so it can be
   * passed as a relay's `publish` as is.
   *
   * @example
   * ```ts
   * await publisher.publish({ id: "m1", topic: "t", key: null, payload: { a: 1 }, attempt: 1, createdAt: 0 });
   * ```
   */
  readonly publish = async (message: OutboxMessage): Promise<string> => {
    const stream = this.streamOf(message);
    if (typeof stream !== "string" || stream.length === 0) {
      throw new InvalidArgumentError("stream", "must return a non-empty key");
    }
    const args: (string | number)[] = [stream];
    if (this.maxLen !== undefined) args.push("MAXLEN", "~", this.maxLen);
    args.push("*", "id", message.id, "topic", message.topic);
    if (message.key !== null) args.push("key", message.key);
    args.push("payload", payloadJson(message.payload));
    let reply: unknown;
    try {
      reply = await this.redis.call("XADD", ...args);
    } catch (err) {
      throw toRedisError(err);
    }
    if (typeof reply !== "string") throw new UnexpectedReplyError("XADD returned no entry id");
    return reply;
  };
}

/**
 * Reads back a message that {@link RedisStreamPublisher} wrote, from a consumer's entry. Throws
 * {@link UnexpectedReplyError} for an entry that is not one (say, a foreign writer's): let it fail, and the
 * consumer dead-letters it after `maxDeliveries`.
 *
 * @example
 * ```ts
 * handler: async (entry) => {
 *   const m = readStreamedMessage<{ orderId: string }>(entry);
 *   await transaction(db, (tx) => inbox.processOnce(tx, { consumer: "mail", messageId: m.id }, …));
 * }
 * ```
 */
export function readStreamedMessage<P = unknown>(entry: Pick<StreamEntry, "fields">): StreamedMessage<P> {
  const f = entry.fields;
  if (typeof f.id !== "string" || typeof f.topic !== "string" || typeof f.payload !== "string") {
    throw new UnexpectedReplyError("stream entry has no id, topic and payload fields");
  }
  let payload: P;
  try {
    payload = JSON.parse(f.payload) as P;
  } catch (err) {
    throw new UnexpectedReplyError("stream entry payload is not JSON", { cause: err });
  }
  return { id: f.id, topic: f.topic, key: f.key ?? null, payload };
}
