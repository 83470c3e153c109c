// Retention for the outbox module's tables: delete old rows in bounded batches that concurrent cleaners share.
import { sqlRows, type SqlClient } from "../internal/sql.js";
import { validateInt, validateOptions } from "../internal/validate.js";

/** Options of `deleteSent` and `deleteProcessed`. */
export interface DeleteOlderOptions {
  /** Rows older than this (ms, database time) go. */
  readonly olderThanMs: number;
  /**
   * Most rows deleted per call.
   * @default 1000
   */
  readonly limit?: number;
}

/**
 * Deletes at most `limit` rows of `table` whose `column` is older than `olderThanMs` (database time) and
 * that match `where`, oldest first; rows another cleaner holds are skipped (`SKIP LOCKED`). Returns how many
 * went. `key` is the table's primary key, as a column list.
 * @internal
 */
export async function deleteOlderThan(
  db: SqlClient,
  table: { readonly name: string; readonly key: string; readonly column: string; readonly where?: string },
  options: DeleteOlderOptions,
): Promise<number> {
  validateOptions("options", options, { required: true, known: ["olderThanMs", "limit"] });
  validateInt("olderThanMs", options.olderThanMs, { min: 0 });
  const limit = options.limit ?? 1000;
  validateInt("limit", limit, { min: 1, max: 100_000 });
  const { name, key, column, where } = table;
  const [row] = await sqlRows<{ n: number }>(
    db,
    `WITH gone AS (
       DELETE FROM ${name} WHERE (${key}) IN (
         SELECT ${key} FROM ${name}
         WHERE ${where === undefined ? "" : `${where} AND `}${column} < now() - $1::float8 * interval '1 millisecond'
         ORDER BY ${column} LIMIT $2 FOR UPDATE SKIP LOCKED)
       RETURNING 1)
     SELECT count(*)::int AS n FROM gone`,
    [options.olderThanMs, limit],
  );
  return Number(row?.n ?? 0);
}
