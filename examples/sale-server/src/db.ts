// The one SQL helper the example needs: a query's rows, typed by the caller.
import type { SqlClient } from "flash-sale-kit";

export async function rows<T>(db: SqlClient, sql: string, params: unknown[] = []): Promise<T[]> {
  return (await db.query(sql, params)).rows as T[];
}
