// Found by review-a: reconcileStock (src/orders/reconcile.ts) on a SKU split into buckets. It reads and writes the
// one-bucket keys (inventory.keys(sku)) only, so on a bucketed SKU it neither repairs nor refuses cleanly.
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SqlClient } from "../../src/internal/sql.js";
import { PostgresOutbox, transaction } from "../../src/outbox/index.js";
import { PostgresOrders, reconcileStock } from "../../src/orders/index.js";
import { Inventory } from "../../src/stock/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";
import { BACKENDS, tableName, type Backend } from "../outbox/helpers.js";

let srv: PrivateRedis;
let redis: Redis;
let b: Backend;
let db: SqlClient;
beforeAll(async () => {
  [srv, b] = await Promise.all([startRedis(), BACKENDS[0]!.start(6)]);
  redis = srv.client();
  db = b.db;
});
afterAll(async () => {
  await Promise.all([srv?.stop(), b?.stop()]);
});

async function setup() {
  const inventory = new Inventory(redis, { prefix: randomPrefix("rcb"), localCacheMs: 0 });
  const outbox = new PostgresOutbox(db, { table: tableName("ob") });
  const table = tableName("ord");
  const orders = new PostgresOrders(db, { stock: inventory, outbox, table });
  await outbox.migrate();
  await orders.migrate();
  await inventory.setStock("hot", 10, { buckets: 3, holdMs: 3_600_000 });
  const buy = async (userId: string) => {
    const reservationId = `r-${userId}`;
    const r = await inventory.reserve("hot", { userId, reservationId });
    expect(r.ok).toBe(true);
    await transaction(db, (tx) => orders.create(tx, { sku: "hot", userId, reservationId }));
    return reservationId;
  };
  return { inventory, orders, table, buy };
}

describe("reconcileStock on a bucketed SKU", () => {
  it("releases the surviving hold of a cancelled order (or refuses the bucketed SKU), not a silent success", async () => {
    const { inventory, orders, table, buy } = await setup();
    const id = await buy("ann");
    // The order is cancelled in the database of record but the release never reached Redis.
    await db.query(
      `UPDATE ${table} SET status = 'cancelled', cancelled_at = now() WHERE reservation_id = $1`,
      [id],
    );
    let outcome: string;
    try {
      const report = await reconcileStock({ redis, inventory, orders, sku: "hot" });
      outcome = `report released=${report.released}, reservation ${(await inventory.reservation("hot", id))?.state}`;
    } catch (err) {
      outcome = `threw ${(err as Error).message}`;
    }
    expect(outcome).toMatch(/report released=1, reservation released|threw .*bucket/);
  });

  it("a pending order: refused with a message about buckets (not 'deleted from Redis meanwhile')", async () => {
    const { inventory, orders, buy } = await setup();
    const id = await buy("bob");
    const before = await inventory.snapshot("hot");
    await expect(reconcileStock({ redis, inventory, orders, sku: "hot" })).rejects.toThrow(
      /split into buckets: not supported/,
    );
    // Refused before it changes anything.
    expect(await inventory.snapshot("hot")).toEqual(before);
    expect((await inventory.reservation("hot", id))?.state).toBe("held");
    expect((await orders.get(id))?.status).toBe("pending");
  });
});
