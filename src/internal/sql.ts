// The minimal SQL client the database adapters take, so pg.Pool, pg.Client, pg.PoolClient and PGlite all fit.
import { DatabaseError, FlashSaleError } from "../errors.js";

/**
 * Anything with `query(sql, params)` resolving to `{ rows }`: `pg.Pool`, `pg.Client`, a checked-out
 * `pg.PoolClient`, or a PGlite instance.
 *
 * @example
 * ```ts
 * import pg from "pg";
 * const db: SqlClient = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 * ```
 */
export interface SqlClient {
  query(sql: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
}

/**
 * Runs one statement and returns its rows typed as `T`, wrapping driver errors in {@link DatabaseError}.
 *
 * @example
 * ```ts
 * const rows = await sqlRows<{ n: number }>(db, "SELECT 1 AS n");
 * ```
 */
export async function sqlRows<T>(db: SqlClient, sql: string, params: unknown[] = []): Promise<T[]> {
  try {
    const result = await db.query(sql, params);
    return result.rows as T[];
  } catch (err) {
    if (err instanceof FlashSaleError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new DatabaseError(`database query failed: ${message}`, { cause: err });
  }
}

/** A client that runs a script of several statements in one call: PGlite's `exec`. */
interface ScriptRunner {
  exec(sql: string): Promise<unknown>;
}

/**
 * Runs a SQL script of several statements in one call. PGlite's `query` takes one statement (it uses the
 * extended protocol), so PGlite runs it with `exec`; pg's `query` without parameters uses the simple
 * protocol, which takes a whole script. Either way the server parses it (dollar quotes, comments,
 * `BEGIN ATOMIC` bodies) and runs it as one implicit transaction: all of it or none.
 *
 * @example
 * ```ts
 * await runSqlScript(db, "CREATE TABLE a (id int); CREATE TABLE b (id int);");
 * ```
 */
export async function runSqlScript(db: SqlClient, script: string): Promise<void> {
  const runner = db as SqlClient & Partial<ScriptRunner>;
  try {
    if (typeof runner.exec === "function") await runner.exec(script);
    else await db.query(script);
  } catch (err) {
    if (err instanceof FlashSaleError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new DatabaseError(`database script failed: ${message}`, { cause: err });
  }
}

/**
 * Runs an idempotent schema script (`CREATE … IF NOT EXISTS`, `CREATE OR REPLACE`), again when another
 * process running the same script at the same moment made a statement fail: PostgreSQL's `IF NOT EXISTS`
 * is not safe against a concurrent creator (`duplicate key … pg_class_relname_nsp_index`, "already exists",
 * "tuple concurrently updated"), and the second run finds everything in place. @internal
 */
export async function runMigration(db: SqlClient, script: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await runSqlScript(db, script);
    } catch (err) {
      const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
      const race =
        cause !== undefined &&
        (["23505", "42P07", "42710", "40P01"].includes(String(cause.code)) ||
          /tuple concurrently (updated|deleted)/.test(String(cause.message)));
      if (!race || attempt === 5) throw err;
      await new Promise((r) => setTimeout(r, 20 * attempt * Math.random()));
    }
  }
}
