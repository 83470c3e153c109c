// PostgresInventory group commit under a mix of writers of one SKU on PostgreSQL (two pools, as two
// processes): batched reserves with replays, confirms, releases, expiry sweeps and setStock at once. Looks for
// deadlocks (40P01) or any error, conservation, and the per-user cap.
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConflictError } from "../../src/errors.js";
import { PostgresInventory } from "../../src/stock/index.js";
import { startPostgres, type PrivateDatabase } from "../support/postgres.js";

let pgdb: PrivateDatabase;
let other: pg.Pool;
beforeAll(async () => {
  pgdb = await startPostgres(8);
  other = new pg.Pool({ connectionString: pgdb.url, max: 8 });
  other.on("error", () => {});
});
afterAll(async () => {
  await other?.end();
  await pgdb?.stop();
});

describe("PostgresInventory group commit, mixed writers", () => {
  it("no error, conservation and per-user cap with reserve/confirm/release/expire/setStock at once", async () => {
    const a = new PostgresInventory(pgdb.pool, { tablePrefix: "ra_" });
    const b = new PostgresInventory(other, { tablePrefix: "ra_" });
    await a.migrate();
    const sku = `sku-${randomUUID().slice(0, 8)}`;
    const limit = 2;
    await a.setStock(sku, 150, { perUserLimit: limit, holdMs: 30 });
    const errors: unknown[] = [];
    const ids: string[] = [];
    const ops: Promise<unknown>[] = [];
    for (let round = 0; round < 12; round++) {
      for (let i = 0; i < 40; i++) {
        const inv = i % 2 === 0 ? a : b;
        const user = `u${(round * 7 + i) % 60}`;
        const id = `r${round}-${i % 30}`; // ids 30..39 repeat 0..9 of the round: replays or conflicts
        ops.push(
          inv.reserve(sku, { userId: user, reservationId: id, quantity: 1 + (i % 2) }).then(
            (r) => {
              if (r.ok) ids.push(id);
            },
            (e: unknown) => {
              if (!(e instanceof ConflictError)) errors.push(e);
            },
          ),
        );
      }
      for (const id of ids.slice(-20)) {
        const inv = id.length % 2 === 0 ? a : b;
        ops.push(
          (Math.random() < 0.5 ? inv.confirm(sku, id) : inv.release(sku, id)).catch((e) => errors.push(e)),
        );
      }
      ops.push(a.expireHolds(sku, { limit: 50 }).catch((e) => errors.push(e)));
      ops.push(b.expireHolds(sku, { limit: 50 }).catch((e) => errors.push(e)));
      if (round % 4 === 3) {
        ops.push(
          b.setStock(sku, 150 + round, { perUserLimit: limit, holdMs: 30 }).catch((e) => {
            if (!(e instanceof ConflictError)) errors.push(e);
          }),
        );
      }
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(ops);
    expect(errors.map((e) => String(e))).toEqual([]);
    const s = await a.snapshot(sku);
    expect(s!.available + s!.held + s!.confirmed).toBe(s!.initial);
    const over = await pgdb.pool.query(
      `SELECT user_id, sum(quantity) AS q FROM ra_reservation WHERE sku = $1 AND state IN ('H','C')
       GROUP BY user_id HAVING sum(quantity) > $2`,
      [sku, limit],
    );
    expect(over.rows).toEqual([]);
    const users = await pgdb.pool.query(
      `SELECT u.user_id FROM ra_stock_user u LEFT JOIN (SELECT user_id, sum(quantity) AS q FROM ra_reservation
       WHERE sku = $1 AND state IN ('H','C') GROUP BY user_id) r USING (user_id)
       WHERE u.sku = $1 AND u.quantity <> coalesce(r.q, 0)`,
      [sku],
    );
    expect(users.rows).toEqual([]);
  }, 30_000);
});
