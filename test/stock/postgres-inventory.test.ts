// PostgresInventory on the machine's PostgreSQL (a private database) and on PGlite: the shared contract.
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError, DatabaseError } from "../../src/errors.js";
import {
  MAX_QUANTITY,
  PostgresInventory,
  UNLIMITED,
  postgresInventorySchema,
} from "../../src/stock/index.js";
import { startPostgres, type PrivateDatabase } from "../support/postgres.js";
import { stockContract } from "./contract.js";

async function count(db: pg.Pool, sql: string): Promise<number> {
  return ((await db.query(sql)).rows[0] as { n: number }).n;
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (const deadline = Date.now() + 10_000; !(await check());) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("PostgresInventory (PostgreSQL)", () => {
  let db: PrivateDatabase;
  let stock: PostgresInventory;
  beforeAll(async () => {
    db = await startPostgres(20);
    stock = new PostgresInventory(db.pool);
    await stock.migrate();
    await stock.migrate(); // idempotent
  });
  afterAll(async () => db?.stop());

  stockContract({ store: () => stock, propertyRuns: 25 });

  it("uses a custom table prefix", async () => {
    expect(() => new PostgresInventory(db.pool, { tablePrefx: "shop_" } as never)).toThrow(
      /did you mean tablePrefix/,
    );
    const s = new PostgresInventory(db.pool, { tablePrefix: "shop_" });
    await s.migrate();
    await s.setStock("a", 2);
    expect((await s.reserve("a", { userId: "u" })).ok).toBe(true);
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM shop_reservation");
    expect(rows[0].n).toBe(1);
  });

  it("expiring holds while the same users reserve again never deadlocks, and the books balance", async () => {
    const s = new PostgresInventory(db.pool);
    const sku = `dl-${Date.now()}`;
    await s.setStock(sku, 1000, { perUserLimit: 2, holdMs: 30 });
    const users = Array.from({ length: 40 }, (_, i) => `u${i}`);
    for (let round = 0; round < 5; round++) {
      await Promise.all(users.map((u) => s.reserve(sku, { userId: u })));
      await new Promise((r) => setTimeout(r, 60)); // every hold so far has expired
      const [expired, ...rest] = await Promise.all([
        (async () => {
          let n = 0;
          for (let k = 0; k < 4; k++) n += await s.expireHolds(sku, { limit: 10 });
          return n;
        })(),
        s.expireHolds(sku, { limit: 15 }),
        ...users.map((u) => s.reserve(sku, { userId: u })),
      ]);
      expect(typeof expired).toBe("number");
      expect(rest.length).toBe(41);
      await new Promise((r) => setTimeout(r, 60));
      while ((await s.expireHolds(sku, { limit: 100 })) > 0);
      expect(await s.snapshot(sku)).toMatchObject({ initial: 1000, available: 1000, held: 0, confirmed: 0 });
    }
  });

  it("a retry whose first call commits while the retry runs gets the first outcome, not a refusal", async () => {
    await stock.setStock("race", 1, { perUserLimit: 1 });
    const first = new pg.Client({ connectionString: db.url });
    const locker = new pg.Client({ connectionString: db.url });
    await Promise.all([first.connect(), locker.connect()]);
    try {
      // The first call has reserved the last unit and is about to commit.
      await first.query("BEGIN");
      const r1 = await first.query("SELECT code, remaining FROM fsk_reserve('race', 'r1', 'u', 1)");
      expect(r1.rows[0]).toEqual({ code: 0, remaining: 0 });
      // A lock queued behind it holds the retry between its look-up of the id and its read of the stock row,
      // so the commit lands exactly in between (a scheduling delay opens the same gap).
      await locker.query("BEGIN");
      const locked = locker.query("LOCK TABLE fsk_stock IN ACCESS EXCLUSIVE MODE");
      await until(
        async () => (await count(db.pool, "SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted")) > 0,
        "the lock to queue",
      );
      const retry = stock.reserve("race", { userId: "u", reservationId: "r1" });
      await until(
        async () => (await count(db.pool, "SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted")) > 1,
        "the retry to wait",
      );
      await first.query("COMMIT");
      await locked;
      await locker.query("ROLLBACK");
      expect(await retry).toEqual({ ok: true, reservationId: "r1", remaining: 0 });
      expect(await stock.snapshot("race")).toMatchObject({ available: 0, held: 1 });
    } finally {
      await Promise.all([first.end(), locker.end()]);
    }
  });

  it("counts UNLIMITED stock's holds past 2^31 - 1, as Inventory does", async () => {
    await stock.setStock("gift", UNLIMITED, { perUserLimit: MAX_QUANTITY });
    expect(await stock.reserve("gift", { userId: "a", quantity: MAX_QUANTITY })).toMatchObject({ ok: true });
    expect(await stock.reserve("gift", { userId: "b", quantity: 1 })).toMatchObject({
      ok: true,
      remaining: -1,
    });
    expect(await stock.snapshot("gift")).toMatchObject({ held: MAX_QUANTITY + 1, available: -1 });
  });

  it("wraps driver failures in DatabaseError", async () => {
    const s = new PostgresInventory(db.pool, { tablePrefix: "missing_" });
    await expect(s.snapshot("a")).rejects.toBeInstanceOf(DatabaseError);
  });
});

describe("PostgresInventory (PGlite)", () => {
  let pg: PGlite;
  let stock: PostgresInventory;
  beforeAll(async () => {
    pg = new PGlite();
    stock = new PostgresInventory(pg);
    await stock.migrate();
  });
  afterAll(async () => pg?.close());

  // PGlite is one in-process connection: same invariants, a smaller crowd.
  stockContract({ store: () => stock, crowd: { calls: 400, users: 100, units: 20 }, propertyRuns: 15 });
});

describe("schema", () => {
  it("renames every fsk_ name to the prefix and rejects a bad prefix", () => {
    expect(postgresInventorySchema("shop_")).not.toMatch(/fsk_/);
    expect(() => postgresInventorySchema("Bad-Prefix")).toThrow(InvalidArgumentError);
    expect(() => new PostgresInventory({} as never)).toThrow(InvalidArgumentError);
  });
});
