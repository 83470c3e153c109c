// OutboxRelay throughput with 1 and 4 relays (a no-op publish, which measures the relay's own claim and mark
// statements, and a publish to a Redis Stream), and PostgresInbox.processOnce next to a bare
// `INSERT … ON CONFLICT DO NOTHING`, on a private database of the machine's PostgreSQL.
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import pg from "pg";
import {
  OutboxRelay,
  PostgresInbox,
  PostgresOutbox,
  RedisStreamPublisher,
  transaction,
  type OutboxMessage,
} from "../src/outbox/index.js";
import { compare, ratio, table, type BenchContext, type BenchSection } from "./lib.js";

interface RelayRun {
  readonly relays: number;
  readonly transport: string;
  readonly messages: number;
  readonly seconds: number;
  readonly perSecond: number;
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

export default async function outboxBench(ctx: BenchContext): Promise<BenchSection> {
  const dbName = `fsk_bench_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: ctx.databaseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const url = new URL(ctx.databaseUrl);
  url.pathname = `/${dbName}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 16 });
  pool.on("error", () => {}); // the DROP … WITH (FORCE) below ends idle connections
  const redis = new Redis(ctx.redisUrl);
  const prefix = `bench${randomBytes(4).toString("hex")}`;
  const publisher = new RedisStreamPublisher(redis, { prefix });

  try {
    const outbox = new PostgresOutbox(pool);
    await outbox.migrate();

    // Relay throughput: fill the outbox (untimed), then time k relays until every message is sent.
    const messages = Math.min(50_000, Math.max(2_000, ctx.roundMs * 10));
    const transports: [string, (m: OutboxMessage) => Promise<unknown>][] = [
      ["no-op", async () => {}],
      ["Redis Stream (XADD)", publisher.publish],
    ];
    const runs: RelayRun[] = [];
    const drain = async (
      relays: number,
      transport: string,
      publish: (m: OutboxMessage) => Promise<unknown>,
    ) => {
      await pool.query(`TRUNCATE ${outbox.table}`);
      await pool.query(
        `INSERT INTO ${outbox.table} (id, topic, key, payload)
         SELECT 'm' || i, 'bench', 'k' || (i % 64), jsonb_build_object('i', i) FROM generate_series(1, $1) AS i`,
        [messages],
      );
      await pool.query(`VACUUM ANALYZE ${outbox.table}`);
      const workers = Array.from(
        { length: relays },
        () => new OutboxRelay(outbox, { batchSize: 100, pollIntervalMs: 5, publish }),
      );
      const started = process.hrtime.bigint();
      await Promise.all(
        workers.map(async (relay) => {
          while ((await relay.runOnce()).claimed > 0);
        }),
      );
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const sent = Number(
        (await pool.query(`SELECT count(*) AS n FROM ${outbox.table} WHERE status = 'sent'`)).rows[0].n,
      );
      if (sent !== messages) throw new Error(`relays sent ${sent} of ${messages}`);
      return seconds;
    };
    for (const [transport, publish] of transports) {
      await drain(1, transport, publish); // warm-up
      const times = new Map<number, number[]>([
        [1, []],
        [4, []],
      ]);
      for (let r = 0; r < ctx.rounds; r++) {
        for (const relays of [1, 4]) times.get(relays)!.push(await drain(relays, transport, publish));
      }
      for (const [relays, ts] of times) {
        const seconds = [...ts].sort((a, b) => a - b)[Math.floor(ts.length / 2)]!;
        runs.push({ relays, transport, messages, seconds, perSecond: messages / seconds });
      }
      await redis.del(publisher.streamKey("bench"));
    }

    // processOnce against the bare statement it is built on.
    const inbox = new PostgresInbox(pool);
    await inbox.migrate();
    const concurrency = 16;
    const rows = await compare(ctx, [
      {
        name: "bare INSERT … ON CONFLICT DO NOTHING",
        concurrency,
        fn: (i) =>
          pool.query(
            `INSERT INTO ${inbox.table} (consumer, message_id) VALUES ('bare', $1) ON CONFLICT DO NOTHING`,
            [`m${i}`],
          ),
      },
      {
        name: "the same INSERT in BEGIN … COMMIT",
        concurrency,
        fn: async (i) => {
          const client = await pool.connect();
          try {
            await client.query("BEGIN");
            await client.query(
              `INSERT INTO ${inbox.table} (consumer, message_id) VALUES ('tx', $1) ON CONFLICT DO NOTHING`,
              [`m${i}`],
            );
            await client.query("COMMIT");
          } finally {
            client.release();
          }
        },
      },
      {
        name: "transaction() + processOnce",
        concurrency,
        fn: (i) =>
          transaction(pool, (tx) =>
            inbox.processOnce(tx, { consumer: "once", messageId: `m${i}` }, async () => {}),
          ),
      },
    ]);

    const r1 = runs.find((r) => r.transport === "no-op" && r.relays === 1)!;
    const r4 = runs.find((r) => r.transport === "no-op" && r.relays === 4)!;
    const relayTable = [
      "| relays | publish | messages | seconds | messages/s |",
      "|---:|---|---:|---:|---:|",
      ...runs.map(
        (r) =>
          `| ${r.relays} | ${r.transport} | ${fmt(r.messages)} | ${r.seconds.toFixed(2)} | ${fmt(r.perSecond)} |`,
      ),
    ].join("\n");
    const once = ratio(rows, "transaction() + processOnce", "bare INSERT … ON CONFLICT DO NOTHING");
    const inTx = ratio(rows, "transaction() + processOnce", "the same INSERT in BEGIN … COMMIT");
    return {
      title: "outbox: OutboxRelay throughput and PostgresInbox.processOnce",
      body: `Relays drain a pre-filled outbox (${fmt(messages)} messages, batches of 100, \`FOR UPDATE SKIP LOCKED\`
claims); the median of ${ctx.rounds} drains is reported. "no-op" measures the relay's own statements (one
claim and one mark per batch); "Redis Stream" adds one \`XADD\` per message through \`RedisStreamPublisher\`.

${relayTable}

4 relays against 1 (no-op publish): **${(r4.perSecond / r1.perSecond).toFixed(2)}x**.

\`processOnce\` inside \`transaction()\` (check out a connection, BEGIN, the inbox INSERT, COMMIT) at
concurrency ${concurrency} on a 16-connection \`pg.Pool\`, next to the bare autocommit INSERT it is built on and
to the same INSERT in a hand-written transaction:

${table(rows, "bare INSERT … ON CONFLICT DO NOTHING")}

\`processOnce\` against the bare INSERT: **${once.toFixed(2)}x** (the price of the transaction's extra round
trips); against the hand-written transaction: **${inTx.toFixed(2)}x** (the price of the library).`,
    };
  } finally {
    await redis.quit();
    await pool.end();
    await admin.query(`DROP DATABASE ${dbName} WITH (FORCE)`);
    await admin.end();
  }
}
