// Consumer-acknowledged outbox: the consumer's inbox transaction marks the outbox row processed, and a relay
// with ackTimeoutMs re-sends what stays sent-but-unprocessed. Messages dropped after the broker accepted them
// (entries deleted from a Redis stream, a purged RabbitMQ queue) are delivered again and applied once.
import { randomBytes } from "node:crypto";
import amqp from "amqplib";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/errors.js";
import type { SqlClient } from "../../src/internal/sql.js";
import {
  OutboxRelay,
  PostgresInbox,
  PostgresOutbox,
  RabbitMqPublisher,
  RedisStreamConsumer,
  RedisStreamPublisher,
  readRabbitMessage,
  readStreamedMessage,
  transaction,
} from "../../src/outbox/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";
import { BACKENDS, count, tableName, until, type Backend } from "./helpers.js";

const RABBIT_URL = process.env.RABBITMQ_URL ?? "amqp://guest:guest@127.0.0.1:5672";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => {
  await srv?.stop();
});

/** An outbox, an inbox that acknowledges its messages, and an effects table with one row per application. */
async function setup(db: SqlClient) {
  const outbox = new PostgresOutbox(db, { table: tableName("ob") });
  const inbox = new PostgresInbox(db, { table: tableName("ib"), outbox });
  await outbox.migrate();
  await inbox.migrate();
  const effects = tableName("fx");
  await db.query(`CREATE TABLE ${effects} (message_id text NOT NULL)`);
  const apply = (messageId: string) =>
    transaction(db, (tx) =>
      inbox.processOnce(tx, { consumer: "fx", messageId }, (t) =>
        t.query(`INSERT INTO ${effects} (message_id) VALUES ($1)`, [messageId]),
      ),
    );
  const applied = async (): Promise<Map<string, number>> => {
    const { rows } = await db.query(`SELECT message_id, count(*)::int AS n FROM ${effects} GROUP BY 1`);
    return new Map((rows as { message_id: string; n: number }[]).map((r) => [r.message_id, Number(r.n)]));
  };
  return { outbox, inbox, effects, apply, applied };
}

async function enqueueAll(db: SqlClient, outbox: PostgresOutbox, ids: readonly string[]): Promise<void> {
  await transaction(db, async (tx) => {
    for (const id of ids) await outbox.enqueue(tx, { topic: "paid", id, payload: { id } });
  });
}

describe.each(BACKENDS)("consumer-acknowledged outbox on $name", (backend) => {
  let b: Backend;
  let db: SqlClient;
  beforeAll(async () => {
    b = await backend.start();
    db = b.db;
  });
  afterAll(async () => {
    await b?.stop();
  });

  it("re-sends entries deleted from the stream after XADD accepted them, and applies each once", async () => {
    const { outbox, apply, applied } = await setup(db);
    const prefix = randomPrefix("ack");
    const publisher = new RedisStreamPublisher(redis, { prefix });
    const stream = publisher.streamKey("paid");
    const N = 60;
    const ids = Array.from({ length: N }, (_, i) => `m${i}`);
    const dropped = new Set(ids.filter((_, i) => i % 4 === 0));
    await enqueueAll(db, outbox, ids);

    // The "broker" accepts every first attempt; then the entries of every 4th message are lost.
    const relay = new OutboxRelay(outbox, {
      publish: publisher.publish,
      ackTimeoutMs: 300,
      pollIntervalMs: 20,
      backoff: { minTimeoutMs: 10 },
    });
    expect(await relay.runOnce()).toMatchObject({ claimed: N, sent: N, resent: 0 });
    const entries = (await redis.xrange(stream, "-", "+")) as [string, string[]][];
    expect(entries).toHaveLength(N);
    const lost = entries.filter(([, f]) => dropped.has(f[f.indexOf("id") + 1]!)).map(([id]) => id);
    expect(await redis.xdel(stream, ...lost)).toBe(dropped.size);
    expect(await outbox.stats()).toEqual({ pending: 0, sent: N, processed: 0, dead: 0 });

    const errors: unknown[] = [];
    const consumer = new RedisStreamConsumer(redis, {
      streams: [stream],
      group: "fx",
      consumer: "c1",
      pollIntervalMs: 20,
      handler: (entry) => apply(readStreamedMessage(entry).id),
      onError: (err) => errors.push(err),
    });
    await consumer.runOnce();
    // What reached the consumer is acknowledged; what was lost is still only "sent".
    expect(await outbox.stats()).toEqual({
      pending: 0,
      sent: dropped.size,
      processed: N - dropped.size,
      dead: 0,
    });

    await Promise.all([relay.start(), consumer.start()]);
    try {
      await until(async () => (await outbox.stats()).processed === N, 20_000, "every message processed");
    } finally {
      await Promise.all([relay.stop(), consumer.stop()]);
    }
    expect(errors).toEqual([]);
    const counts = await applied();
    expect(counts.size).toBe(N);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    for (const id of ids) {
      const m = await outbox.get(id);
      expect(m).toMatchObject({ status: "processed" });
      expect(m!.processedAt).not.toBeNull();
      // A lost message took a second attempt, with the reason recorded; the others one.
      if (dropped.has(id)) {
        expect(m!.attempts).toBeGreaterThanOrEqual(2);
        expect(m!.lastError).toMatch(/no consumer acknowledged it within 300 ms/);
      } else expect(m!.attempts).toBe(1);
    }
    await redis.del(stream);
  });

  it("without ackTimeoutMs a message dropped after acceptance is never sent again", async () => {
    const { outbox } = await setup(db);
    await enqueueAll(db, outbox, ["gone"]);
    const relay = new OutboxRelay(outbox, { publish: async () => {} }); // accepted, then lost
    await relay.runOnce();
    // Long past any timeout (set on the database clock, no waiting): still sent, never re-published.
    await db.query(`UPDATE ${outbox.table} SET sent_at = now() - interval '1 day'`);
    expect(await relay.runOnce()).toMatchObject({ claimed: 0, resent: 0 });
    expect(await outbox.get("gone")).toMatchObject({ status: "sent", attempts: 1 });
  });

  it("dead-letters a message no consumer acknowledges after maxAttempts", async () => {
    const { outbox } = await setup(db);
    await enqueueAll(db, outbox, ["ignored"]);
    let published = 0;
    const relay = new OutboxRelay(outbox, {
      publish: async () => void published++,
      ackTimeoutMs: 60_000,
      maxAttempts: 3,
    });
    const late = () => db.query(`UPDATE ${outbox.table} SET sent_at = now() - interval '2 minutes'`);
    expect(await relay.runOnce()).toEqual({ claimed: 1, sent: 1, retried: 0, dead: 0, resent: 0 });
    expect(await relay.runOnce()).toEqual({ claimed: 0, sent: 0, retried: 0, dead: 0, resent: 0 });
    await late();
    expect(await relay.runOnce()).toEqual({ claimed: 1, sent: 1, retried: 0, dead: 0, resent: 1 });
    await late();
    expect(await relay.runOnce()).toEqual({ claimed: 1, sent: 1, retried: 0, dead: 0, resent: 1 });
    await late();
    expect(await relay.runOnce()).toEqual({ claimed: 0, sent: 0, retried: 0, dead: 1, resent: 0 });
    expect(published).toBe(3);
    const [dead] = await outbox.listDead();
    expect(dead).toMatchObject({ id: "ignored", status: "dead", attempts: 3 });
    expect(dead!.lastError).toMatch(/attempt 3 was accepted by the transport but no consumer acknowledged/);
    // A late delivery that is applied after all acknowledges the dead message: it was processed.
    expect(await transaction(db, (tx) => outbox.acknowledge(tx, "ignored"))).toBe(true);
    expect(await outbox.get("ignored")).toMatchObject({ status: "processed", deadAt: null });
    expect(await transaction(db, (tx) => outbox.acknowledge(tx, "ignored"))).toBe(false);
  });

  it("a consumer faster than the relay's mark keeps the message processed", async () => {
    const { outbox, apply, applied } = await setup(db);
    await enqueueAll(db, outbox, ["fast"]);
    const relay = new OutboxRelay(outbox, {
      ackTimeoutMs: 1000,
      // The transport hands the message straight to the consumer, which commits before the relay marks it sent.
      publish: async (m) => {
        expect(await apply(m.id)).toBe("processed");
      },
    });
    expect(await relay.runOnce()).toMatchObject({ claimed: 1, sent: 1 });
    const m = await outbox.get("fast");
    expect(m).toMatchObject({ status: "processed", attempts: 1 });
    expect(m!.sentAt).not.toBeNull();
    // A redelivery is a duplicate and changes nothing.
    expect(await apply("fast")).toBe("duplicate");
    expect((await applied()).get("fast")).toBe(1);
    expect(await outbox.stats()).toEqual({ pending: 0, sent: 0, processed: 1, dead: 0 });
  });

  it("retention in acknowledged mode deletes processed rows only; deleteSent deletes both", async () => {
    const { outbox, apply } = await setup(db);
    await enqueueAll(db, outbox, ["a", "b"]);
    const relay = new OutboxRelay(outbox, { publish: async () => {}, ackTimeoutMs: 3_600_000 });
    await relay.runOnce();
    await apply("a");
    await db.query(
      `UPDATE ${outbox.table} SET sent_at = now() - interval '1 day', processed_at = now() - interval '1 day'`,
    );
    expect(await outbox.deleteProcessed({ olderThanMs: 60_000 })).toBe(1);
    expect(await outbox.get("a")).toBeNull();
    expect(await outbox.get("b")).toMatchObject({ status: "sent" });
    expect(await outbox.deleteSent({ olderThanMs: 60_000 })).toBe(1);
    expect(await outbox.stats()).toEqual({ pending: 0, sent: 0, processed: 0, dead: 0 });
  });

  it("validates its arguments", async () => {
    const { outbox } = await setup(db);
    expect(() => new PostgresInbox(db, { outbox: {} as never })).toThrow(InvalidArgumentError);
    expect(() => new OutboxRelay(outbox, { publish: async () => {}, ackTimeoutMs: 0 })).toThrow(
      expect.objectContaining({ argument: "ackTimeoutMs" }),
    );
    await expect(outbox.acknowledge(db, "x")).rejects.toThrow(InvalidArgumentError);
    await expect(transaction(db, (tx) => outbox.acknowledge(tx, ""))).rejects.toThrow(InvalidArgumentError);
  });
});

describe("consumer-acknowledged outbox over RabbitMQ", () => {
  let connection: amqp.ChannelModel;
  let b: Backend;
  beforeAll(async () => {
    [connection, b] = await Promise.all([amqp.connect(RABBIT_URL), BACKENDS[0]!.start(10)]);
  });
  afterAll(async () => {
    await connection?.close();
    await b?.stop();
  });

  it("re-sends messages purged from the queue after the broker confirmed them, and applies each once", async () => {
    const db = b.db;
    const { outbox, apply, applied } = await setup(db);
    const channel = await connection.createConfirmChannel();
    const exchange = `fsk-ack-${randomBytes(4).toString("hex")}`;
    await channel.assertExchange(exchange, "topic", { durable: false, autoDelete: true });
    const { queue } = await channel.assertQueue("", { exclusive: true });
    await channel.bindQueue(queue, exchange, "#");
    const rabbit = new RabbitMqPublisher(channel, { exchange });

    const N = 40;
    const ids = Array.from({ length: N }, (_, i) => `r${i}`);
    await enqueueAll(db, outbox, ids);
    const relay = new OutboxRelay(outbox, {
      publish: rabbit.publish,
      ackTimeoutMs: 300,
      pollIntervalMs: 20,
    });
    // Every message is confirmed by the broker, then the queue loses all of them.
    expect(await relay.runOnce()).toMatchObject({ claimed: N, sent: N });
    expect((await channel.purgeQueue(queue)).messageCount).toBe(N);

    const consumer = await connection.createChannel();
    await consumer.consume(queue, (msg) => {
      if (!msg) return;
      void apply(readRabbitMessage(msg).id).then(
        () => consumer.ack(msg),
        () => consumer.nack(msg),
      );
    });
    await relay.start();
    try {
      await until(async () => (await outbox.stats()).processed === N, 20_000, "every message processed");
    } finally {
      await relay.stop();
    }
    const counts = await applied();
    expect(counts.size).toBe(N);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(await count(db, `SELECT count(*) AS n FROM ${outbox.table} WHERE attempts >= 2`)).toBe(N);
    await consumer.close();
    await channel.close();
  });
});
