// The dashboard's numbers for one sale: stock (Redis), orders (PostgreSQL), and this process's metrics (the
// library's adapter and the example's own counters, the numbers GET /metrics serves).
import type { SqlClient } from "flash-sale-kit";
import type { Inventory } from "flash-sale-kit/stock";
import type { Catalog } from "./catalog.js";
import type { RoomSnapshot } from "./sales.js";
import { rows } from "./db.js";
import type { ProcessMetrics, SaleMetrics } from "./metrics.js";

export interface SaleStats {
  readonly sku: string;
  readonly stock: { initial: number; available: number; held: number; confirmed: number };
  readonly orders: { total: number; pending: number; paid: number; cancelled: number };
  /** Users with more than one order of the SKU (0 unless the per-user limit broke). */
  readonly duplicateUsers: number;
  /** Refusals by where and why, since this process started (all SKUs): `metrics.refused`. */
  readonly rejected: Record<string, number>;
  /** This process's metrics since it started, all SKUs together (see src/metrics.ts). */
  readonly metrics: ProcessMetrics;
  /** Product loads from the database (a cache that works keeps this low). */
  readonly productLoads: number;
  /** The waiting room: its line, passes out, admissions so far and configured rate (with a room only). */
  readonly room?: RoomSnapshot;
}

export async function saleStats(
  sku: string,
  deps: { inventory: Inventory; db: SqlClient; ordersTable: string; metrics: SaleMetrics; catalog: Catalog },
): Promise<SaleStats> {
  const snap = await deps.inventory.snapshot(sku);
  const metrics = await deps.metrics.snapshot();
  const [o] = await rows<Record<string, number>>(
    deps.db,
    `SELECT count(*)::int AS total,
       count(*) FILTER (WHERE status = 'pending')::int AS pending,
       count(*) FILTER (WHERE status = 'paid')::int AS paid,
       count(*) FILTER (WHERE status = 'cancelled')::int AS cancelled,
       (SELECT count(*)::int FROM (SELECT user_id FROM ${deps.ordersTable} WHERE sku = $1
          GROUP BY user_id HAVING count(*) > 1) d) AS dup
     FROM ${deps.ordersTable} WHERE sku = $1`,
    [sku],
  );
  return {
    sku,
    stock: {
      initial: snap?.initial ?? 0,
      available: snap?.available ?? 0,
      held: snap?.held ?? 0,
      confirmed: snap?.confirmed ?? 0,
    },
    orders: {
      total: Number(o?.total ?? 0),
      pending: Number(o?.pending ?? 0),
      paid: Number(o?.paid ?? 0),
      cancelled: Number(o?.cancelled ?? 0),
    },
    duplicateUsers: Number(o?.dup ?? 0),
    rejected: metrics.refused,
    metrics,
    productLoads: deps.catalog.loads,
  };
}
