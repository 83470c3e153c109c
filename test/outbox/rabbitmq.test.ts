// RabbitMqPublisher against the RabbitMQ on the machine (RABBITMQ_URL, default amqp://guest:guest@127.0.0.1:5672):
// a relay marks a message sent only after the broker's publisher confirm; a refused publish is retried.
import { randomBytes } from "node:crypto";
import amqp from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError, UnexpectedReplyError } from "../../src/errors.js";
import type { SqlClient } from "../../src/internal/sql.js";
import {
  OutboxRelay,
  PostgresInbox,
  PostgresOutbox,
  RabbitMqPublisher,
  readRabbitMessage,
  transaction,
} from "../../src/outbox/index.js";
import { BACKENDS, count, tableName, until, type Backend } from "./helpers.js";

const URL = process.env.RABBITMQ_URL ?? "amqp://guest:guest@127.0.0.1:5672";

let connection: amqp.ChannelModel;
let b: Backend;
let db: SqlClient;
beforeAll(async () => {
  [connection, b] = await Promise.all([amqp.connect(URL), BACKENDS[1]!.start()]);
  db = b.db;
});
afterAll(async () => {
  await connection?.close();
  await b?.stop();
});

async function freshOutbox(): Promise<PostgresOutbox> {
  const outbox = new PostgresOutbox(db, { table: tableName("ob") });
  await outbox.migrate();
  return outbox;
}

describe("RabbitMqPublisher", () => {
  it("delivers outbox messages with publisher confirms; the consumer applies each once", async () => {
    const outbox = await freshOutbox();
    const inbox = new PostgresInbox(db, { table: tableName("ib") });
    await inbox.migrate();
    const effects = tableName("fx");
    await db.query(`CREATE TABLE ${effects} (message_id text NOT NULL, amount int NOT NULL)`);

    const channel = await connection.createConfirmChannel();
    const exchange = `fsk-test-${randomBytes(4).toString("hex")}`;
    await channel.assertExchange(exchange, "topic", { durable: false, autoDelete: true });
    const { queue } = await channel.assertQueue("", { exclusive: true });
    await channel.bindQueue(queue, exchange, "orders.#");

    const N = 200;
    await transaction(db, async (tx) => {
      for (let i = 0; i < N; i++) {
        await outbox.enqueue(tx, {
          topic: "orders.paid",
          id: `p${i}`,
          key: `o${i % 10}`,
          payload: { amount: i },
        });
      }
    });
    const rabbit = new RabbitMqPublisher(channel, { exchange });
    // The first attempt of every 20th message is published but its relay "loses" the confirm afterwards:
    // the broker gets it twice and the consumer must apply it once.
    const relay = new OutboxRelay(outbox, {
      batchSize: 50,
      backoff: { minTimeoutMs: 0 },
      publish: async (m) => {
        await rabbit.publish(m);
        if (m.attempt === 1 && Number(m.id.slice(1)) % 20 === 0) throw new Error("relay lost the confirm");
      },
    });

    const consumer = await connection.createChannel();
    const received: string[] = [];
    await consumer.consume(queue, async (msg) => {
      if (!msg) return;
      const m = readRabbitMessage<{ amount: number }>(msg);
      expect(m.topic).toBe("orders.paid");
      expect(m.key).toBe(`o${Number(m.id.slice(1)) % 10}`);
      expect(msg.properties.contentType).toBe("application/json");
      expect(msg.properties.deliveryMode).toBe(2);
      await transaction(db, (tx) =>
        inbox.processOnce(tx, { consumer: "fx", messageId: m.id }, (t) =>
          t.query(`INSERT INTO ${effects} VALUES ($1, $2)`, [m.id, m.payload.amount]),
        ),
      );
      received.push(m.id);
      consumer.ack(msg);
    });

    for (let i = 0; i < 10 && (await outbox.stats()).sent < N; i++) await relay.runOnce();
    expect(await outbox.stats()).toEqual({ pending: 0, sent: N, processed: 0, dead: 0 });
    await until(() => received.length === N + N / 20, 10_000, "every delivery");
    expect(new Set(received).size).toBe(N);
    expect(await count(db, `SELECT count(*) AS n FROM ${effects}`)).toBe(N);
    expect(await count(db, `SELECT sum(amount) AS n FROM ${effects}`)).toBe((N * (N - 1)) / 2);
    await consumer.close();
    await channel.close();
  });

  it("fails the attempt when the broker refuses the message, and the relay retries it later", async () => {
    const outbox = await freshOutbox();
    await transaction(db, (tx) => outbox.enqueue(tx, { topic: "t", id: "lost", payload: 1 }));
    const channel = await connection.createConfirmChannel();
    channel.on("error", () => {}); // the broker closes the channel: 404 NOT_FOUND
    const rabbit = new RabbitMqPublisher(channel, { exchange: `missing-${randomBytes(4).toString("hex")}` });
    const relay = new OutboxRelay(outbox, { backoff: { minTimeoutMs: 60_000 }, publish: rabbit.publish });
    expect(await relay.runOnce()).toEqual({ claimed: 1, sent: 0, retried: 1, dead: 0, resent: 0 });
    const m = await outbox.get("lost");
    expect(m).toMatchObject({ status: "pending", attempts: 1 });
    expect(m!.lastError).toMatch(/closed|NOT_FOUND/i);

    // On the closed channel the next publish fails at once (amqplib throws), and is recorded the same way.
    await db.query(`UPDATE ${outbox.table} SET available_at = now() WHERE id = 'lost'`);
    expect(await relay.runOnce()).toEqual({ claimed: 1, sent: 0, retried: 1, dead: 0, resent: 0 });
    expect((await outbox.get("lost"))!.lastError).toMatch(/closed/i);
  });

  it("times out when no confirm arrives", async () => {
    const silent = { publish: () => true }; // a channel that never confirms
    const rabbit = new RabbitMqPublisher(silent, { exchange: "", confirmTimeoutMs: 50 });
    await expect(
      rabbit.publish({ id: "a", topic: "q", key: null, payload: 1, attempt: 1, createdAt: 0 }),
    ).rejects.toThrow(/no publisher confirm within 50 ms/);
  });

  it("validates its arguments", () => {
    expect(() => new RabbitMqPublisher({} as never, { exchange: "" })).toThrow(InvalidArgumentError);
    expect(() => new RabbitMqPublisher({ publish: () => true }, {} as never)).toThrow(InvalidArgumentError);
    expect(
      () => new RabbitMqPublisher({ publish: () => true }, { exchange: "", persistant: true } as never),
    ).toThrow(expect.objectContaining({ argument: "options.persistant" }));
    expect(() => readRabbitMessage({ content: Buffer.from("{}"), properties: {} })).toThrow(
      UnexpectedReplyError,
    );
  });
});
