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

/**
 * Splits a SQL script into statements at top-level semicolons, leaving semicolons inside quotes (`E'…'`
 * strings with their escapes included), dollar-quoted bodies, comments (nested block comments included) and
 * `BEGIN ATOMIC … END` function bodies alone (PGlite's `query` takes one statement at a time).
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
  // Inside BEGIN ATOMIC bodies, as psql counts them: BEGIN ATOMIC and CASE open, END closes.
  let atomic = 0;
  let previousWord = "";
  while (i < script.length) {
    const c = script[i]!;
    if (isIdentifierStart(c)) {
      // A whole word at once: a `$` inside an identifier (`a$x$`) is no dollar quote.
      let j = i + 1;
      while (j < script.length && isIdentifierPart(script[j]!)) j++;
      const word = script.slice(i, j).toUpperCase();
      if (script[j] === "'" && word === "E") {
        i = endOfEscapeString(script, j);
        previousWord = "";
        continue;
      }
      if (word === "ATOMIC" && previousWord === "BEGIN") atomic++;
      else if (atomic > 0 && word === "CASE") atomic++;
      else if (atomic > 0 && word === "END") atomic--;
      previousWord = word;
      i = j;
      continue;
    }
    if (c === "'" || c === '"') {
      // A doubled quote inside is part of the string: scanning on from it is the same as a new string.
      const end = script.indexOf(c, i + 1);
      i = end === -1 ? script.length : end + 1;
    } else if (c === "-" && script[i + 1] === "-") {
      const end = script.indexOf("\n", i);
      i = end === -1 ? script.length : end + 1;
      continue; // a comment between BEGIN and ATOMIC keeps BEGIN the previous word
    } else if (c === "/" && script[i + 1] === "*") {
      i = endOfBlockComment(script, i);
      continue;
    } else if (c === "$") {
      const tag = /^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z_0-9\u0080-\uffff]*)?\$/.exec(
        script.slice(i, i + 200),
      )?.[0];
      if (tag) {
        const end = script.indexOf(tag, i + tag.length);
        i = end === -1 ? script.length : end + tag.length;
      } else i++;
    } else if (c === ";" && atomic === 0) {
      out.push(script.slice(start, i));
      start = ++i;
    } else i++;
    if (!/\s/.test(c)) previousWord = "";
  }
  out.push(script.slice(start));
  return out.map((s) => s.trim()).filter((s) => !isBlank(s));
}

function isIdentifierStart(c: string): boolean {
  return /[A-Za-z_]/.test(c) || c.charCodeAt(0) >= 0x80;
}

function isIdentifierPart(c: string): boolean {
  return /[A-Za-z0-9_$]/.test(c) || c.charCodeAt(0) >= 0x80;
}

/** The index after an `E'…'` string whose opening quote is at `quote`: `\x` and `''` stay inside it. */
function endOfEscapeString(script: string, quote: number): number {
  let j = quote + 1;
  while (j < script.length) {
    if (script[j] === "\\") j += 2;
    else if (script[j] === "'") {
      if (script[j + 1] === "'") j += 2;
      else return j + 1;
    } else j++;
  }
  return script.length;
}

/** The index after the block comment opening at `at`; block comments nest in PostgreSQL. */
function endOfBlockComment(script: string, at: number): number {
  let depth = 0;
  let j = at;
  while (j < script.length) {
    if (script[j] === "/" && script[j + 1] === "*") {
      depth++;
      j += 2;
    } else if (script[j] === "*" && script[j + 1] === "/") {
      depth--;
      j += 2;
      if (depth === 0) return j;
    } else j++;
  }
  return script.length;
}

/** Whether a piece holds nothing but whitespace and comments. */
function isBlank(piece: string): boolean {
  let i = 0;
  while (i < piece.length) {
    if (/\s/.test(piece[i]!)) i++;
    else if (piece[i] === "-" && piece[i + 1] === "-") {
      const end = piece.indexOf("\n", i);
      i = end === -1 ? piece.length : end + 1;
    } else if (piece[i] === "/" && piece[i + 1] === "*") i = endOfBlockComment(piece, i);
    else return false;
  }
  return true;
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
