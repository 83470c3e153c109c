// SqlInventory on the machine's PostgreSQL (a private database) and on PGlite: the shared contract.
import { PGlite } from "@electric-sql/pglite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError, DatabaseError } from "../../src/core/errors.js";
import { splitSqlStatements } from "../../src/core/sql.js";
import { SqlInventory, sqlInventorySchema } from "../../src/stock/index.js";
import { startPostgres, type PrivateDatabase } from "../support/postgres.js";
import { stockContract } from "./contract.js";

describe("SqlInventory (PostgreSQL)", () => {
  let db: PrivateDatabase;
  let stock: SqlInventory;
  beforeAll(async () => {
    db = await startPostgres(20);
    stock = new SqlInventory(db.pool);
    await stock.migrate();
    await stock.migrate(); // idempotent
  });
  afterAll(async () => db?.stop());

  stockContract({ store: () => stock, propertyRuns: 25 });

  it("uses a custom table prefix", async () => {
    const s = new SqlInventory(db.pool, { tablePrefix: "shop_" });
    await s.migrate();
    await s.setStock("a", 2);
    expect((await s.reserve("a", { userId: "u" })).ok).toBe(true);
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM shop_reservation");
    expect(rows[0].n).toBe(1);
  });

  it("expiring holds while the same users reserve again never deadlocks, and the books balance", async () => {
    const s = new SqlInventory(db.pool);
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

  it("wraps driver failures in DatabaseError", async () => {
    const s = new SqlInventory(db.pool, { tablePrefix: "missing_" });
    await expect(s.snapshot("a")).rejects.toBeInstanceOf(DatabaseError);
  });
});

describe("SqlInventory (PGlite)", () => {
  let pg: PGlite;
  let stock: SqlInventory;
  beforeAll(async () => {
    pg = new PGlite();
    stock = new SqlInventory(pg);
    await stock.migrate();
  });
  afterAll(async () => pg?.close());

  // PGlite is one in-process connection: same invariants, a smaller crowd.
  stockContract({ store: () => stock, crowd: { calls: 400, users: 100, units: 20 }, propertyRuns: 15 });
});

describe("schema", () => {
  it("splits into statements and rejects a bad prefix", () => {
    const statements = splitSqlStatements(sqlInventorySchema());
    expect(statements.length).toBeGreaterThan(8);
    expect(statements.every((s) => !s.endsWith(";"))).toBe(true);
    expect(() => sqlInventorySchema("Bad-Prefix")).toThrow(InvalidArgumentError);
    expect(() => new SqlInventory({} as never)).toThrow(InvalidArgumentError);
  });
});
