// reconcileStock: a SKU's Redis state repaired from the orders in PostgreSQL after Redis lost acknowledged
// writes (an older snapshot restored, the whole SKU gone), with sales going on. Afterwards conservation holds,
// every order the database keeps has its reservation in Redis, and no unit has two owners.
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/errors.js";
import type { SqlClient } from "../../src/internal/sql.js";
import { PostgresOutbox, transaction } from "../../src/outbox/index.js";
import { PostgresOrders, reconcileStock, type Order } from "../../src/orders/index.js";
import { Inventory } from "../../src/stock/index.js";
import { keyspace, randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";
import { BACKENDS, tableName, type Backend } from "../outbox/helpers.js";

let srv: PrivateRedis;
let redis: Redis;
let b: Backend;
let db: SqlClient;
beforeAll(async () => {
  [srv, b] = await Promise.all([startRedis(), BACKENDS[0]!.start(12)]);
  redis = srv.client();
  db = b.db;
});
afterAll(async () => {
  await Promise.all([srv?.stop(), b?.stop()]);
});

const SKU = "phone";

async function setup(total: number, perUserLimit = 1) {
  const prefix = randomPrefix("rc");
  // No in-process sold-out answers: the test rewrites Redis behind the inventory's back.
  const inventory = new Inventory(redis, { prefix, localCacheMs: 0 });
  const outbox = new PostgresOutbox(db, { table: tableName("ob") });
  const orders = new PostgresOrders(db, { stock: inventory, outbox, table: tableName("ord") });
  await outbox.migrate();
  await orders.migrate();
  const settings = { perUserLimit, holdMs: 3_600_000 };
  await inventory.setStock(SKU, total, settings);
  /** A buyer: the reservation in Redis, then its order in the database (what the order worker does). */
  const buy = async (userId: string, quantity = 1): Promise<boolean> => {
    const reservationId = `r-${userId}`;
    const r = await inventory.reserve(SKU, { userId, reservationId, quantity });
    if (!r.ok) return false;
    await transaction(db, (tx) => orders.create(tx, { sku: SKU, userId, reservationId, quantity }));
    return true;
  };
  const keys = Object.values(inventory.keys(SKU));
  const dump = async () => Promise.all(keys.map(async (k) => [k, await redis.dumpBuffer(k)] as const));
  /** Puts the SKU's keys back as they were at `dump()`: the writes since are lost. */
  const restore = async (snapshot: Awaited<ReturnType<typeof dump>>) => {
    for (const [k, v] of snapshot) {
      await redis.del(k);
      if (v !== null) await redis.restore(k, 0, v, "REPLACE");
    }
  };
  const run = () => reconcileStock({ redis, inventory, orders, sku: SKU });
  return { prefix, inventory, orders, settings, buy, dump, restore, run, keys };
}

/** The invariants after a reconciliation. */
async function checkBooks(
  inventory: Inventory,
  orders: PostgresOrders,
  total: number,
  perUserLimit: number,
): Promise<Order[]> {
  const s = (await inventory.snapshot(SKU))!;
  expect(s.available).toBeGreaterThanOrEqual(0);
  expect(s.available + s.held + s.confirmed).toBe(total);
  const all = await orders.listBySku(SKU);
  const live = all.filter((o) => o.status !== "cancelled");
  // No unit sold twice: the orders the database keeps fit in the stock and under the per-user limit.
  expect(live.reduce((n, o) => n + o.quantity, 0)).toBeLessThanOrEqual(total);
  const perUser = new Map<string, number>();
  for (const o of live) perUser.set(o.userId, (perUser.get(o.userId) ?? 0) + o.quantity);
  for (const [user, n] of perUser) {
    expect(n).toBeLessThanOrEqual(perUserLimit);
    expect(await inventory.userQuantity(SKU, user)).toBe(n);
  }
  // Every order the database keeps has its reservation in Redis, in the matching state.
  let held = 0;
  let confirmed = 0;
  for (const o of all) {
    const r = await inventory.reservation(SKU, o.reservationId);
    if (o.status === "pending") {
      expect(r, o.id).toMatchObject({ state: "held", userId: o.userId, quantity: o.quantity });
      held += o.quantity;
    } else if (o.status === "paid") {
      expect(r, o.id).toMatchObject({ state: "confirmed", userId: o.userId, quantity: o.quantity });
      confirmed += o.quantity;
    } else expect(r?.state ?? "released", o.id).toBe("released");
  }
  expect({ held: s.held, confirmed: s.confirmed }).toEqual({ held, confirmed });
  return all;
}

describe("reconcileStock", () => {
  it("repairs the SKU after an older snapshot is restored and its units were sold again", async () => {
    const { inventory, orders, buy, dump, restore, run, prefix } = await setup(10);
    // Before the snapshot: u0..u5 reserve; u0 and u1 pay; u2 is cancelled.
    for (let i = 0; i < 6; i++) expect(await buy(`u${i}`)).toBe(true);
    expect(await orders.pay("r-u0")).toEqual({ ok: true });
    expect(await orders.pay("r-u1")).toEqual({ ok: true });
    expect(await orders.cancelUnpaid("r-u2")).toEqual({ ok: true });
    const snapshot = await dump();
    // Acknowledged after it, then lost: u6..u10 reserve (sold out), u6 pays, u3 is cancelled.
    for (let i = 6; i <= 10; i++) expect(await buy(`u${i}`)).toBe(true);
    expect(await buy("late")).toBe(false); // sold out
    expect(await orders.pay("r-u6")).toEqual({ ok: true });
    expect(await orders.cancelUnpaid("r-u3")).toEqual({ ok: true });
    await restore(snapshot);
    // Redis sells the lost units again: u11..u15 (their orders are written too), and u11 pays.
    for (let i = 11; i <= 15; i++) expect(await buy(`u${i}`)).toBe(true);
    expect(await orders.pay("r-u11")).toEqual({ ok: true });
    // The database now keeps 14 units of orders for 10 units of stock.
    const liveBefore = (await orders.listBySku(SKU)).filter((o) => o.status !== "cancelled");
    expect(liveBefore).toHaveLength(14);

    const report = await run();
    expect(report).toMatchObject({
      sku: SKU,
      orders: 16,
      restored: { held: 4, confirmed: 1 }, // u7..u10 held again, u6 confirmed again
      confirmed: 0,
      released: 1, // u3's cancellation had been lost: its hold is released
      releasedHolds: [],
      refund: [],
    });
    // The orders that came first keep their units; the last ones get none and are cancelled (unpaid).
    expect([...report.cancelled].sort()).toEqual(["r-u12", "r-u13", "r-u14", "r-u15"]);
    expect(report.snapshot).toMatchObject({ initial: 10, available: 0, held: 6, confirmed: 4 });
    const all = await checkBooks(inventory, orders, 10, 1);
    expect(
      all
        .filter((o) => o.status === "cancelled")
        .map((o) => o.id)
        .sort(),
    ).toEqual(["r-u12", "r-u13", "r-u14", "r-u15", "r-u2", "r-u3"]);

    // A second run changes nothing at all.
    const before = await keyspace(redis, `{${prefix}:*`);
    const again = await run();
    expect(again).toMatchObject({
      restored: { held: 0, confirmed: 0 },
      confirmed: 0,
      released: 0,
      cancelled: [],
      releasedHolds: [],
      refund: [],
    });
    expect(await keyspace(redis, `{${prefix}:*`)).toEqual(before);
  });

  it("rebuilds a SKU whose whole state is gone once setStock has recreated it", async () => {
    const { inventory, orders, buy, run, keys, settings } = await setup(5, 2);
    expect(await buy("a", 2)).toBe(true);
    expect(await buy("b")).toBe(true);
    expect(await buy("c")).toBe(true);
    expect(await orders.pay("r-a")).toEqual({ ok: true });
    expect(await orders.cancelUnpaid("r-c")).toEqual({ ok: true });
    await redis.del(...keys);

    await expect(run()).rejects.toThrow(InvalidArgumentError);
    await expect(run()).rejects.toThrow(/setStock it/);
    await inventory.setStock(SKU, 5, settings);
    const report = await run();
    expect(report).toMatchObject({ restored: { held: 1, confirmed: 1 }, cancelled: [], refund: [] });
    expect(report.snapshot).toMatchObject({ initial: 5, available: 2, held: 1, confirmed: 2 });
    await checkBooks(inventory, orders, 5, 2);
    // The per-user limit counts the restored units: a holds 2 of 2.
    expect(await inventory.reserve(SKU, { userId: "a", reservationId: "again" })).toEqual({
      ok: false,
      reason: "LIMIT_REACHED",
    });
    // The restored hold can be paid as usual.
    expect(await orders.pay("r-b")).toEqual({ ok: true });
    expect((await inventory.snapshot(SKU))!.confirmed).toBe(3);
  });

  it("confirms a paid order whose confirm was lost, and releases holds without an order that came last", async () => {
    const { inventory, orders, buy, dump, restore, run } = await setup(3);
    expect(await buy("p")).toBe(true);
    const snapshot = await dump();
    expect(await orders.pay("r-p")).toEqual({ ok: true }); // confirmed in Redis, then lost
    expect(await buy("q")).toBe(true);
    expect(await buy("s")).toBe(true);
    await restore(snapshot);
    // After the loss Redis sells two units again; one reservation has no order yet (the worker lags).
    expect(await buy("t")).toBe(true);
    expect((await inventory.reserve(SKU, { userId: "x", reservationId: "r-x" })).ok).toBe(true);
    const report = await run();
    expect(report).toMatchObject({
      confirmed: 1,
      restored: { held: 2, confirmed: 0 },
      cancelled: ["r-t"],
      releasedHolds: ["r-x"],
      refund: [],
    });
    await checkBooks(inventory, orders, 3, 1);
  });

  it("never gives a unit to two buyers while the sale goes on during the repair", async () => {
    const { inventory, orders, buy, dump, restore, run } = await setup(40);
    for (let i = 0; i < 20; i++) await buy(`a${i}`);
    const snapshot = await dump();
    for (let i = 20; i < 40; i++) await buy(`a${i}`);
    await restore(snapshot); // 20 acknowledged reservations lost
    let stop = false;
    let n = 0;
    const crowd = Array.from({ length: 4 }, async () => {
      while (!stop) await buy(`b${n++}`);
    });
    const report = await run();
    stop = true;
    await Promise.all(crowd);
    // Buyers who reserved during the repair may have a hold without an order, released if it came last.
    const s = (await inventory.snapshot(SKU))!;
    expect(s.available + s.held + s.confirmed).toBe(40);
    const live = (await orders.listBySku(SKU)).filter((o) => o.status !== "cancelled");
    let owned = 0;
    for (const o of live) {
      const r = await inventory.reservation(SKU, o.reservationId);
      if (r?.state === "held" || r?.state === "confirmed") owned += o.quantity;
      else expect(report.releasedHolds).toContain(o.reservationId);
    }
    expect(owned).toBeLessThanOrEqual(40);
    expect(owned).toBe(s.held + s.confirmed);
    // Every acknowledged reservation that was lost and still fits is back.
    for (let i = 20; i < 40; i++) {
      const o = (await orders.get(`r-a${i}`))!;
      if (o.status === "pending") {
        expect(await inventory.reservation(SKU, o.reservationId)).toMatchObject({ state: "held" });
      }
    }
  });

  it("refuses bad input and changes nothing", async () => {
    const { inventory, orders, prefix } = await setup(2);
    const before = await keyspace(redis, `{${prefix}:*`);
    const bad = [
      { redis, inventory, orders, sku: "bad{sku}" },
      { redis, inventory, orders, sku: SKU, extra: 1 },
      { redis, inventory: {} as never, orders, sku: SKU },
      { redis, inventory, orders: {} as never, sku: SKU },
      { redis: {} as never, inventory, orders, sku: SKU },
    ];
    for (const options of bad) {
      await expect(reconcileStock(options as never)).rejects.toThrow(InvalidArgumentError);
    }
    await expect(reconcileStock({ redis, inventory, orders, sku: "unknown" })).rejects.toThrow(
      InvalidArgumentError,
    );
    expect(await keyspace(redis, `{${prefix}:*`)).toEqual(before);
  });
});
