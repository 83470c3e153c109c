// RabbitMqPublisher: an OutboxRelay transport to RabbitMQ that resolves only once the broker confirms the
// message (publisher confirms), on an amqplib ConfirmChannel the user creates; amqplib is not imported.
import { InvalidArgumentError, UnexpectedReplyError } from "../errors.js";
import { optionKeys, validateInt, validateOptions } from "../internal/validate.js";
import { payloadJson, type OutboxMessage } from "./types.js";
import type { StreamedMessage } from "./redis-stream-publisher.js";

/** The part of an amqplib `ConfirmChannel` the publisher uses (`connection.createConfirmChannel()`). */
export interface ConfirmChannelLike {
  publish(
    exchange: string,
    routingKey: string,
    content: Buffer,
    options: Record<string, unknown>,
    callback: (err: unknown, ok?: unknown) => void,
  ): boolean;
}

/** Options of `new RabbitMqPublisher()`. */
export interface RabbitMqPublisherOptions {
  /** The exchange to publish to; `""` is the default exchange (the routing key is then a queue name). */
  readonly exchange: string;
  /**
   * The routing key of a message.
   * @default (message) => message.topic
   */
  readonly routingKey?: (message: OutboxMessage) => string;
  /**
   * Mark messages persistent (delivery mode 2), so a durable queue keeps them across broker restarts.
   * @default true
   */
  readonly persistent?: boolean;
  /**
   * Fail the attempt when the broker has not confirmed within this time (a closed channel, a stuck broker).
   * @default 30000
   */
  readonly confirmTimeoutMs?: number;
}

const KNOWN = optionKeys<RabbitMqPublisherOptions>({
  exchange: 1,
  routingKey: 1,
  persistent: 1,
  confirmTimeoutMs: 1,
});

/** An AMQP message as amqplib delivers it to a consumer (the fields `readRabbitMessage` reads). */
export interface AmqpMessageLike {
  readonly content: Buffer;
  readonly properties: {
    readonly messageId?: string;
    readonly type?: string;
    readonly headers?: Record<string, unknown>;
  };
}

/**
 * Publishes outbox messages to RabbitMQ with publisher confirms: `publish` resolves when the broker acks the
 * message and rejects on a nack, a channel error or after `confirmTimeoutMs`, so the relay marks a message
 * sent only once the broker has taken responsibility for it. The body is the JSON payload; `messageId` is
 * the outbox id (deduplicate on it), `type` the topic, header `x-outbox-key` the key.
 *
 * Unroutable messages are confirmed by RabbitMQ too (and dropped): declare the queues and bindings before
 * publishing, or give the exchange an alternate exchange.
 *
 * @example
 * ```ts
 * import amqp from "amqplib";
 *
 * const connection = await amqp.connect("amqp://127.0.0.1");
 * const channel = await connection.createConfirmChannel();
 * await channel.assertExchange("orders", "topic", { durable: true });
 * const rabbit = new RabbitMqPublisher(channel, { exchange: "orders" });
 * const relay = new OutboxRelay(outbox, { publish: rabbit.publish });
 * ```
 */
export class RabbitMqPublisher {
  private readonly exchange: string;
  private readonly routingKey: (message: OutboxMessage) => string;
  private readonly persistent: boolean;
  private readonly confirmTimeoutMs: number;

  constructor(
    private readonly channel: ConfirmChannelLike,
    options: RabbitMqPublisherOptions,
  ) {
    validateOptions("options", options, { required: true, known: KNOWN });
    if (channel === null || typeof channel !== "object" || typeof channel.publish !== "function") {
      throw new InvalidArgumentError("channel", "must be an amqplib ConfirmChannel");
    }
    if (typeof options.exchange !== "string") {
      throw new InvalidArgumentError("exchange", 'must be a string ("" for the default exchange)');
    }
    this.exchange = options.exchange;
    if (options.routingKey !== undefined && typeof options.routingKey !== "function") {
      throw new InvalidArgumentError("routingKey", "must be a function (message) => routing key");
    }
    this.routingKey = options.routingKey ?? ((m) => m.topic);
    this.persistent = options.persistent ?? true;
    this.confirmTimeoutMs = options.confirmTimeoutMs ?? 30_000;
    validateInt("confirmTimeoutMs", this.confirmTimeoutMs, { min: 1 });
  }

  /**
   * Publishes one message and waits for the broker's confirm. Bound to the instance, so it can be passed
   * as a relay's `publish` as is.
   *
   * @example
   * ```ts
   * await rabbit.publish(message); // resolved: the broker has it
   * ```
   */
  readonly publish = (message: OutboxMessage): Promise<void> => {
    const routingKey = this.routingKey(message);
    if (typeof routingKey !== "string") throw new InvalidArgumentError("routingKey", "must return a string");
    const body = Buffer.from(payloadJson(message.payload));
    const properties: Record<string, unknown> = {
      messageId: message.id,
      type: message.topic,
      contentType: "application/json",
      persistent: this.persistent,
      timestamp: Math.floor(message.createdAt / 1000),
      headers: message.key === null ? {} : { "x-outbox-key": message.key },
    };
    return new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (err?: unknown): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err === undefined || err === null) resolve();
        else reject(err instanceof Error ? err : new Error(`the broker refused the message: ${String(err)}`));
      };
      const timer = setTimeout(
        () => finish(new Error(`no publisher confirm within ${this.confirmTimeoutMs} ms`)),
        this.confirmTimeoutMs,
      );
      try {
        this.channel.publish(this.exchange, routingKey, body, properties, (err) => finish(err));
      } catch (err) {
        finish(err ?? new Error("publish failed"));
      }
    });
  };
}

/**
 * Reads back an outbox message published by {@link RabbitMqPublisher} from an amqplib consumer's message.
 *
 * @example
 * ```ts
 * await channel.consume("orders", async (msg) => {
 *   if (!msg) return;
 *   const m = readRabbitMessage(msg);
 *   await transaction(db, (tx) => inbox.processOnce(tx, { consumer: "mail", messageId: m.id }, …));
 *   channel.ack(msg);
 * });
 * ```
 */
export function readRabbitMessage<P = unknown>(message: AmqpMessageLike): StreamedMessage<P> {
  const { messageId, type, headers } = message.properties ?? {};
  if (typeof messageId !== "string" || typeof type !== "string") {
    throw new UnexpectedReplyError("AMQP message has no messageId and type");
  }
  let payload: P;
  try {
    payload = JSON.parse(message.content.toString("utf8")) as P;
  } catch (err) {
    throw new UnexpectedReplyError("AMQP message body is not JSON", { cause: err });
  }
  const key = headers?.["x-outbox-key"];
  return { id: messageId, topic: type, key: typeof key === "string" ? key : null, payload };
}
