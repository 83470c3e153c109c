// The order worker: reads `reserved` events from each sale's stock stream, and in one PostgreSQL transaction
// writes the inbox row (dedup), the order and its delayed payment-timeout outbox row; the relay delivers the
// timeouts, which cancel unpaid orders and release their stock. Runs in the server process by default, or
// alone (`npm run example -- --worker-only`).
import { hostname } from "node:os";
import {
  OutboxRelay,
  PostgresInbox,
  PostgresOutbox,
  RedisStreamConsumer,
  transaction,
  type TransactionSource,
} from "flash-sale-kit/outbox";
import { PostgresOrders, readStockEvent } from "flash-sale-kit/orders";
import type { Inventory } from "flash-sale-kit/stock";
import type { Redis } from "ioredis";

export interface OrderPipeline {
  readonly outbox: PostgresOutbox;
  readonly inbox: PostgresInbox;
  readonly orders: PostgresOrders;
  readonly consumer: RedisStreamConsumer;
  readonly relay: OutboxRelay;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface OrderPipelineOptions {
  readonly db: TransactionSource;
  readonly redis: Redis;
  readonly inventory: Inventory;
  /** The SKUs whose event streams to read (called every round). */
  readonly skus: () => readonly string[];
  readonly paymentTimeoutMs: number;
  /** Redis time, epoch ms (the process's synced clock). */
  readonly now: () => Promise<number>;
  readonly onError?: (err: unknown) => void;
}

export function createOrderPipeline(o: OrderPipelineOptions): OrderPipeline {
  const outbox = new PostgresOutbox(o.db);
  const inbox = new PostgresInbox(o.db);
  const orders = new PostgresOrders(o.db, {
    stock: o.inventory,
    outbox,
    paymentTimeoutMs: o.paymentTimeoutMs,
  });
  const consumer = new RedisStreamConsumer(o.redis, {
    streams: () => o.skus().map((sku) => o.inventory.keys(sku).events),
    group: "orders",
    consumer: `${hostname()}-${process.pid}`,
    pollIntervalMs: 50,
    claimIdleMs: 10_000,
    onError: o.onError,
    handler: async (entry) => {
      const event = readStockEvent(entry);
      if (event.type !== "reserved") return;
      // The payment window runs from the reservation (Redis time), not from when this worker got to it: a
      // backlog must not leave an order pending after its stock hold ran out (the unit and the user's quota
      // would be back on sale while the order still waits for payment).
      const reservation = await o.inventory.reservation(event.sku, event.reservationId);
      if (reservation?.state !== "held") return; // released (or expired) before its order was written
      const left = Math.max(0, Math.floor(event.at + o.paymentTimeoutMs - (await o.now())));
      await transaction(o.db, (tx) =>
        inbox.processOnce(tx, { consumer: "orders", messageId: `${entry.stream}/${entry.id}` }, (t) =>
          orders.create(t, { ...event, paymentTimeoutMs: left }),
        ),
      );
    },
  });
  const relay = new OutboxRelay(outbox, {
    topics: [orders.topic],
    publish: orders.handlePaymentTimeout,
    pollIntervalMs: 100,
    maxAttempts: 10,
    onError: o.onError,
  });
  return {
    outbox,
    inbox,
    orders,
    consumer,
    relay,
    async start() {
      await consumer.start();
      await relay.start();
    },
    async stop() {
      await consumer.stop();
      await relay.stop();
    },
  };
}

/** Creates the tables of the pipeline (outbox, inbox, orders). */
export async function migratePipeline(p: OrderPipeline): Promise<void> {
  await p.outbox.migrate();
  await p.inbox.migrate();
  await p.orders.migrate();
}
