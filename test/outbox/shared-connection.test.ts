// One connection shared by business transactions and the outbox (a pg.Client, or PGlite seen through a bare
// `{ query }` object, which behaves like one: one session, statements in order). The outbox's, inbox's and
// orders' own statements must never run inside a business transaction that is open on that connection:
// a relay would otherwise publish a message whose transaction then rolls back (invariant 8).
import pg from "pg";
import { PGlite } from "@electric-sql/pglite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/errors.js";
import type { SqlClient } from "../../src/internal/sql.js";
import { OutboxRelay, PostgresInbox, PostgresOutbox, transaction } from "../../src/outbox/index.js";
import { PostgresOrders } from "../../src/orders/index.js";
import { PostgresInventory } from "../../src/stock/index.js";
import { BACKENDS, sleep, tableName, until, type Backend } from "./helpers.js";

interface Shared {
  /** The single connection everything runs on. */
  readonly conn: SqlClient;
  /** A separate client for the stock store the orders test needs (never called there). */
  readonly other: SqlClient;
  stop(): Promise<void>;
}

const CONNECTIONS = [
  {
    name: "a pg.Client on PostgreSQL",
    async start(): Promise<Shared> {
      const b: Backend = await BACKENDS[0]!.start(4);
      const client = new pg.Client({ connectionString: b.url });
      await client.connect();
      return {
        conn: client,
        other: b.db,
        stop: async () => {
          await client.end();
          await b.stop();
        },
      };
    },
  },
  {
    name: "PGlite wrapped as a bare { query } client",
    async start(): Promise<Shared> {
      const lite = new PGlite();
      await lite.waitReady;
      // exec too: migrations run a whole script in one call, as pg's query does without parameters.
      const bare: SqlClient & { exec(sql: string): Promise<unknown> } = {
        query: (sql, params) => lite.query(sql, params),
        exec: (sql) => lite.exec(sql),
      };
      return { conn: bare, other: lite as unknown as SqlClient, stop: () => lite.close() };
    },
  },
];

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe.each(CONNECTIONS)("outbox sharing $name with business transactions", (connection) => {
  let s: Shared;
  let conn: SqlClient;
  beforeAll(async () => {
    s = await connection.start();
    conn = s.conn;
  });
  afterAll(async () => s?.stop());

  async function fresh(published: string[]) {
    const outbox = new PostgresOutbox(conn, { table: tableName("ob") });
    await outbox.migrate();
    const relay = new OutboxRelay(outbox, {
      publish: async (m) => void published.push(m.id),
      pollIntervalMs: 1,
      backoff: () => 0,
    });
    return { outbox, relay };
  }

  /**
   * Opens a transaction that enqueues `id`, lets `during` run while it is open (from outside the
   * transaction's call chain, as a relay loop would), then commits or rolls back.
   */
  async function withOpenTransaction(
    outbox: PostgresOutbox,
    id: string,
    commit: boolean,
    during: () => Promise<unknown>,
  ): Promise<unknown> {
    const entered = deferred();
    const finish = deferred();
    const tx = transaction(conn, async (t) => {
      await outbox.enqueue(t, { topic: "biz", id, payload: { id } });
      entered.resolve();
      await finish.promise;
      if (!commit) throw new Error("business rule says no");
    });
    await entered.promise;
    const pending = during();
    // Give the statement every chance to run inside the open transaction (it did, before the fix).
    await Promise.race([pending, sleep(200)]).catch(() => undefined);
    finish.resolve();
    if (commit) await tx;
    else await expect(tx).rejects.toThrow("business rule says no");
    return pending;
  }

  it("a relay round during an open transaction waits for it: rolled back is never published, committed is", async () => {
    const published: string[] = [];
    const { outbox, relay } = await fresh(published);

    const lost = await withOpenTransaction(outbox, "m1", false, () => relay.runOnce());
    expect(lost).toEqual({ claimed: 0, sent: 0, retried: 0, dead: 0, resent: 0 });
    expect(published).toEqual([]);
    expect(await outbox.get("m1")).toBeNull();

    const kept = await withOpenTransaction(outbox, "m2", true, () => relay.runOnce());
    expect(kept).toEqual({ claimed: 1, sent: 1, retried: 0, dead: 0, resent: 0 });
    expect(published).toEqual(["m2"]);
    expect(await outbox.get("m2")).toMatchObject({ status: "sent", attempts: 1 });
  });

  it("a running relay and 60 transactions on the one connection, every other rolled back: exactly the committed ones are published", async () => {
    const published: string[] = [];
    const { outbox, relay } = await fresh(published);
    await relay.start();
    const committed: string[] = [];
    try {
      for (let i = 0; i < 60; i++) {
        const id = `m-${i}`;
        await transaction(conn, async (t) => {
          await outbox.enqueue(t, { topic: "biz", id, payload: { i } });
          await sleep(3); // the relay's next round is due meanwhile
          if (i % 2 === 1) throw new Error("no");
        }).then(
          () => committed.push(id),
          () => undefined,
        );
      }
      await until(async () => (await outbox.stats()).sent === committed.length, 10_000, "every commit sent");
    } finally {
      await relay.stop();
    }
    expect(committed).toHaveLength(30);
    expect([...published].sort()).toEqual([...committed].sort());
    expect(await outbox.stats()).toEqual({ pending: 0, sent: 30, processed: 0, dead: 0 });
  });

  it("the inbox does not report a record whose transaction is still open (and then rolled back)", async () => {
    const inbox = new PostgresInbox(conn, { table: tableName("ib") });
    await inbox.migrate();
    const outbox = new PostgresOutbox(conn, { table: tableName("ob") });
    await outbox.migrate();
    const ref = { consumer: "orders", messageId: "m-1" };
    const entered = deferred();
    const finish = deferred();
    const tx = transaction(conn, (t) =>
      inbox.processOnce(t, ref, async () => {
        entered.resolve();
        await finish.promise;
        throw new Error("effect failed");
      }),
    );
    await entered.promise;
    const seen = inbox.isProcessed(ref);
    await Promise.race([seen, sleep(200)]);
    finish.resolve();
    await expect(tx).rejects.toThrow("effect failed");
    expect(await seen).toBe(false);
    expect(await inbox.isProcessed(ref)).toBe(false);
  });

  it("orders do not read an order whose transaction is still open (and then rolled back)", async () => {
    const outbox = new PostgresOutbox(conn, { table: tableName("ob") });
    await outbox.migrate();
    const orders = new PostgresOrders(conn, {
      stock: new PostgresInventory(s.other, { tablePrefix: "unused_" }),
      outbox,
      table: tableName("ord"),
    });
    await orders.migrate();
    const entered = deferred();
    const finish = deferred();
    const tx = transaction(conn, async (t) => {
      await orders.create(t, { sku: "sku-1", userId: "u1", reservationId: "r1" });
      entered.resolve();
      await finish.promise;
      throw new Error("rolled back");
    });
    await entered.promise;
    const read = orders.get("r1");
    await Promise.race([read, sleep(200)]);
    finish.resolve();
    await expect(tx).rejects.toThrow("rolled back");
    expect(await read).toBeNull();
  });

  it("own statements called inside a transaction on the same connection throw instead of joining it or hanging", async () => {
    const outbox = new PostgresOutbox(conn, { table: tableName("ob") });
    await outbox.migrate();
    const inbox = new PostgresInbox(conn, { table: tableName("ib") });
    await inbox.migrate();
    const attempt = transaction(conn, async (t) => {
      await outbox.enqueue(t, { topic: "biz", id: "x", payload: {} });
      await outbox.stats();
    });
    await expect(attempt).rejects.toThrow(InvalidArgumentError);
    await expect(attempt).rejects.toMatchObject({ argument: "db" });
    await expect(
      transaction(conn, () => inbox.isProcessed({ consumer: "c", messageId: "x" })),
    ).rejects.toThrow(/PostgresInbox runs its own statements outside your transactions/);
    // The failed transaction rolled back; the connection is usable and the queue is not stuck.
    expect(await outbox.get("x")).toBeNull();
    expect(await outbox.stats()).toEqual({ pending: 0, sent: 0, processed: 0, dead: 0 });
  });

  it("a transaction() nested on the same connection throws instead of hanging, and the outer one rolls back", async () => {
    const outbox = new PostgresOutbox(conn, { table: tableName("ob") });
    await outbox.migrate();
    let innerRan = false;
    const nested = transaction(conn, async (t) => {
      await outbox.enqueue(t, { topic: "biz", id: "outer", payload: {} });
      await transaction(conn, async () => {
        innerRan = true;
      });
    });
    await expect(nested).rejects.toThrow(InvalidArgumentError);
    await expect(nested).rejects.toThrow(/transactions do not nest/);
    expect(innerRan).toBe(false);
    expect(await outbox.get("outer")).toBeNull();
    // The connection is not stuck: a transaction after it commits.
    await transaction(conn, (t) => outbox.enqueue(t, { topic: "biz", id: "after", payload: {} }));
    expect(await outbox.get("after")).not.toBeNull();
  });

  it("a transaction that ends while another is open leaves the other's nesting check working", async () => {
    // The library switches its async storage off when no transaction is open (async hooks cost every
    // promise of the process on Node 20): one ending must not switch it off under one still open.
    const otherEnded = deferred();
    let innerRan = false;
    const outer = transaction(conn, async () => {
      await otherEnded.promise;
      await transaction(conn, async () => {
        innerRan = true;
      });
    });
    await transaction(s.other, async (t) => {
      await t.query("SELECT 1");
    });
    otherEnded.resolve();
    await expect(outer).rejects.toThrow(/transactions do not nest/);
    expect(innerRan).toBe(false);
  }, 15_000); // had the check been switched off, the nested transaction would wait for itself until then
});
