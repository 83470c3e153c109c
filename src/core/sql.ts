// The minimal SQL client the database adapters take, so pg.Pool, pg.Client, pg.PoolClient and PGlite all fit.
import { DatabaseError, FlashSaleError } from "./errors.js";

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

/**
 * Splits a SQL script into statements at top-level semicolons, leaving semicolons inside quotes, dollar-quoted
 * bodies and comments alone (PGlite's `query` takes one statement at a time).
 *
 * @example
 * ```ts
 * splitSqlStatements("SELECT 1; SELECT ';';"); // ["SELECT 1", "SELECT ';'"]
 * ```
 */
export function splitSqlStatements(script: string): string[] {
  const out: string[] = [];
  let start = 0;
  let i = 0;
  while (i < script.length) {
    const c = script[i];
    if (c === "'" || c === '"') {
      // E'…' strings take backslash escapes; elsewhere a doubled quote is just two adjacent strings.
      const escapes = c === "'" && /[eE]/.test(script[i - 1] ?? "") && !/\w/.test(script[i - 2] ?? "");
      let j = i + 1;
      while (j < script.length && script[j] !== c) j += escapes && script[j] === "\\" ? 2 : 1;
      i = j + 1;
    } else if (c === "-" && script[i + 1] === "-") {
      const end = script.indexOf("\n", i);
      i = end === -1 ? script.length : end + 1;
    } else if (c === "/" && script[i + 1] === "*") {
      const end = script.indexOf("*/", i + 2);
      i = end === -1 ? script.length : end + 2;
    } else if (c === "$") {
      const tag = /^\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$/.exec(script.slice(i))?.[0];
      if (tag) {
        const end = script.indexOf(tag, i + tag.length);
        i = end === -1 ? script.length : end + tag.length;
      } else i++;
    } else if (c === ";") {
      out.push(script.slice(start, i));
      start = ++i;
    } else i++;
  }
  out.push(script.slice(start));
  const blank = (s: string) =>
    s
      .replace(/--[^\n]*/g, "")
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .trim().length === 0;
  return out.map((s) => s.trim()).filter((s) => !blank(s));
}

/**
 * Runs every statement of a SQL script in order, one `query` each.
 *
 * @example
 * ```ts
 * await runSqlScript(db, "CREATE TABLE a (id int); CREATE TABLE b (id int);");
 * ```
 */
export async function runSqlScript(db: SqlClient, script: string): Promise<void> {
  for (const statement of splitSqlStatements(script)) await sqlRows(db, statement);
}
