// The outbox's backlog for the relay-round diagnostics event: pending and dead counts and the relay's lag
// (age of the oldest due message, database clock). One aggregate query, run only while someone subscribes.
import { sqlRows } from "../internal/sql.js";
import { ownStatements } from "./transaction.js";
import type { PostgresOutbox } from "./postgres-outbox.js";

export interface Backlog {
  readonly pending: number;
  readonly deadTotal: number;
  readonly lagMs: number;
}

const clients = new WeakMap<PostgresOutbox, ReturnType<typeof ownStatements>>();

export async function backlog(outbox: PostgresOutbox): Promise<Backlog> {
  let db = clients.get(outbox);
  if (db === undefined) {
    db = ownStatements("PostgresOutbox", outbox.db);
    clients.set(outbox, db);
  }
  const [row] = await sqlRows<{ pending: number; dead: number; lag_ms: number | string | null }>(
    db,
    `SELECT count(*) FILTER (WHERE status = 'pending')::int AS pending,
            count(*) FILTER (WHERE status = 'dead')::int AS dead,
            (EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE status = 'pending' AND available_at <= now()))
              * 1000)::float8 AS lag_ms
       FROM ${outbox.table}`,
  );
  return {
    pending: Number(row?.pending ?? 0),
    deadTotal: Number(row?.dead ?? 0),
    lagMs: Math.max(0, Math.round(Number(row?.lag_ms ?? 0))),
  };
}
