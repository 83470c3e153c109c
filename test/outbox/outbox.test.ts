// PostgresOutbox, PostgresInbox and transaction() on the machine's PostgreSQL and on PGlite: a message exists
// if and only if its transaction committed; an inbox applies each message once.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DatabaseError, InvalidArgumentError } from "../../src/errors.js";
import type { SqlClient } from "../../src/internal/sql.js";
import {
  PostgresInbox,
  PostgresOutbox,
  inboxSchema,
  outboxSchema,
  transaction,
} from "../../src/outbox/index.js";
import { ordersSchema } from "../../src/orders/index.js";
import { PostgresInventory } from "../../src/stock/index.js";
import { BACKENDS, count, tableName, type Backend } from "./helpers.js";

describe.each(BACKENDS)("outbox and inbox on $name", (backend) => {
  let b: Backend;
  let db: SqlClient;
  beforeAll(async () => {
    b = await backend.start();
    db = b.db;
  });
  afterAll(async () => b?.stop());

  async function fresh() {
    const outbox = new PostgresOutbox(db, { table: tableName("ob") });
    await outbox.migrate();
    await outbox.migrate(); // idempotent
    return outbox;
  }

  it("1,000 business transactions, half rolled back: outbox rows exist for exactly the committed half", async () => {
    const outbox = await fresh();
    const business = tableName("biz");
    await db.query(`CREATE TABLE ${business} (id int PRIMARY KEY)`);
    const committed: string[] = [];
    const attempts = Array.from({ length: 1000 }, (_, i) => i);
    // Twenty at a time on PostgreSQL (a pool of connections); PGlite runs them one after another anyway.
    for (let start = 0; start < attempts.length; start += 20) {
      await Promise.all(
        attempts.slice(start, start + 20).map(async (i) => {
          const id = `m-${i}`;
          try {
            await transaction(db, async (tx) => {
              await tx.query(`INSERT INTO ${business} (id) VALUES ($1)`, [i]);
              await outbox.enqueue(tx, { topic: "biz", key: String(i), payload: { i }, id });
              if (i % 2 === 1) throw new Error("business rule says no");
            });
            committed.push(id);
          } catch (err) {
            expect((err as Error).message).toBe("business rule says no");
          }
        }),
      );
    }
    expect(committed).toHaveLength(500);
    const { rows } = await db.query(`SELECT id FROM ${outbox.table} ORDER BY id`);
    expect((rows as { id: string }[]).map((r) => r.id)).toEqual(committed.sort());
    expect(await count(db, `SELECT count(*) AS n FROM ${business}`)).toBe(500);
    expect(await outbox.stats()).toEqual({ pending: 500, sent: 0, processed: 0, dead: 0 });
  });

  it("stores what enqueue was given and schedules by the database clock", async () => {
    const outbox = await fresh();
    const r = await transaction(db, (tx) =>
      outbox.enqueue(tx, { topic: "t", key: "k1", payload: { a: [1, 2], s: "x" }, id: "fixed" }),
    );
    expect(r).toEqual({ id: "fixed", duplicate: false });
    const m = await outbox.get<{ a: number[]; s: string }>("fixed");
    expect(m).toMatchObject({
      id: "fixed",
      topic: "t",
      key: "k1",
      payload: { a: [1, 2], s: "x" },
      status: "pending",
      attempts: 0,
      sentAt: null,
      deadAt: null,
      lastError: null,
    });
    expect(m!.availableAt).toBe(m!.createdAt);

    // delayMs: due at the enqueueing transaction's now() + delay (both taken from the database).
    const delayed = await transaction(db, (tx) =>
      outbox.enqueue(tx, { topic: "t", payload: null, delayMs: 90_000 }),
    );
    const d = await outbox.get(delayed.id);
    expect(d!.availableAt - d!.createdAt).toBe(90_000);

    // availableAt: an absolute epoch ms.
    const at = Date.UTC(2031, 0, 1);
    const abs = await transaction(db, (tx) =>
      outbox.enqueue(tx, { topic: "t", payload: 1, availableAt: at }),
    );
    expect((await outbox.get(abs.id))!.availableAt).toBe(at);

    // the same id again: nothing written, answered as a duplicate.
    const again = await transaction(db, (tx) =>
      outbox.enqueue(tx, { topic: "other", payload: 2, id: "fixed" }),
    );
    expect(again).toEqual({ id: "fixed", duplicate: true });
    expect((await outbox.get("fixed"))!.topic).toBe("t");
    expect(await outbox.get("missing")).toBeNull();
  });

  it("rejects bad input before writing anything", async () => {
    const outbox = await fresh();
    const bad: [string, object][] = [
      ["topic", { topic: "a{b}", payload: 1 }],
      ["topic", { topic: "", payload: 1 }],
      ["id", { topic: "t", payload: 1, id: "x".repeat(257) }],
      ["id", { topic: "t", payload: 1, id: "a\nb" }],
      ["payload", { topic: "t", payload: undefined }],
      ["payload", { topic: "t", payload: 10n }],
      ["delayMs", { topic: "t", payload: 1, delayMs: -1 }],
      ["delayMs", { topic: "t", payload: 1, delayMs: 1.5 }],
      ["delayMs", { topic: "t", payload: 1, delayMs: 5, availableAt: 5 }],
      ["key", { topic: "t", payload: 1, key: 7 }],
      ["input.delay", { topic: "t", payload: 1, delay: 5 }],
    ];
    for (const [argument, input] of bad) {
      await expect(transaction(db, (tx) => outbox.enqueue(tx, input as never))).rejects.toMatchObject({
        name: "InvalidArgumentError",
        argument,
      });
    }
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expect(
      transaction(db, (tx) => outbox.enqueue(tx, { topic: "t", payload: cyclic })),
    ).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await outbox.stats()).toEqual({ pending: 0, sent: 0, processed: 0, dead: 0 });
    expect(() => new PostgresOutbox(db, { table: "Bad-Name" })).toThrow(InvalidArgumentError);
    expect(() => new PostgresOutbox({} as never)).toThrow(InvalidArgumentError);
    expect(() => new PostgresOutbox(db, { notfy: true } as never)).toThrow(
      /options\.notfy is not a known option/,
    );
    await expect(outbox.listDead({ limt: 5 } as never)).rejects.toMatchObject({ argument: "options.limt" });
    await expect(outbox.deleteSent({ olderThanMs: 1, limt: 5 } as never)).rejects.toMatchObject({
      argument: "options.limt",
    });
  });

  it("uses a configured table, schema-qualified too", async () => {
    const schema = tableName("sch");
    await db.query(`CREATE SCHEMA ${schema}`);
    const outbox = new PostgresOutbox(db, { table: `${schema}.messages` });
    await outbox.migrate();
    await transaction(db, (tx) => outbox.enqueue(tx, { topic: "t", payload: 1, id: "q" }));
    expect(await count(db, `SELECT count(*) AS n FROM ${schema}.messages`)).toBe(1);
    const { rows } = await db.query(
      `SELECT indexname FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname`,
      [schema],
    );
    expect((rows as { indexname: string }[]).map((r) => r.indexname)).toEqual([
      "messages_dead",
      "messages_due",
      "messages_pkey",
      "messages_processed",
      "messages_sent",
    ]);
  });

  describe("inbox", () => {
    let inbox: PostgresInbox;
    let effects: string;
    beforeAll(async () => {
      inbox = new PostgresInbox(db, { table: tableName("ib") });
      await inbox.migrate();
      await inbox.migrate();
      effects = tableName("fx");
      await db.query(`CREATE TABLE ${effects} (message_id text NOT NULL)`);
    });

    const apply = (messageId: string, fail = false) =>
      transaction(db, (tx) =>
        inbox.processOnce(tx, { consumer: "c1", messageId }, async (t) => {
          await t.query(`INSERT INTO ${effects} (message_id) VALUES ($1)`, [messageId]);
          if (fail) throw new Error("handler failed");
        }),
      );

    it("processes a message once; a redelivery is a duplicate", async () => {
      expect(await apply("a")).toBe("processed");
      expect(await apply("a")).toBe("duplicate");
      expect(await count(db, `SELECT count(*) AS n FROM ${effects} WHERE message_id = 'a'`)).toBe(1);
      expect(await inbox.isProcessed({ consumer: "c1", messageId: "a" })).toBe(true);
      // another consumer has its own record
      const other = await transaction(db, (tx) =>
        inbox.processOnce(tx, { consumer: "c2", messageId: "a" }, async () => {}),
      );
      expect(other).toBe("processed");
    });

    it("rolls the record back with a failing effect, so the redelivery processes it", async () => {
      await expect(apply("b", true)).rejects.toThrow("handler failed");
      expect(await inbox.isProcessed({ consumer: "c1", messageId: "b" })).toBe(false);
      expect(await count(db, `SELECT count(*) AS n FROM ${effects} WHERE message_id = 'b'`)).toBe(0);
      expect(await apply("b")).toBe("processed");
      expect(await count(db, `SELECT count(*) AS n FROM ${effects} WHERE message_id = 'b'`)).toBe(1);
    });

    it("applies concurrent deliveries of one message exactly once", async () => {
      const outcomes = await Promise.all(Array.from({ length: 8 }, () => apply("c")));
      expect(outcomes.filter((o) => o === "processed")).toHaveLength(1);
      expect(outcomes.filter((o) => o === "duplicate")).toHaveLength(7);
      expect(await count(db, `SELECT count(*) AS n FROM ${effects} WHERE message_id = 'c'`)).toBe(1);
    });

    it("refuses a pool or a PGlite instance in place of a transaction", async () => {
      await expect(
        inbox.processOnce(db, { consumer: "c1", messageId: "d" }, async () => {}),
      ).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(
        transaction(db, (tx) => inbox.processOnce(tx, { consumer: "a{b}", messageId: "d" }, async () => {})),
      ).rejects.toMatchObject({ argument: "consumer" });
      expect(await inbox.isProcessed({ consumer: "c1", messageId: "d" })).toBe(false);
    });

    it("forgets old records on request", async () => {
      expect(await inbox.deleteProcessed({ olderThanMs: 3_600_000 })).toBe(0);
      await db.query(
        `UPDATE ${inbox.table} SET processed_at = now() - interval '2 hours' WHERE message_id = 'a'`,
      );
      expect(await inbox.deleteProcessed({ olderThanMs: 3_600_000 })).toBe(2);
      expect(await inbox.isProcessed({ consumer: "c1", messageId: "a" })).toBe(false);
    });
  });

  describe("transaction()", () => {
    it("commits fn's writes and returns its result; rolls back and rethrows on error", async () => {
      const t = tableName("tx");
      await db.query(`CREATE TABLE ${t} (v int)`);
      expect(await transaction(db, async (tx) => (await tx.query(`INSERT INTO ${t} VALUES (1)`), 42))).toBe(
        42,
      );
      const boom = new Error("boom");
      await expect(
        transaction(db, async (tx) => {
          await tx.query(`INSERT INTO ${t} VALUES (2)`);
          throw boom;
        }),
      ).rejects.toBe(boom);
      expect(await count(db, `SELECT count(*) AS n FROM ${t}`)).toBe(1);
    });

    it("reports a transaction that a swallowed statement error doomed", async () => {
      const t = tableName("tx");
      await db.query(`CREATE TABLE ${t} (v int PRIMARY KEY)`);
      await expect(
        transaction(db, async (tx) => {
          await tx.query(`INSERT INTO ${t} VALUES (1)`);
          await tx.query(`INSERT INTO ${t} VALUES (1)`).catch(() => undefined);
        }),
      ).rejects.toBeInstanceOf(DatabaseError);
      expect(await count(db, `SELECT count(*) AS n FROM ${t}`)).toBe(0);
    });

    it("does not nest: transaction(tx) inside throws, so the outer rollback still drops the message", async () => {
      const outbox = await fresh();
      let innerRan = false;
      const attempt = transaction(db, async (tx) => {
        await outbox.enqueue(tx, { topic: "t", id: "nested", payload: 1 });
        // A helper that "runs in a transaction", given the transaction's client: it used to COMMIT the outer.
        await transaction(tx, async () => {
          innerRan = true;
        }).catch((err: unknown) => {
          expect(err).toBeInstanceOf(InvalidArgumentError);
          expect(String(err)).toMatch(/transactions do not nest/);
        });
        throw new Error("business rule says no");
      });
      await expect(attempt).rejects.toThrow("business rule says no");
      expect(innerRan).toBe(false);
      expect(await outbox.get("nested")).toBeNull();
      expect(await outbox.stats()).toEqual({ pending: 0, sent: 0, processed: 0, dead: 0 });
    });

    it("the components' own statements inside a transaction throw instead of hanging or joining it", async () => {
      const outbox = await fresh();
      const own = transaction(db, async (tx) => {
        await outbox.enqueue(tx, { topic: "t", id: "inside", payload: 1 });
        return outbox.stats(); // on a pool: its own connection; on PGlite: would wait for this transaction
      });
      if (backend.name === "PGlite") {
        await expect(own).rejects.toThrow(InvalidArgumentError);
        expect(await outbox.get("inside")).toBeNull();
      } else {
        expect(await own).toEqual({ pending: 0, sent: 0, processed: 0, dead: 0 }); // the uncommitted row is not seen
        expect(await outbox.get("inside")).not.toBeNull();
      }
    });

    it("enqueue refuses the pool or database itself in place of a transaction's client", async () => {
      const outbox = await fresh();
      await expect(outbox.enqueue(db, { topic: "t", id: "loose", payload: 1 })).rejects.toThrow(
        /must be the client of a transaction/,
      );
      expect(await outbox.get("loose")).toBeNull();
    });
  });
});

describe("migrate() run by two processes at the same moment", () => {
  it("succeeds in both, for every component (IF NOT EXISTS alone is not safe against a concurrent creator)", async () => {
    const b = await BACKENDS[0]!.start(8);
    const other = new pg.Pool({ connectionString: b.url!, max: 8 }); // the second replica
    try {
      const failures: string[] = [];
      for (let i = 0; i < 8; i++) {
        const [ob, ib, od] = [tableName("ob"), tableName("ib"), tableName("od")];
        const results = await Promise.allSettled(
          [b.db, other].flatMap((db) => [
            new PostgresOutbox(db, { table: ob }).migrate(),
            new PostgresInbox(db, { table: ib }).migrate(),
            new PostgresInventory(db, { tablePrefix: `${od}_` }).migrate(),
          ]),
        );
        for (const r of results) if (r.status === "rejected") failures.push(String(r.reason));
      }
      expect(failures).toEqual([]);
    } finally {
      await other.end();
      await b.stop();
    }
  });
});

describe("transaction() on single pg connections", () => {
  let b: Backend;
  beforeAll(async () => {
    b = await BACKENDS[0]!.start(5);
  });
  afterAll(async () => b?.stop());

  it("serialises concurrent transactions on one pg.Client and works on a checked-out PoolClient", async () => {
    const client = new pg.Client({ connectionString: b.url });
    await client.connect();
    try {
      const t = tableName("tx");
      await client.query(`CREATE TABLE ${t} (v int)`);
      // Interleaved BEGIN/COMMIT on one connection would merge these; serialised, each rolls back alone.
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) =>
          transaction(client, async (tx) => {
            await tx.query(`INSERT INTO ${t} VALUES ($1)`, [i]);
            await new Promise((r) => setTimeout(r, 5));
            if (i % 2 === 1) throw new Error(`no ${i}`);
          }),
        ),
      );
      expect(results.filter((r) => r.status === "rejected")).toHaveLength(5);
      const { rows } = await client.query(`SELECT v FROM ${t} ORDER BY v`);
      expect(rows.map((r) => r.v)).toEqual([0, 2, 4, 6, 8]);

      const pool = b.db as pg.Pool;
      const pc = await pool.connect();
      try {
        await transaction(pc, (tx) => tx.query(`INSERT INTO ${t} VALUES (100)`));
      } finally {
        pc.release();
      }
      expect((await client.query(`SELECT count(*)::int AS n FROM ${t} WHERE v = 100`)).rows[0].n).toBe(1);
    } finally {
      await client.end();
    }
  });

  it("returns pool connections (none leak, also after failures)", async () => {
    const pool = b.db as pg.Pool;
    for (let i = 0; i < 20; i++) {
      await transaction(pool, async () => {
        if (i % 2) throw new Error("x");
      }).catch(() => undefined);
    }
    expect(pool.totalCount - pool.idleCount).toBe(0);
    expect(pool.waitingCount).toBe(0);
  });
});

describe("schemas", () => {
  it("ship with the configured names", () => {
    for (const [schema, name] of [
      [outboxSchema("app.box"), "box"],
      [inboxSchema("app.box"), "box"],
      [ordersSchema("app.box"), "box"],
    ] as const) {
      expect(schema).not.toMatch(/fsk_/);
      expect(schema).toMatch(new RegExp(`CREATE TABLE IF NOT EXISTS app\\.${name} `));
      expect(schema).toMatch(new RegExp(`CREATE INDEX IF NOT EXISTS ${name}_\\w+ ON app\\.${name} `));
    }
    expect(() => outboxSchema("x; DROP TABLE y")).toThrow(InvalidArgumentError);
  });
});
