// PostgresOrders: delayed cancellation through the outbox, and payment racing the timeout. Runs with
// Inventory (Redis) on the machine's PostgreSQL, and with PostgresInventory on PGlite.
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/errors.js";
import type { SqlClient } from "../../src/internal/sql.js";
import {
  OutboxRelay,
  PostgresInbox,
  PostgresOutbox,
  RedisStreamConsumer,
  transaction,
} from "../../src/outbox/index.js";
import { PostgresOrders, readStockEvent } from "../../src/orders/index.js";
import { Inventory, PostgresInventory, type StockStore } from "../../src/stock/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";
import { BACKENDS, count, sleep, tableName, until, type Backend } from "./helpers.js";

interface Setup {
  name: string;
  db: SqlClient;
  stock: StockStore;
  /** Units the user holds plus has confirmed (the per-user limit's count). */
  userQuantity(sku: string, userId: string): Promise<number>;
  redis?: Redis;
  stop(): Promise<void>;
}

const SETUPS = [
  {
    name: "Inventory on Redis, orders on PostgreSQL",
    async start(): Promise<Setup> {
      const [srv, b]: [PrivateRedis, Backend] = await Promise.all([startRedis(), BACKENDS[0]!.start(24)]);
      const redis = srv.client();
      const inventory = new Inventory(redis, { prefix: randomPrefix() });
      return {
        name: this.name,
        db: b.db,
        stock: inventory,
        redis,
        userQuantity: (sku, userId) => inventory.userQuantity(sku, userId),
        stop: async () => void (await Promise.all([srv.stop(), b.stop()])),
      };
    },
  },
  {
    name: "PostgresInventory and orders on PGlite",
    async start(): Promise<Setup> {
      const b = await BACKENDS[1]!.start();
      const stock = new PostgresInventory(b.db, { tablePrefix: "st_" });
      await stock.migrate();
      return {
        name: this.name,
        db: b.db,
        stock,
        userQuantity: async (sku, userId) =>
          count(
            b.db,
            "SELECT coalesce(sum(quantity), 0)::int AS n FROM st_stock_user WHERE sku = $1 AND user_id = $2",
            [sku, userId],
          ),
        stop: () => b.stop(),
      };
    },
  },
];

describe.each(SETUPS)("PostgresOrders: $name", (setup) => {
  let s: Setup;
  let outbox: PostgresOutbox;
  beforeAll(async () => {
    s = await setup.start();
  });
  afterAll(async () => s?.stop());

  /** Orders over a fresh outbox (assigned to `outbox`), so that each test counts only its own messages. */
  async function freshOrders(paymentTimeoutMs = 60_000): Promise<PostgresOrders> {
    outbox = new PostgresOutbox(s.db, { table: tableName("ob") });
    await outbox.migrate();
    const orders = new PostgresOrders(s.db, {
      stock: s.stock,
      outbox,
      table: tableName("orders"),
      paymentTimeoutMs,
    });
    await orders.migrate();
    await orders.migrate();
    return orders;
  }

  async function sale(units: number, options: { holdMs?: number } = {}): Promise<string> {
    const sku = `sku-${randomUUID().slice(0, 8)}`;
    await s.stock.setStock(sku, units, { perUserLimit: 1, ...options });
    return sku;
  }

  async function reserve(sku: string, userId: string) {
    const r = await s.stock.reserve(sku, { userId });
    if (!r.ok) throw new Error(`reserve failed: ${r.reason}`);
    return { sku, userId, quantity: 1, reservationId: r.reservationId };
  }

  it("creates the order and its delayed payment-timeout message in one transaction", async () => {
    const orders = await freshOrders(90_000);
    const sku = await sale(5);
    const r = await reserve(sku, "u1");
    expect(await transaction(s.db, (tx) => orders.create(tx, r))).toEqual({
      orderId: r.reservationId,
      created: true,
    });
    const order = await orders.get(r.reservationId);
    expect(order).toMatchObject({
      sku,
      userId: "u1",
      quantity: 1,
      reservationId: r.reservationId,
      status: "pending",
    });
    expect(order!.paymentDueAt - order!.createdAt).toBe(90_000);
    const message = await outbox.get(`payment-timeout:${r.reservationId}`);
    expect(message).toMatchObject({
      topic: "payment-timeout",
      key: r.reservationId,
      payload: { orderId: r.reservationId, sku, reservationId: r.reservationId },
      status: "pending",
    });
    expect(message!.availableAt).toBe(order!.paymentDueAt);

    // Idempotent: the same reservation again writes nothing.
    expect(await transaction(s.db, (tx) => orders.create(tx, { ...r, orderId: "another-id" }))).toEqual({
      orderId: r.reservationId,
      created: false,
    });
    expect(await count(s.db, `SELECT count(*) AS n FROM ${orders.table}`)).toBe(1);

    // Rolled back with the business transaction: neither the order nor its timeout exists.
    const r2 = await reserve(sku, "u2");
    await expect(
      transaction(s.db, async (tx) => {
        await orders.create(tx, r2);
        throw new Error("payment provider rejected the checkout");
      }),
    ).rejects.toThrow("rejected");
    expect(await orders.get(r2.reservationId)).toBeNull();
    expect(await outbox.get(`payment-timeout:${r2.reservationId}`)).toBeNull();
  });

  it("cancels an unpaid order when the timeout comes due and gives the stock and quota back", async () => {
    const orders = await freshOrders(300);
    const sku = await sale(3);
    const r = await reserve(sku, "u1");
    await transaction(s.db, (tx) => orders.create(tx, r));
    const relay = new OutboxRelay(outbox, { topics: [orders.topic], publish: orders.handlePaymentTimeout });
    expect((await relay.runOnce()).claimed).toBe(0); // not due yet
    expect((await s.stock.snapshot(sku))!.available).toBe(2);
    await sleep(350);
    expect(await relay.runOnce()).toEqual({ claimed: 1, sent: 1, retried: 0, dead: 0, resent: 0 });
    expect(await orders.get(r.reservationId)).toMatchObject({
      status: "cancelled",
      cancelReason: "payment timeout",
    });
    expect(await s.stock.snapshot(sku)).toMatchObject({ available: 3, held: 0, confirmed: 0 });
    expect(await s.userQuantity(sku, "u1")).toBe(0);
    expect(await orders.pay(r.reservationId)).toEqual({ ok: false, reason: "CANCELLED" });
    expect(await s.stock.snapshot(sku)).toMatchObject({ available: 3, held: 0, confirmed: 0 });
  });

  it("pays a pending order and confirms its stock; the later timeout changes nothing", async () => {
    const orders = await freshOrders(0);
    const sku = await sale(3);
    const r = await reserve(sku, "u1");
    await transaction(s.db, (tx) => orders.create(tx, r));
    expect(await orders.pay(r.reservationId)).toEqual({ ok: true });
    expect(await orders.pay(r.reservationId)).toEqual({ ok: true }); // a retried payment callback
    const relay = new OutboxRelay(outbox, { topics: [orders.topic], publish: orders.handlePaymentTimeout });
    expect((await relay.runOnce()).sent).toBe(1);
    expect(await orders.get(r.reservationId)).toMatchObject({ status: "paid", cancelledAt: null });
    expect(await s.stock.snapshot(sku)).toMatchObject({ available: 2, held: 0, confirmed: 1 });
    expect(await orders.cancelUnpaid(r.reservationId)).toEqual({ ok: false, reason: "PAID" });
    expect(await orders.pay("nope")).toEqual({ ok: false, reason: "UNKNOWN_ORDER" });
    expect(await orders.cancelUnpaid("nope")).toEqual({ ok: false, reason: "UNKNOWN_ORDER" });
  });

  it(
    "pay racing the timeout for 1,000 orders (400 on PGlite): each ends paid xor cancelled, stock back exactly for the cancelled",
    { timeout: 120_000 },
    async () => {
      const orders = await freshOrders(0); // every timeout is due at once
      const N = s.name.includes("PostgreSQL") ? 1000 : 400; // PGlite: one connection, a smaller crowd
      const sku = await sale(N);
      const reservations: Awaited<ReturnType<typeof reserve>>[] = [];
      for (let i = 0; i < N; i += 50) {
        reservations.push(
          ...(await Promise.all(
            Array.from({ length: Math.min(50, N - i) }, (_, j) => reserve(sku, `u${i + j}`)),
          )),
        );
      }
      for (let i = 0; i < N; i += 100) {
        await transaction(s.db, async (tx) => {
          for (const r of reservations.slice(i, i + 100)) await orders.create(tx, r);
        });
      }
      expect(await s.stock.snapshot(sku)).toMatchObject({ available: 0, held: N });

      const onPostgres = s.name.includes("PostgreSQL");
      const relays = [0, 1].map(
        () =>
          new OutboxRelay(outbox, {
            topics: [orders.topic],
            batchSize: 50,
            concurrency: onPostgres ? 4 : 1,
            pollIntervalMs: 10,
            publish: orders.handlePaymentTimeout,
          }),
      );
      const ids = reservations.map((r) => r.reservationId).sort(() => Math.random() - 0.5);
      const payResults = new Map<string, string>();
      let next = 0;
      const payer = async () => {
        while (next < ids.length) {
          const id = ids[next++]!;
          const r = await orders.pay(id);
          payResults.set(id, r.ok ? "ok" : r.reason);
        }
      };
      await Promise.all([
        ...relays.map((r) => r.start()),
        ...Array.from({ length: onPostgres ? 8 : 1 }, payer),
      ]);
      await until(async () => (await outbox.stats()).pending === 0, 60_000, "every timeout delivered");
      await Promise.all(relays.map((r) => r.stop()));

      const { rows } = await s.db.query(`SELECT id, user_id, status FROM ${orders.table}`);
      const final = rows as { id: string; user_id: string; status: string }[];
      expect(final).toHaveLength(N);
      const paid = final.filter((o) => o.status === "paid");
      const cancelled = final.filter((o) => o.status === "cancelled");
      expect(paid.length + cancelled.length).toBe(N);
      // A race, not a walkover: both sides won some orders.
      expect(paid.length).toBeGreaterThan(0);
      expect(cancelled.length).toBeGreaterThan(0);
      for (const o of final) expect(payResults.get(o.id)).toBe(o.status === "paid" ? "ok" : "CANCELLED");
      expect(await s.stock.snapshot(sku)).toMatchObject({
        initial: N,
        available: cancelled.length,
        held: 0,
        confirmed: paid.length,
      });
      for (const o of [...paid.slice(0, 50), ...cancelled.slice(0, 50)]) {
        expect(await s.userQuantity(sku, o.user_id)).toBe(o.status === "paid" ? 1 : 0);
      }
      console.log(`${s.name}: ${paid.length} paid, ${cancelled.length} cancelled`);
    },
  );

  it("exactly one of pay and cancel wins each order when called at the same moment", async () => {
    const orders = await freshOrders();
    const sku = await sale(100);
    const rs = await Promise.all(Array.from({ length: 100 }, (_, i) => reserve(sku, `u${i}`)));
    await transaction(s.db, async (tx) => {
      for (const r of rs) await orders.create(tx, r);
    });
    const results = await Promise.all(
      rs.map(async (r) => {
        const [p, c] = await Promise.all([orders.pay(r.reservationId), orders.cancelUnpaid(r.reservationId)]);
        return [p.ok, c.ok];
      }),
    );
    for (const [p, c] of results) expect(p !== c).toBe(true);
    const paid = results.filter(([p]) => p).length;
    expect(await s.stock.snapshot(sku)).toMatchObject({ available: 100 - paid, held: 0, confirmed: paid });
  });

  it("completes a release that a crash interrupted when the timeout is delivered again", async () => {
    const orders = await freshOrders();
    const sku = await sale(2);
    const r = await reserve(sku, "u1");
    await transaction(s.db, (tx) => orders.create(tx, r));
    // The order was cancelled, then the process died before Inventory.release.
    await s.db.query(`UPDATE ${orders.table} SET status = 'cancelled' WHERE id = $1`, [r.reservationId]);
    expect((await s.stock.snapshot(sku))!.held).toBe(1);
    await orders.handlePaymentTimeout({ topic: orders.topic, payload: { orderId: r.reservationId } });
    expect(await s.stock.snapshot(sku)).toMatchObject({ available: 2, held: 0 });
    await orders.handlePaymentTimeout({ topic: orders.topic, payload: { orderId: r.reservationId } });
    expect(await s.stock.snapshot(sku)).toMatchObject({ available: 2, held: 0 });
    await expect(orders.handlePaymentTimeout({ topic: "other", payload: {} })).rejects.toThrow(
      /not a payment-timeout/,
    );
  });

  it("completes a confirm that a crash interrupted when the timeout is delivered to the paid order", async () => {
    const orders = await freshOrders();
    const sku = await sale(1, { holdMs: 60_000 });
    const r = await reserve(sku, "u1");
    await transaction(s.db, (tx) => orders.create(tx, r));
    // The payment's UPDATE committed, then the process died before the stock store's confirm.
    await s.db.query(`UPDATE ${orders.table} SET status = 'paid' WHERE id = $1`, [r.reservationId]);
    expect(await s.stock.snapshot(sku)).toMatchObject({ held: 1, confirmed: 0 });
    await orders.handlePaymentTimeout({ topic: orders.topic, payload: { orderId: r.reservationId } });
    expect((await orders.get(r.reservationId))!.status).toBe("paid");
    // The unit is the paid order's for good: confirmed, so no hold expiry can put it back on sale.
    expect(await s.stock.snapshot(sku)).toMatchObject({ available: 0, held: 0, confirmed: 1 });
    expect(await orders.cancelUnpaid(r.reservationId)).toEqual({ ok: false, reason: "PAID" });
    expect(await s.stock.snapshot(sku)).toMatchObject({ available: 0, held: 0, confirmed: 1 });
  });

  it("a paid order whose interrupted confirm lost the race with its hold's expiry is cancelled by the timeout", async () => {
    const orders = await freshOrders();
    const sku = await sale(1, { holdMs: 100 });
    const r = await reserve(sku, "u1");
    await transaction(s.db, (tx) => orders.create(tx, r));
    await s.db.query(`UPDATE ${orders.table} SET status = 'paid' WHERE id = $1`, [r.reservationId]);
    await sleep(200);
    await s.stock.expireHolds(sku);
    await orders.handlePaymentTimeout({ topic: orders.topic, payload: { orderId: r.reservationId } });
    expect(await orders.get(r.reservationId)).toMatchObject({
      status: "cancelled",
      cancelReason: "paid after the stock reservation was released",
    });
    expect(await orders.pay(r.reservationId)).toEqual({ ok: false, reason: "CANCELLED" });
    expect(await s.stock.snapshot(sku)).toMatchObject({ available: 1, held: 0, confirmed: 0 });
  });

  it("answers STOCK_RELEASED and cancels when the stock hold expired before the payment", async () => {
    const orders = await freshOrders();
    const sku = await sale(2, { holdMs: 100 });
    const r = await reserve(sku, "u1");
    await transaction(s.db, (tx) => orders.create(tx, r));
    await sleep(200);
    expect(await orders.pay(r.reservationId)).toEqual({ ok: false, reason: "STOCK_RELEASED" });
    expect(await orders.get(r.reservationId)).toMatchObject({
      status: "cancelled",
      cancelReason: "paid after the stock reservation was released",
    });
    expect(await s.stock.snapshot(sku)).toMatchObject({ available: 2, held: 0, confirmed: 0 });
  });

  it("validates input", async () => {
    const orders = await freshOrders();
    const good = { sku: "s", userId: "u", reservationId: "r" };
    await expect(
      transaction(s.db, (tx) => orders.create(tx, { ...good, sku: "a{b}" })),
    ).rejects.toMatchObject({
      argument: "sku",
    });
    await expect(
      transaction(s.db, (tx) => orders.create(tx, { ...good, quantity: 0 })),
    ).rejects.toMatchObject({
      argument: "quantity",
    });
    await expect(orders.pay("")).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(() => new PostgresOrders(s.db, { stock: {} as never, outbox })).toThrow(InvalidArgumentError);
    expect(() => new PostgresOrders(s.db, { stock: s.stock, outbox, paymentTimeout: 5 } as never)).toThrow(
      expect.objectContaining({ argument: "options.paymentTimeout" }),
    );
    expect(() => new PostgresInbox(s.db, { tabel: "x" } as never)).toThrow(
      expect.objectContaining({ argument: "options.tabel" }),
    );
    expect(() => new PostgresOrders(s.db, { stock: s.stock, outbox, paymentTimeoutMs: -1 })).toThrow(
      InvalidArgumentError,
    );
    expect(() => new PostgresOrders(s.db, { stock: s.stock, outbox, table: "a;b" })).toThrow(
      InvalidArgumentError,
    );
  });

  it("the order worker: creates one order per reserved event read from Inventory's stream", async (ctx) => {
    if (!s.redis) return ctx.skip();
    const inventory = s.stock as Inventory;
    const orders = await freshOrders();
    const inbox = new PostgresInbox(s.db, { table: tableName("ib") });
    await inbox.migrate();
    const sku = await sale(20);
    const made: string[] = [];
    for (let i = 0; i < 10; i++) made.push((await reserve(sku, `w${i}`)).reservationId);
    await inventory.release(sku, made[0]!); // a released event: no order for it
    const consumer = new RedisStreamConsumer(s.redis, {
      streams: [inventory.keys(sku).events],
      group: "orders",
      consumer: "worker-1",
      handler: async (entry) => {
        const event = readStockEvent(entry);
        if (event.type !== "reserved") return;
        await transaction(s.db, (tx) =>
          inbox.processOnce(tx, { consumer: "orders", messageId: `${entry.stream}/${entry.id}` }, (t) =>
            orders.create(t, event),
          ),
        );
      },
    });
    expect(await consumer.runOnce()).toMatchObject({ delivered: 11, acked: 11, failed: 0 });
    expect(await count(s.db, `SELECT count(*) AS n FROM ${orders.table}`)).toBe(10);
    for (const id of made) expect((await orders.get(id))!.status).toBe("pending");
  });
});
