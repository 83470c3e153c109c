// runSqlScript / runMigration: a script of several statements runs whole, parsed by the server itself, on
// PostgreSQL (pool and single client, simple protocol) and on PGlite (exec): no splitter of our own.
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DatabaseError } from "../../src/errors.js";
import { runMigration, runSqlScript, sqlRows, type SqlClient } from "../../src/internal/sql.js";
import { ownStatements } from "../../src/outbox/transaction.js";
import { startPostgres, type PrivateDatabase } from "../support/postgres.js";

// What a hand-written splitter gets wrong: semicolons inside dollar quotes (tags with digits), E-strings
// with escaped and doubled quotes, nested block comments, `$` inside identifiers, BEGIN ATOMIC bodies with
// CASE … END, comment-only pieces.
const SCRIPT = `
CREATE TABLE t (v text);
CREATE FUNCTION f1() RETURNS int AS $fn1$ BEGIN RETURN 1; END $fn1$ LANGUAGE plpgsql;
INSERT INTO t VALUES (E'it\\'s; fine'), ('a''b;c');
/* outer /* inner; */ still; comment */ INSERT INTO t VALUES ('after a nested comment');
CREATE FUNCTION f2() RETURNS int LANGUAGE sql
  BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END;
INSERT INTO t SELECT 'dollar ' || f1() || f2() AS a$x$;
/* only a comment */;
-- a; trailing comment
`;

const EXPECTED = ["it's; fine", "a'b;c", "after a nested comment", "dollar 12"];

let server: PrivateDatabase;
beforeAll(async () => {
  server = await startPostgres(2);
});
afterAll(async () => server?.stop());

interface Target {
  readonly name: string;
  open(): Promise<{ db: SqlClient; close(): Promise<void> }>;
}

const TARGETS: Target[] = [
  {
    name: "PostgreSQL pool",
    open: async () => {
      const schema = `s_${Math.random().toString(36).slice(2, 10)}`;
      await server.pool.query(`CREATE SCHEMA ${schema}`);
      const pool = new pg.Pool({ connectionString: server.url, max: 2, options: `-c search_path=${schema}` });
      return { db: pool, close: () => pool.end() };
    },
  },
  {
    name: "PostgreSQL client",
    open: async () => {
      const schema = `s_${Math.random().toString(36).slice(2, 10)}`;
      await server.pool.query(`CREATE SCHEMA ${schema}`);
      const client = new pg.Client({ connectionString: server.url, options: `-c search_path=${schema}` });
      await client.connect();
      return { db: client, close: () => client.end() };
    },
  },
  {
    name: "PGlite",
    open: async () => {
      const lite = new PGlite();
      await lite.waitReady;
      return { db: lite as unknown as SqlClient, close: () => lite.close() };
    },
  },
];

describe.each(TARGETS)("runSqlScript on $name", (target) => {
  it("runs a script of several statements whole, where the server parses it", async () => {
    const { db, close } = await target.open();
    try {
      await runSqlScript(db, SCRIPT);
      const rows = await sqlRows<{ v: string }>(db, "SELECT v FROM t");
      expect(rows.map((r) => r.v).sort()).toEqual([...EXPECTED].sort());
    } finally {
      await close();
    }
  });

  it("through ownStatements too (the outbox, inbox and orders run their migrations on it)", async () => {
    const { db, close } = await target.open();
    try {
      await runMigration(ownStatements("test", db), SCRIPT);
      expect(await sqlRows(db, "SELECT v FROM t")).toHaveLength(EXPECTED.length);
    } finally {
      await close();
    }
  });

  it("is all or nothing: a failing statement leaves none of the script behind, as a DatabaseError", async () => {
    const { db, close } = await target.open();
    try {
      const failing =
        "CREATE TABLE u (v int); INSERT INTO u VALUES (1); SELECT 1 / 0; CREATE TABLE w (v int);";
      await expect(runSqlScript(db, failing)).rejects.toBeInstanceOf(DatabaseError);
      const tables = await sqlRows<{ n: number }>(
        db,
        "SELECT count(*)::int AS n FROM pg_tables WHERE tablename IN ('u', 'w') AND schemaname = current_schema()",
      );
      expect(tables[0]!.n).toBe(0);
    } finally {
      await close();
    }
  });
});
