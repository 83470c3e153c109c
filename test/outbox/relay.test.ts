// OutboxRelay on the machine's PostgreSQL and on PGlite: several relays deliver every message at least once
// and, through the inbox, apply it exactly once; poison messages die after exactly maxAttempts; retries are
// scheduled on the database clock with p-retry's backoff.
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { InvalidArgumentError } from "../../src/errors.js";
import type { SqlClient } from "../../src/internal/sql.js";
import {
  DEFAULT_RELAY_BACKOFF,
  OutboxRelay,
  PostgresInbox,
  PostgresOutbox,
  retryDelayMs,
  transaction,
  type OutboxMessage,
} from "../../src/outbox/index.js";
import { BACKENDS, count, sleep, tableName, until, type Backend } from "./helpers.js";

/** The database's clock in whole ms, rounded up: `availableAt` is rounded to the ms, so a sub-ms "now" could
 * make a schedule of exactly `delay` ms look half a ms longer. */
async function dbNowMs(db: SqlClient): Promise<number> {
  const { rows } = await db.query("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS t");
  return Math.ceil(Number((rows[0] as { t: number }).t));
}

describe.each(BACKENDS)("OutboxRelay on $name", (backend) => {
  let b: Backend;
  let db: SqlClient;
  beforeAll(async () => {
    b = await backend.start(24);
    db = b.db;
  });
  afterAll(async () => b?.stop());

  /** A dedicated LISTEN connection on PostgreSQL; PGlite listens on itself. End it with `.end()` unless `db`. */
  async function listenClient(): Promise<pg.Client | SqlClient> {
    if (backend.name !== "PostgreSQL") return db;
    const client = new pg.Client({ connectionString: b.url });
    await client.connect();
    return client;
  }

  async function freshOutbox(notify = false): Promise<PostgresOutbox> {
    const outbox = new PostgresOutbox(db, { table: tableName("ob"), notify });
    await outbox.migrate();
    return outbox;
  }

  async function enqueueMany(
    outbox: PostgresOutbox,
    n: number,
    payload: (i: number) => unknown = (i) => ({ i }),
  ) {
    const chunk = 500;
    const chunks = Array.from({ length: Math.ceil(n / chunk) }, (_, c) => c);
    await Promise.all(
      chunks.map((c) =>
        transaction(db, async (tx) => {
          for (let i = c * chunk; i < Math.min(n, (c + 1) * chunk); i++) {
            await outbox.enqueue(tx, { topic: "t", id: `m${i}`, key: `k${i % 7}`, payload: payload(i) });
          }
        }),
      ),
    );
  }

  it(
    "4 relays over 10,000 messages (2,000 on PGlite): each published at least once and applied exactly once through the inbox",
    { timeout: 120_000 },
    async () => {
      const outbox = await freshOutbox();
      const inbox = new PostgresInbox(db, { table: tableName("ib") });
      await inbox.migrate();
      const effects = tableName("fx");
      await db.query(`CREATE TABLE ${effects} (message_id text NOT NULL)`); // no unique key: duplicates would show
      // The acceptance size on PostgreSQL; PGlite (one in-process connection, every transaction in turn) runs
      // the same scenario on a smaller batch, as the stock contract does.
      const N = backend.name === "PostgreSQL" ? 10_000 : 2_000;
      await enqueueMany(outbox, N);

      const published = new Map<string, number>();
      const byRelay = [0, 0, 0, 0];
      // Every 25th message loses its acknowledgement on the first attempt (applied, then publish throws), so
      // the relay publishes it again and the inbox must see the duplicate.
      const lostAck = (id: string) => Number(id.slice(1)) % 25 === 0;
      const relays = byRelay.map(
        (_, r) =>
          new OutboxRelay(outbox, {
            batchSize: 100,
            // PGlite is one connection: parallel publishes would only queue for it.
            concurrency: backend.name === "PostgreSQL" ? 4 : 1,
            pollIntervalMs: 10,
            backoff: { minTimeoutMs: 0 },
            publish: async (m: OutboxMessage) => {
              published.set(m.id, (published.get(m.id) ?? 0) + 1);
              byRelay[r]!++;
              await transaction(db, (tx) =>
                inbox.processOnce(tx, { consumer: "fx", messageId: m.id }, (t) =>
                  t.query(`INSERT INTO ${effects} (message_id) VALUES ($1)`, [m.id]),
                ),
              );
              if (m.attempt === 1 && lostAck(m.id)) throw new Error("acknowledgement lost");
            },
            onError: (err) => {
              throw err;
            },
          }),
      );
      const started = performance.now();
      await Promise.all(relays.map((r) => r.start()));
      await until(async () => (await outbox.stats()).sent === N, 100_000, "every message sent");
      await Promise.all(relays.map((r) => r.stop()));
      const seconds = (performance.now() - started) / 1000;
      console.log(`${backend.name}: 4 relays delivered ${N} messages in ${seconds.toFixed(1)} s`);

      expect(published.size).toBe(N);
      for (let i = 0; i < N; i++) {
        // SKIP LOCKED: no message was claimed by two relays at once; only the lost acks were published twice.
        expect(published.get(`m${i}`)).toBe(lostAck(`m${i}`) ? 2 : 1);
      }
      expect(await count(db, `SELECT count(*) AS n FROM ${effects}`)).toBe(N);
      expect(await count(db, `SELECT count(DISTINCT message_id) AS n FROM ${effects}`)).toBe(N);
      expect(await count(db, `SELECT count(*) AS n FROM ${inbox.table}`)).toBe(N);
      expect(await outbox.stats()).toEqual({ pending: 0, sent: N, processed: 0, dead: 0 });
      expect(await count(db, `SELECT count(*) AS n FROM ${outbox.table} WHERE attempts = 2`)).toBe(N / 25);
      if (backend.name === "PostgreSQL")
        expect(byRelay.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
    },
  );

  it("a poison message is dead after exactly maxAttempts, with its error, while the others flow", async () => {
    const outbox = await freshOutbox();
    await transaction(db, (tx) =>
      outbox.enqueue(tx, { topic: "t", id: "poison", payload: { poison: true } }),
    );
    await enqueueMany(outbox, 49);
    const calls = new Map<string, number>();
    const sentAt = new Map<string, number>();
    let fixed = false;
    const relay = new OutboxRelay(outbox, {
      batchSize: 10,
      pollIntervalMs: 10,
      maxAttempts: 4,
      backoff: { minTimeoutMs: 100, factor: 1, randomize: false },
      publish: async (m) => {
        calls.set(m.id, (calls.get(m.id) ?? 0) + 1);
        if ((m.payload as { poison?: boolean }).poison && !fixed)
          throw new TypeError("cannot deliver poison");
        sentAt.set(m.id, performance.now());
      },
    });
    await relay.start();
    await until(async () => (await outbox.stats()).dead === 1, 20_000, "the poison message to die");
    const diedAt = performance.now();
    await relay.stop();

    expect(calls.get("poison")).toBe(4);
    expect(await outbox.stats()).toEqual({ pending: 0, sent: 49, processed: 0, dead: 1 });
    const dead = await outbox.get("poison");
    expect(dead).toMatchObject({
      status: "dead",
      attempts: 4,
      lastError: "TypeError: cannot deliver poison",
    });
    expect(dead!.deadAt).not.toBeNull();
    // The others did not wait for the poison message's retries.
    expect(Math.max(...sentAt.values())).toBeLessThan(diedAt - 200);
    for (let i = 0; i < 49; i++) expect(calls.get(`m${i}`)).toBe(1);

    const listed = await relay.listDead();
    expect(listed.map((m) => [m.id, m.attempts, m.lastError])).toEqual([
      ["poison", 4, "TypeError: cannot deliver poison"],
    ]);
    expect(await outbox.listDead({ topic: "other" })).toEqual([]);

    // After the fix: back in line with fresh attempts, and delivered.
    fixed = true;
    expect(await relay.retryDead("poison")).toBe(true);
    expect(await relay.retryDead("poison")).toBe(false); // no longer dead
    expect(await relay.retryDead("m1")).toBe(false); // sent, not dead
    expect(await relay.runOnce()).toEqual({ claimed: 1, sent: 1, retried: 0, dead: 0, resent: 0 });
    expect(await outbox.get("poison")).toMatchObject({ status: "sent", attempts: 1 });
  });

  it("schedules retries from the database clock with p-retry's backoff", async () => {
    const outbox = await freshOutbox();
    await transaction(db, (tx) => outbox.enqueue(tx, { topic: "t", id: "r", payload: 1 }));
    const relay = new OutboxRelay(outbox, {
      maxAttempts: 5,
      backoff: { minTimeoutMs: 60_000, factor: 3, randomize: false },
      publish: async () => {
        throw new Error("down");
      },
    });
    // The application's clock is ten years off; the schedule must not notice.
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.UTC(2040, 0, 1));
    try {
      expect(await relay.runOnce()).toEqual({ claimed: 1, sent: 0, retried: 1, dead: 0, resent: 0 });
      let now = await dbNowMs(db);
      let m = await outbox.get("r");
      expect(m).toMatchObject({ status: "pending", attempts: 1, lastError: "Error: down" });
      expect(m!.availableAt - now).toBeGreaterThan(60_000 - 5_000);
      expect(m!.availableAt - now).toBeLessThanOrEqual(60_000);
      expect(await relay.runOnce()).toEqual({ claimed: 0, sent: 0, retried: 0, dead: 0, resent: 0 }); // not due yet

      await db.query(`UPDATE ${outbox.table} SET available_at = now() WHERE id = 'r'`);
      await relay.runOnce();
      now = await dbNowMs(db);
      m = await outbox.get("r");
      expect(m!.attempts).toBe(2);
      expect(m!.availableAt - now).toBeGreaterThan(180_000 - 5_000);
      expect(m!.availableAt - now).toBeLessThanOrEqual(180_000);
    } finally {
      vi.useRealTimers();
    }
  });

  it("leaves a message to another relay when its relay dies mid-publish (lease)", async () => {
    const outbox = await freshOutbox();
    await transaction(db, (tx) => outbox.enqueue(tx, { topic: "t", id: "x", payload: 1 }));
    const seen: number[] = [];
    // A relay claimed it, published it and died before marking it: its claim is all that is left.
    expect(await outbox.claim(randomUUID(), 10, 300, 10, null)).toHaveLength(1);
    seen.push(1);
    const other = new OutboxRelay(outbox, { leaseMs: 300, publish: async (m) => void seen.push(m.attempt) });
    expect((await other.runOnce()).claimed).toBe(0); // still leased
    await until(async () => (await other.runOnce()).sent === 1, 5_000, "the lease to run out");
    expect(seen).toEqual([1, 2]);
    expect(await outbox.get("x")).toMatchObject({ status: "sent", attempts: 2 });
  });

  it("marks a message dead when the relay of its last attempt died", async () => {
    const outbox = await freshOutbox();
    await transaction(db, (tx) => outbox.enqueue(tx, { topic: "t", id: "y", payload: 1 }));
    // The relay of its one attempt claimed it and died.
    expect(await outbox.claim(randomUUID(), 10, 200, 1, null)).toHaveLength(1);
    await sleep(400);
    const other = new OutboxRelay(outbox, { maxAttempts: 1, publish: async () => {} });
    expect(await other.runOnce()).toEqual({ claimed: 1, sent: 0, retried: 0, dead: 1, resent: 0 });
    const m = await outbox.get("y");
    expect(m).toMatchObject({ status: "dead", attempts: 1 });
    expect(m!.lastError).toMatch(/did not finish within the lease/);
  });

  it("delivers a delayed message when it comes due, not before", async () => {
    const outbox = await freshOutbox();
    await transaction(db, (tx) => outbox.enqueue(tx, { topic: "t", id: "later", payload: 1, delayMs: 700 }));
    const got: string[] = [];
    const relay = new OutboxRelay(outbox, { publish: async (m) => void got.push(m.id) });
    expect((await relay.runOnce()).claimed).toBe(0);
    await sleep(300);
    expect((await relay.runOnce()).claimed).toBe(0);
    await until(async () => (await relay.runOnce()).sent === 1, 5_000, "the delayed message");
    expect(got).toEqual(["later"]);
  });

  it("publishes concurrently across keys and in order within a key", async () => {
    const outbox = await freshOutbox();
    await transaction(db, async (tx) => {
      for (let i = 0; i < 30; i++)
        await outbox.enqueue(tx, { topic: "t", id: `c${i}`, key: `k${i % 3}`, payload: i });
      for (let i = 0; i < 4; i++) await outbox.enqueue(tx, { topic: "t", id: `n${i}`, payload: i });
    });
    const perKey = new Map<string, number[]>();
    let active = 0;
    let peak = 0;
    const busy = new Set<string>();
    const relay = new OutboxRelay(outbox, {
      batchSize: 100,
      concurrency: 3,
      publish: async (m) => {
        if (m.key !== null) {
          expect(busy.has(m.key)).toBe(false); // never two messages of one key at once
          busy.add(m.key);
        }
        peak = Math.max(peak, ++active);
        await sleep(Math.random() * 5);
        if (m.key !== null) perKey.set(m.key, [...(perKey.get(m.key) ?? []), m.payload as number]);
        active--;
        if (m.key !== null) busy.delete(m.key);
      },
    });
    expect(await relay.runOnce()).toEqual({ claimed: 34, sent: 34, retried: 0, dead: 0, resent: 0 });
    expect(peak).toBe(3);
    for (let k = 0; k < 3; k++) {
      expect(perKey.get(`k${k}`)).toEqual(Array.from({ length: 10 }, (_, j) => j * 3 + k));
    }
  });

  it("delivers only its topics", async () => {
    const outbox = await freshOutbox();
    await transaction(db, async (tx) => {
      await outbox.enqueue(tx, { topic: "a", id: "a1", payload: 1 });
      await outbox.enqueue(tx, { topic: "b", id: "b1", payload: 1 });
    });
    const got: string[] = [];
    const relay = new OutboxRelay(outbox, { topics: ["b"], publish: async (m) => void got.push(m.id) });
    await relay.runOnce();
    expect(got).toEqual(["b1"]);
    expect((await outbox.get("a1"))!.status).toBe("pending");
  });

  it("stop() waits for the round in flight to publish and mark", async () => {
    const outbox = await freshOutbox();
    await enqueueMany(outbox, 10);
    let started = 0;
    const relay = new OutboxRelay(outbox, {
      batchSize: 3,
      pollIntervalMs: 10,
      publish: async () => {
        started++;
        await sleep(100);
      },
    });
    await relay.start();
    await until(() => started === 1, 5_000, "the first publish");
    await relay.stop();
    expect(relay.running).toBe(false);
    expect(started).toBe(3);
    expect(await outbox.stats()).toEqual({ pending: 7, sent: 3, processed: 0, dead: 0 });
    expect(
      await count(db, `SELECT count(*) AS n FROM ${outbox.table} WHERE attempts > 0 AND status = 'pending'`),
    ).toBe(0);
  });

  it("a publish that never settles fails its attempt after publishTimeoutMs; the others flow, stop() returns", async () => {
    const outbox = await freshOutbox();
    await transaction(db, async (tx) => {
      await outbox.enqueue(tx, { topic: "t", id: "hung", payload: 0 });
      for (let i = 0; i < 3; i++) await outbox.enqueue(tx, { topic: "t", id: `ok${i}`, payload: i });
    });
    const published: string[] = [];
    const signals: AbortSignal[] = [];
    const relay = new OutboxRelay(outbox, {
      publishTimeoutMs: 150,
      maxAttempts: 2,
      backoff: () => 0,
      pollIntervalMs: 10,
      publish: (m, { signal }) => {
        if (m.id !== "hung") return Promise.resolve(void published.push(m.id));
        signals.push(signal);
        return new Promise(() => {}); // a broker connection that hangs
      },
    });
    expect(await relay.runOnce()).toMatchObject({ claimed: 4, sent: 3, retried: 1 });
    expect(signals[0]!.aborted).toBe(true);
    expect(String(signals[0]!.reason)).toMatch(/did not settle within 150 ms/);
    expect((await outbox.get("hung"))!.lastError).toMatch(/did not settle within 150 ms/);
    await relay.start();
    await until(async () => (await outbox.stats()).dead === 1, 5_000, "the hung message's death");
    await relay.stop();
    expect(published.sort()).toEqual(["ok0", "ok1", "ok2"]);
    expect(await outbox.stats()).toEqual({ pending: 0, sent: 3, processed: 0, dead: 1 });
  });

  it("deletes sent messages after the retention period", async () => {
    const outbox = await freshOutbox();
    await enqueueMany(outbox, 6);
    const relay = new OutboxRelay(outbox, { publish: async () => {} });
    await relay.runOnce();
    await db.query(
      `UPDATE ${outbox.table} SET sent_at = now() - interval '2 hours' WHERE id IN ('m0', 'm1', 'm2')`,
    );
    expect(await outbox.deleteSent({ olderThanMs: 3 * 3_600_000 })).toBe(0);
    expect(await outbox.deleteSent({ olderThanMs: 3_600_000, limit: 2 })).toBe(2);

    const cleaner = new OutboxRelay(outbox, {
      retentionMs: 3_600_000,
      pollIntervalMs: 10,
      publish: async () => {},
    });
    await cleaner.start();
    await until(async () => (await outbox.stats()).sent === 3, 5_000, "the retention cleanup");
    await cleaner.stop();
    expect(await outbox.get("m3")).not.toBeNull();
  });

  it("wakes up on NOTIFY instead of waiting for the next poll", async () => {
    const outbox = await freshOutbox(true);
    const listen = await listenClient();
    const got: string[] = [];
    const relay = new OutboxRelay(outbox, {
      pollIntervalMs: 60_000,
      listen: listen as never,
      publish: async (m) => void got.push(m.id),
    });
    try {
      await relay.start();
      await sleep(200); // the first round found nothing; the relay now sleeps for a minute
      await transaction(db, (tx) => outbox.enqueue(tx, { topic: "t", id: "n1", payload: 1 }));
      await until(() => got.length === 1, 5_000, "the NOTIFY wake-up");
      expect(got).toEqual(["n1"]);
    } finally {
      await relay.stop();
      if (listen !== db) await (listen as pg.Client).end();
    }
  });

  it("a round never outlasts its lease: against a hung broker, what it cannot finish in time is left unattempted", async () => {
    const outbox = await freshOutbox();
    await enqueueMany(outbox, 10);
    const leaseMs = 1_000; // publishTimeoutMs: 500
    const attemptedByA: string[] = [];
    const a = new OutboxRelay(outbox, {
      leaseMs,
      batchSize: 10,
      publish: (m) => {
        attemptedByA.push(m.id);
        return new Promise(() => {}); // a hung broker
      },
    });
    const t0 = performance.now();
    expect(await a.runOnce()).toMatchObject({ claimed: 10, sent: 0, retried: 1 });
    expect(performance.now() - t0).toBeLessThan(leaseMs + 300); // the mark included
    expect(attemptedByA).toHaveLength(1);
    // The nine it did not attempt are due at once, for any relay, their attempt not counted.
    const rows = await Promise.all(Array.from({ length: 10 }, (_, i) => outbox.get(`m${i}`)));
    expect(rows.filter((r) => r!.attempts === 0)).toHaveLength(9);
    const published: string[] = [];
    const b2 = new OutboxRelay(outbox, {
      leaseMs,
      batchSize: 10,
      publish: async (m) => void published.push(m.id),
    });
    expect(await b2.runOnce()).toMatchObject({ claimed: 9, sent: 9 });
    expect(published).toHaveLength(9);
  });

  it("start() called while stop() drains its round starts again once the stop is done", async () => {
    const outbox = await freshOutbox();
    await enqueueMany(outbox, 2);
    const relay = new OutboxRelay(outbox, { pollIntervalMs: 10, publish: () => sleep(150) });
    await relay.start();
    await sleep(50); // a publish in flight
    const stopping = relay.stop();
    await relay.start(); // the restart must not be lost
    await stopping;
    expect(relay.running).toBe(true);
    await until(async () => (await outbox.stats()).sent === 2, 5_000, "both sent");
    await relay.stop();
    expect(relay.running).toBe(false);
  });

  it("wakes up on NOTIFY with a schema-qualified table name too long for a channel", async () => {
    const schema = `s_${tableName("x")}_with_a_long_schema_name`.slice(0, 51);
    await db.query(`CREATE SCHEMA ${schema}`);
    const outbox = new PostgresOutbox(db, { table: `${schema}.transactional_outbox_messages`, notify: true });
    await outbox.migrate();
    expect(Buffer.byteLength(outbox.channel)).toBeLessThanOrEqual(63);
    const listen = await listenClient();
    const got: string[] = [];
    const relay = new OutboxRelay(outbox, {
      pollIntervalMs: 60_000,
      listen: listen as never,
      publish: async (m) => void got.push(m.id),
    });
    try {
      await relay.start();
      await sleep(200);
      await transaction(db, (tx) => outbox.enqueue(tx, { topic: "t", id: "long", payload: 1 }));
      await until(() => got.length === 1, 5_000, "the NOTIFY wake-up");
    } finally {
      await relay.stop();
      if (listen !== db) await (listen as pg.Client).end();
    }
  });

  it("stop() while start() sets up LISTEN leaves nothing running or listening; concurrent starts start once", async () => {
    const outbox = await freshOutbox(true);
    const listen = await listenClient();
    let rounds = 0;
    const relay = new OutboxRelay(outbox, {
      pollIntervalMs: 60_000,
      listen: listen as never,
      publish: async () => void rounds++,
    });
    try {
      const starting = relay.start();
      await relay.stop();
      await starting;
      expect(relay.running).toBe(false);
      // Not listening: a committed message wakes nobody.
      await transaction(db, (tx) => outbox.enqueue(tx, { topic: "t", id: "quiet", payload: 1 }));
      await sleep(200);
      expect(rounds).toBe(0);
      // Two starts at once: one loop, one LISTEN; it then works and stops cleanly.
      await Promise.all([relay.start(), relay.start()]);
      expect(relay.running).toBe(true);
      await until(() => rounds === 1, 5_000, "the first round");
      await relay.stop();
      expect(relay.running).toBe(false);
    } finally {
      await relay.stop();
      if (listen !== db) await (listen as pg.Client).end();
    }
  });

  it("records an error message holding NUL (PostgreSQL text cannot) with a replacement character", async () => {
    const outbox = await freshOutbox();
    await transaction(db, (tx) => outbox.enqueue(tx, { topic: "t", id: "nul", payload: 1 }));
    const relay = new OutboxRelay(outbox, {
      backoff: () => 0,
      publish: async () => {
        throw new Error("broker said \u0000 no");
      },
    });
    expect(await relay.runOnce()).toMatchObject({ claimed: 1, retried: 1 });
    expect((await outbox.get("nul"))!.lastError).toBe("Error: broker said \ufffd no");
  });
});

describe("OutboxRelay options", () => {
  const outbox = new PostgresOutbox({ query: async () => ({ rows: [] }) });
  it("validates up front, naming the option", () => {
    const publish = async () => {};
    const bad: [string, object][] = [
      ["publish", {}],
      ["batchSize", { publish, batchSize: 0 }],
      ["pollIntervalMs", { publish, pollIntervalMs: 1.5 }],
      ["maxAttempts", { publish, maxAttempts: 0 }],
      ["leaseMs", { publish, leaseMs: -1 }],
      ["publishTimeoutMs", { publish, publishTimeoutMs: 0 }],
      ["publishTimeoutMs", { publish, leaseMs: 100, publishTimeoutMs: 100 }],
      ["retentionMs", { publish, retentionMs: -1 }],
      ["topics", { publish, topics: [] }],
      ["topics[0]", { publish, topics: ["a b"] }],
      ["backoff.factor", { publish, backoff: { factor: 0 } }],
      ["backoff.minTimeoutMs", { publish, backoff: { minTimeoutMs: -5 } }],
      ["listen", { publish, listen: {} }],
      ["listen", { publish, listen: new pg.Pool() }],
      ["options.pollIntervalMS", { publish, pollIntervalMS: 5 }],
      ["backoff.minTimeout", { publish, backoff: { minTimeout: 5 } }],
    ];
    for (const [argument, options] of bad) {
      expect(() => new OutboxRelay(outbox, options as never), argument).toThrow(
        expect.objectContaining({ name: "InvalidArgumentError", argument }),
      );
    }
    expect(() => new OutboxRelay({} as never, { publish })).toThrow(InvalidArgumentError);
  });
});

describe("retryDelayMs (p-retry's formula)", () => {
  it("grows by factor from minTimeoutMs, capped at maxTimeoutMs", () => {
    const o = { minTimeoutMs: 1000, factor: 2, maxTimeoutMs: 10_000, randomize: false };
    expect([1, 2, 3, 4, 5, 6].map((n) => retryDelayMs(n, o))).toEqual([
      1000, 2000, 4000, 8000, 10_000, 10_000,
    ]);
    expect(retryDelayMs(2, { minTimeoutMs: 5, factor: 1.5, randomize: false })).toBe(8); // round(7.5)
    expect(retryDelayMs(3000, { minTimeoutMs: 1, randomize: false })).toBe(
      DEFAULT_RELAY_BACKOFF.maxTimeoutMs,
    );
    expect(retryDelayMs(5, { minTimeoutMs: 0 })).toBe(0);
  });

  it("randomizes within [1, 2) times the delay", () => {
    expect(retryDelayMs(3, { minTimeoutMs: 100, randomize: true }, () => 0)).toBe(400);
    expect(retryDelayMs(3, { minTimeoutMs: 100, randomize: true }, () => 0.5)).toBe(600);
    // the top of the range stays below twice the base (rounding 799.6 would reach it)
    expect(retryDelayMs(3, { minTimeoutMs: 100, randomize: true }, () => 0.999)).toBe(799);
    for (let i = 0; i < 200; i++) {
      const d = retryDelayMs(3, { minTimeoutMs: 100 });
      expect(d).toBeGreaterThanOrEqual(400);
      expect(d).toBeLessThan(800);
    }
    expect(() => retryDelayMs(0)).toThrow(InvalidArgumentError);
  });
});
