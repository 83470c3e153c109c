// PostgreSQL restarted (immediate stop = a crash, then a start) under a running relay and stream consumer, on
// a private server (never the machine's shared one). A producer keeps enqueueing through the outage, retrying
// failed transactions with the same message ids. Afterwards every message is applied exactly once and marked
// processed, and the relay and the consumer recovered on their own: nobody restarted them.
import pg from "pg";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
import { startPrivatePostgres, type PrivatePostgresServer } from "../support/private-postgres.js";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls until `check` holds; fails after `timeoutMs`. */
async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // the database may be down: keep polling
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

describe("PostgreSQL restarted under a running relay", () => {
  let server: PrivatePostgresServer;
  let srv: PrivateRedis;
  let redis: Redis;
  let db: pg.Pool;
  beforeAll(async () => {
    [server, srv] = await Promise.all([startPrivatePostgres(), startRedis()]);
    redis = srv.client();
    db = new pg.Pool({ connectionString: server.url, max: 8, connectionTimeoutMillis: 2000 });
    // Idle connections die with the server: the pool drops them and opens new ones on demand.
    db.on("error", () => {});
  });
  afterAll(async () => {
    await db?.end();
    await Promise.all([srv?.stop(), server?.destroy()]);
  });

  it("delivers every message exactly-once-applied and recovers without a restart of the relay", async () => {
    const outbox = new PostgresOutbox(db);
    const inbox = new PostgresInbox(db, { outbox });
    await outbox.migrate();
    await inbox.migrate();
    await db.query("CREATE TABLE effects (message_id text NOT NULL)");

    const publisher = new RedisStreamPublisher(redis, { prefix: randomPrefix("pgr") });
    const relayErrors: unknown[] = [];
    const relay = new OutboxRelay(outbox, {
      publish: publisher.publish,
      ackTimeoutMs: 3000,
      leaseMs: 3000,
      pollIntervalMs: 20,
      maxAttempts: 1000,
      backoff: { minTimeoutMs: 20, maxTimeoutMs: 200 },
      onError: (err) => relayErrors.push(err),
    });
    let deliveries = 0;
    let duplicates = 0;
    const consumerErrors: unknown[] = [];
    const consumer = new RedisStreamConsumer(redis, {
      streams: [publisher.streamKey("paid")],
      group: "fx",
      consumer: "c1",
      pollIntervalMs: 20,
      claimIdleMs: 1000,
      maxDeliveries: 1000,
      handler: async (entry) => {
        const { id } = readStreamedMessage(entry);
        deliveries++;
        const outcome = await transaction(db, (tx) =>
          inbox.processOnce(tx, { consumer: "fx", messageId: id }, (t) =>
            t.query("INSERT INTO effects (message_id) VALUES ($1)", [id]),
          ),
        );
        if (outcome === "duplicate") duplicates++;
      },
      onError: (err) => consumerErrors.push(err),
    });
    await relay.start();
    await consumer.start();

    // The producer: one message per transaction, retried with the same id until it commits (a retry after a
    // commit whose answer was lost finds the id and answers duplicate).
    const N = 400;
    let enqueued = 0;
    let producerFailures = 0;
    const producer = (async () => {
      for (let i = 0; i < N; i++) {
        for (;;) {
          try {
            await transaction(db, (tx) => outbox.enqueue(tx, { topic: "paid", id: `m${i}`, payload: { i } }));
            break;
          } catch {
            producerFailures++;
            await sleep(20);
          }
        }
        enqueued = i + 1;
        if (i % 10 === 9) await sleep(5);
      }
    })();

    await until(async () => enqueued >= N / 4, 30_000, "a quarter of the messages enqueued");
    const relayErrorsBefore = relayErrors.length;
    const downAt = performance.now();
    await server.restart();
    const upAt = performance.now();
    // The relay's first fully successful round after the server came back.
    const recovered = until(
      async () => (await relay.runOnce()).claimed >= 0,
      30_000,
      "a relay round after the restart",
    ).then(() => performance.now());
    await producer;
    await until(async () => (await outbox.stats()).processed === N, 120_000, "every message processed");
    const recoveredAt = await recovered;
    await Promise.all([relay.stop(), consumer.stop()]);

    expect(relay.running).toBe(false); // it was running all along, until this stop
    const { rows } = await db.query<{ message_id: string; n: number }>(
      "SELECT message_id, count(*)::int AS n FROM effects GROUP BY 1",
    );
    expect(rows).toHaveLength(N);
    expect(rows.every((r) => Number(r.n) === 1)).toBe(true);
    expect(await outbox.stats()).toEqual({ pending: 0, sent: 0, processed: N, dead: 0 });
    // The outage was felt by the running relay (its rounds failed), and it carried on by itself.
    expect(relayErrors.length).toBeGreaterThan(relayErrorsBefore);
    console.log(
      `pg restart: down+up ${Math.round(upAt - downAt)} ms, relay round ok ${Math.round(recoveredAt - upAt)} ms ` +
        `after the server was back; ${relayErrors.length} relay errors, ${consumerErrors.length} consumer ` +
        `errors, ${producerFailures} producer retries; ${deliveries} deliveries for ${N} messages ` +
        `(${duplicates} duplicates absorbed by the inbox)`,
    );
  }, 240_000);
});
