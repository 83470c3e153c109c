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
