// flash-sale-kit/outbox: the transactional outbox and inbox on PostgreSQL, a relay with retries and
// dead-lettering, Redis Streams and RabbitMQ transports.
export {
  transaction,
  type TransactionSource,
  type PoolLike,
  type PooledClientLike,
  type TransactionCapable,
} from "./transaction.js";
export {
  PostgresOutbox,
  outboxSchema,
  type PostgresOutboxOptions,
  type EnqueueInput,
  type EnqueueResult,
  type OutboxRecord,
  type OutboxStatus,
  type OutboxStats,
} from "./postgres-outbox.js";
export { OutboxRelay, type OutboxRelayOptions, type PublishContext, type RelayRound } from "./relay.js";
export type { ListenClient, PgListenClient, PgliteListenClient } from "./listen.js";
export { retryDelayMs, DEFAULT_RELAY_BACKOFF, type RelayBackoffOptions } from "./backoff.js";
export {
  PostgresInbox,
  inboxSchema,
  type PostgresInboxOptions,
  type InboxMessageRef,
  type ProcessOutcome,
} from "./inbox.js";
export {
  RedisStreamPublisher,
  readStreamedMessage,
  type RedisStreamPublisherOptions,
  type StreamedMessage,
} from "./redis-stream-publisher.js";
export { defaultDeadLetterStream } from "./stream-scripts.js";
export {
  RedisStreamConsumer,
  type RedisStreamConsumerOptions,
  type StreamEntry,
  type ConsumerRound,
} from "./redis-stream-consumer.js";
export {
  RabbitMqPublisher,
  readRabbitMessage,
  type RabbitMqPublisherOptions,
  type ConfirmChannelLike,
  type AmqpMessageLike,
} from "./rabbitmq-publisher.js";
export { MAX_MESSAGE_ID_LENGTH, type OutboxMessage } from "./types.js";
export type { DeleteOlderOptions } from "./cleanup.js";
