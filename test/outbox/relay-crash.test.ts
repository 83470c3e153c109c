// A relay killed after publishing and before marking sent: the message is published again when the lease
// runs out, and the consumer's inbox keeps its effect count at 1. End to end: outbox -> relay -> Redis
// Stream -> RedisStreamConsumer -> inbox. On PostgreSQL the relay is a child process that gets SIGKILLed;
// PGlite lives in one process, so there the relay hangs forever after publishing instead.
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SqlClient } from "../../src/internal/sql.js";
import {
  OutboxRelay,
  PostgresInbox,
  PostgresOutbox,
  RedisStreamConsumer,
  RedisStreamPublisher,
  readStreamedMessage,
  transaction,
} from "../../src/outbox/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";
import { BACKENDS, count, fixture, kill, tableName, until, type Backend } from "./helpers.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());

describe.each(BACKENDS)("a relay that dies between publish and mark, on $name", (backend) => {
  let b: Backend;
  let db: SqlClient;
  beforeAll(async () => {
    b = await backend.start(10);
    db = b.db;
  });
  afterAll(async () => b?.stop());

  it("publishes the message again, and the consumer's effect count stays 1", async () => {
    const outbox = new PostgresOutbox(db, { table: tableName("ob") });
    await outbox.migrate();
    const inbox = new PostgresInbox(db, { table: tableName("ib") });
    await inbox.migrate();
    const effects = tableName("fx");
    await db.query(`CREATE TABLE ${effects} (message_id text NOT NULL)`);
    await transaction(db, (tx) =>
      outbox.enqueue(tx, { topic: "paid", id: "order-1:paid", payload: { orderId: 1 } }),
    );

    const prefix = randomPrefix();
    const publisher = new RedisStreamPublisher(redis, { prefix });
    const leaseMs = 800;

    if (backend.name === "PostgreSQL") {
      const { child, next } = fixture("relay-child.ts", {
        DATABASE_URL: b.url!,
        REDIS_URL: srv.url,
        OUTBOX_TABLE: outbox.table,
        PREFIX: prefix,
        LEASE_MS: String(leaseMs),
      });
      try {
        expect(await next()).toEqual({ ready: true });
        expect(await next()).toEqual({ published: "order-1:paid" });
      } finally {
        await kill(child);
      }
    } else {
      // In one process: what the relay did before it died (its claim and its publish), and nothing after.
      const [row] = await outbox.claim(randomUUID(), 10, leaseMs, 10, null);
      await publisher.publish({
        id: row!.id,
        topic: row!.topic,
        key: row!.key,
        payload: row!.payload,
        attempt: Number(row!.attempts),
        createdAt: Math.round(Number(row!.created_ms)),
      });
    }
    expect(await outbox.get("order-1:paid")).toMatchObject({ status: "pending", attempts: 1 });

    // The surviving relay and the consumer.
    const relay = new OutboxRelay(outbox, { leaseMs, pollIntervalMs: 50, publish: publisher.publish });
    const applied: string[] = [];
    const consumer = new RedisStreamConsumer(redis, {
      streams: [publisher.streamKey("paid")],
      group: "g",
      consumer: "c",
      pollIntervalMs: 20,
      handler: async (entry) => {
        const m = readStreamedMessage<{ orderId: number }>(entry);
        const outcome = await transaction(db, (tx) =>
          inbox.processOnce(tx, { consumer: "fx", messageId: m.id }, (t) =>
            t.query(`INSERT INTO ${effects} (message_id) VALUES ($1)`, [m.id]),
          ),
        );
        applied.push(outcome);
      },
    });
    await Promise.all([relay.start(), consumer.start()]);
    try {
      await until(() => applied.length === 2, 15_000, "both copies to be consumed");
    } finally {
      await Promise.all([relay.stop(), consumer.stop()]);
    }
    expect(await redis.xlen(publisher.streamKey("paid"))).toBe(2); // published twice
    expect(applied).toEqual(["processed", "duplicate"]);
    expect(await count(db, `SELECT count(*) AS n FROM ${effects}`)).toBe(1);
    expect(await outbox.get("order-1:paid")).toMatchObject({ status: "sent", attempts: 2 });
  });
});
