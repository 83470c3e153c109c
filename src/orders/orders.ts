// PostgresOrders: orders created from stock reservations, paid or cancelled exactly once. Creating an order
// enqueues a delayed `payment-timeout` outbox message in the same transaction; when it comes due, an unpaid
// order is cancelled and its reservation released. Paying is the mirror: the order is marked paid, then
// the reservation confirmed. Both are `UPDATE … WHERE status = 'pending'`, so exactly one of them wins.
import { InvalidArgumentError, RedisUnavailableError, UnexpectedReplyError } from "../errors.js";
import { runMigration, sqlRows, type SqlClient } from "../internal/sql.js";
import { optionKeys, validateId, validateInt, validateOptions } from "../internal/validate.js";
import { MAX_QUANTITY, type StockStore } from "../stock/types.js";
import type { PostgresOutbox } from "../outbox/postgres-outbox.js";
import { checkTableName, tableSchema } from "../outbox/sql-names.js";
import { checkSqlClient, checkTransactionClient, ownStatements } from "../outbox/transaction.js";
import { validateTopic, type OutboxMessage } from "../outbox/types.js";

/** Options of `new PostgresOrders()`. */
export interface PostgresOrdersOptions {
  /** Where the reservations live: an `Inventory` (Redis) or a `PostgresInventory`. */
  readonly stock: StockStore;
  /** The outbox that carries the delayed payment-timeout messages. */
  readonly outbox: PostgresOutbox;
  /**
   * The orders table, optionally schema-qualified.
   * @default "fsk_orders"
   */
  readonly table?: string;
  /**
   * How long an order waits for payment before it is cancelled and its stock released. Keep it below the
   * stock's `holdMs` (if any), so that the hold does not run out while the order can still be paid.
   * @default 900000
   */
  readonly paymentTimeoutMs?: number;
  /**
   * The topic of the timeout messages.
   * @default "payment-timeout"
   */
  readonly topic?: string;
}

const KNOWN = optionKeys<PostgresOrdersOptions>({
  stock: 1,
  outbox: 1,
  table: 1,
  paymentTimeoutMs: 1,
  topic: 1,
});

/**
 * Where an order stands: `pending` until paid or cancelled; `paid` and `cancelled` are final.
 *
 * @example
 * ```ts
 * const status: OrderStatus = (await orders.get(orderId))?.status ?? "pending";
 * ```
 */
export type OrderStatus = "pending" | "paid" | "cancelled";

/** A stored order. Times are epoch ms, database time. */
export interface Order {
  readonly id: string;
  readonly sku: string;
  readonly userId: string;
  readonly quantity: number;
  readonly reservationId: string;
  readonly status: OrderStatus;
  readonly createdAt: number;
  readonly paymentDueAt: number;
  readonly paidAt: number | null;
  readonly cancelledAt: number | null;
  readonly cancelReason: string | null;
}

/** What `create` takes: the fields of a `reserved` stock event, so an event can be passed as is. */
export interface CreateOrderInput {
  readonly sku: string;
  readonly userId: string;
  /** @default 1 */
  readonly quantity?: number;
  readonly reservationId: string;
  /** The order id. Omitted: the reservation id (one order per reservation). */
  readonly orderId?: string;
  /** Overrides the instance's `paymentTimeoutMs` for this order. */
  readonly paymentTimeoutMs?: number;
}

/** The outcome of `create`. */
export interface CreateOrderResult {
  readonly orderId: string;
  /** False when the order (or another order for the same reservation) existed already: nothing was written. */
  readonly created: boolean;
}

/** The outcome of `pay`. */
export type PayResult =
  | { readonly ok: true }
  | {
      readonly ok: false;
      /**
       * `CANCELLED`: the payment timeout won. `STOCK_RELEASED`: the order was marked paid but the stock store
       * had already released the reservation (its hold ran out); the order is now cancelled, so refund.
       */
      readonly reason: "CANCELLED" | "STOCK_RELEASED" | "UNKNOWN_ORDER";
    };

/** The outcome of `cancelUnpaid`. */
export type CancelResult =
  { readonly ok: true } | { readonly ok: false; readonly reason: "PAID" | "UNKNOWN_ORDER" };

/** The payload of a payment-timeout message. */
export interface PaymentTimeoutPayload {
  readonly orderId: string;
  readonly sku: string;
  readonly reservationId: string;
}

/**
 * The orders schema (table and indexes) for a table name.
 *
 * @example
 * ```ts
 * await fs.writeFile("migrations/004_orders.sql", ordersSchema("shop.orders"));
 * ```
 */
export function ordersSchema(table = "fsk_orders"): string {
  return tableSchema("orders/orders", table);
}

interface OrderRow {
  id: string;
  sku: string;
  user_id: string;
  quantity: number;
  reservation_id: string;
  status: OrderStatus;
  created_ms: number;
  due_ms: number;
  paid_ms: number | null;
  cancelled_ms: number | null;
  cancel_reason: string | null;
}

const msOrNull = (v: number | null): number | null => (v === null ? null : Math.round(Number(v)));

const ORDER_COLUMNS = `id, sku, user_id, quantity, reservation_id, status, cancel_reason,
  (extract(epoch FROM created_at) * 1000)::float8 AS created_ms,
  (extract(epoch FROM payment_due_at) * 1000)::float8 AS due_ms,
  (extract(epoch FROM paid_at) * 1000)::float8 AS paid_ms,
  (extract(epoch FROM cancelled_at) * 1000)::float8 AS cancelled_ms`;

function toOrder(row: OrderRow): Order {
  return {
    id: row.id,
    sku: row.sku,
    userId: row.user_id,
    quantity: Number(row.quantity),
    reservationId: row.reservation_id,
    status: row.status,
    createdAt: Math.round(Number(row.created_ms)),
    paymentDueAt: Math.round(Number(row.due_ms)),
    paidAt: msOrNull(row.paid_ms),
    cancelledAt: msOrNull(row.cancelled_ms),
    cancelReason: row.cancel_reason,
  };
}

/**
 * Orders with delayed cancellation, on PostgreSQL 13+ or PGlite, over any {@link StockStore}.
 *
 * - `create(tx, reservation)` inserts a pending order and, in the same transaction, enqueues a
 *   `payment-timeout` outbox message due `paymentTimeoutMs` later (database clock).
 * - `handlePaymentTimeout(message)` (the relay's `publish` for that topic) runs
 *   `UPDATE … SET status = 'cancelled' WHERE id = $1 AND status = 'pending'` and, when it changed the row,
 *   releases the reservation: stock and the user's quota come back.
 * - `pay(orderId)` runs `UPDATE … SET status = 'paid' WHERE id = $1 AND status = 'pending'` and, when it
 *   changed the row, confirms the reservation.
 *
 * `pay`, `cancelUnpaid` and `get` run on `db` outside your transactions (on a single connection they wait for
 * the {@link transaction} open on it, like {@link PostgresOutbox}'s own statements): a payment is never
 * undone by the rollback of an unrelated transaction after its stock was confirmed.
 *
 * The row lock decides a race between paying and the timeout: exactly one changes the row, and only the
 * winner touches the stock. Both are safe to repeat: a retried timeout finds the order cancelled and
 * releases again (a no-op in the stock store, but it completes a release that a crash interrupted); a
 * retried payment finds it paid and confirms again.
 *
 * @example
 * ```ts
 * const orders = new PostgresOrders(db, { stock: inventory, outbox, paymentTimeoutMs: 15 * 60_000 });
 * await orders.migrate();
 *
 * // order worker, on a `reserved` event:
 * await transaction(db, (tx) => orders.create(tx, event));
 * // the relay delivers the timeouts:
 * const relay = new OutboxRelay(outbox, { topics: [orders.topic], publish: orders.handlePaymentTimeout });
 * // payment callback:
 * const r = await orders.pay(orderId); // { ok: true } or { ok: false, reason: "CANCELLED" }
 * ```
 */
export class PostgresOrders {
  /** The table name in use. */
  readonly table: string;
  /** The topic of the payment-timeout messages. */
  readonly topic: string;
  /** The default payment timeout. */
  readonly paymentTimeoutMs: number;
  private readonly stock: StockStore;
  private readonly outbox: PostgresOutbox;
  /** `db`, kept out of the caller's transactions (see {@link ownStatements}). */
  private readonly own: SqlClient;

  constructor(db: SqlClient, options: PostgresOrdersOptions) {
    checkSqlClient("db", db);
    this.own = ownStatements("PostgresOrders", db);
    validateOptions("options", options, { required: true, known: KNOWN });
    const s = options.stock as Partial<StockStore> | undefined;
    if (!s || typeof s.confirm !== "function" || typeof s.release !== "function") {
      throw new InvalidArgumentError("stock", "must be a StockStore (Inventory or PostgresInventory)");
    }
    if (!options.outbox || typeof options.outbox.enqueue !== "function") {
      throw new InvalidArgumentError("outbox", "must be a PostgresOutbox");
    }
    this.stock = options.stock;
    this.outbox = options.outbox;
    this.table = checkTableName("table", options.table ?? "fsk_orders");
    this.paymentTimeoutMs = options.paymentTimeoutMs ?? 900_000;
    validateInt("paymentTimeoutMs", this.paymentTimeoutMs, { min: 0 });
    this.topic = options.topic ?? "payment-timeout";
    validateTopic("topic", this.topic);
  }

  /**
   * Creates the orders table if missing (the outbox has its own `migrate`). Idempotent.
   *
   * @example
   * ```ts
   * await outbox.migrate();
   * await orders.migrate();
   * ```
   */
  async migrate(): Promise<void> {
    await runMigration(this.own, ordersSchema(this.table));
  }

  /**
   * Inside the caller's transaction: inserts a pending order for a reservation and enqueues its
   * payment-timeout message (id `payment-timeout:<orderId>`), due `paymentTimeoutMs` from the database's
   * `now()`. Idempotent: an order that exists (by id, or by SKU and reservation) is left alone and no
   * second message is enqueued. A `reserved` stock event can be passed as the input.
   *
   * @example
   * ```ts
   * const { orderId, created } = await transaction(db, (tx) =>
   *   orders.create(tx, { sku: "iphone-17", userId: "u42", reservationId: "req-7f3a" }),
   * );
   * ```
   */
  async create(tx: SqlClient, input: CreateOrderInput): Promise<CreateOrderResult> {
    checkTransactionClient("tx", tx);
    if (typeof input !== "object" || input === null) {
      throw new InvalidArgumentError("input", "must be an object with sku, userId and reservationId");
    }
    validateId("sku", input.sku);
    validateId("userId", input.userId);
    validateId("reservationId", input.reservationId);
    const orderId = input.orderId ?? input.reservationId;
    validateId("orderId", orderId);
    const quantity = input.quantity ?? 1;
    validateInt("quantity", quantity, { min: 1, max: MAX_QUANTITY });
    const timeoutMs = input.paymentTimeoutMs ?? this.paymentTimeoutMs;
    validateInt("paymentTimeoutMs", timeoutMs, { min: 0 });

    const inserted = await sqlRows<{ id: string }>(
      tx,
      `INSERT INTO ${this.table} (id, sku, user_id, quantity, reservation_id, payment_due_at)
       VALUES ($1, $2, $3, $4, $5, now() + $6::float8 * interval '1 millisecond')
       ON CONFLICT DO NOTHING RETURNING id`,
      [orderId, input.sku, input.userId, quantity, input.reservationId, timeoutMs],
    );
    if (inserted.length === 0) {
      const [existing] = await sqlRows<{ id: string }>(
        tx,
        `SELECT id FROM ${this.table} WHERE id = $1 OR (sku = $2 AND reservation_id = $3) LIMIT 1`,
        [orderId, input.sku, input.reservationId],
      );
      return { orderId: existing?.id ?? orderId, created: false };
    }
    const payload: PaymentTimeoutPayload = { orderId, sku: input.sku, reservationId: input.reservationId };
    await this.outbox.enqueue(tx, {
      topic: this.topic,
      id: `${this.topic}:${orderId}`,
      key: orderId,
      payload,
      delayMs: timeoutMs,
    });
    return { orderId, created: true };
  }

  /**
   * Marks a pending order paid (`UPDATE … SET status = 'paid' WHERE id = $1 AND status = 'pending'`) and then
   * confirms its reservation. When the timeout won, answers `CANCELLED` and changes nothing. Repeating a
   * successful payment answers `ok` again (and re-confirms, a no-op).
   *
   * @example
   * ```ts
   * const r = await orders.pay(orderId);
   * if (!r.ok) await refund(orderId, r.reason);
   * ```
   */
  async pay(orderId: string): Promise<PayResult> {
    validateId("orderId", orderId);
    let [row] = await sqlRows<{ sku: string; reservation_id: string; status: OrderStatus }>(
      this.own,
      `UPDATE ${this.table} SET status = 'paid', paid_at = now()
       WHERE id = $1 AND status = 'pending' RETURNING sku, reservation_id, status`,
      [orderId],
    );
    row ??= await this.current(orderId);
    if (row === undefined) return { ok: false, reason: "UNKNOWN_ORDER" };
    if (row.status === "cancelled") return { ok: false, reason: "CANCELLED" };
    return (await this.settlePaid(orderId, row)) ? { ok: true } : { ok: false, reason: "STOCK_RELEASED" };
  }

  /**
   * Confirms a paid order's reservation (idempotent, so it also completes a `pay` that was interrupted after
   * its UPDATE). When the stock store let the reservation go first (its hold expired), the sale cannot
   * stand: the order is cancelled. Returns whether the reservation is confirmed.
   */
  private async settlePaid(orderId: string, row: { sku: string; reservation_id: string }): Promise<boolean> {
    const confirmed = await this.stock.confirm(row.sku, row.reservation_id);
    if (confirmed.ok) return true;
    // A stock store with replicated acknowledgement may not know yet: an error, so the caller pays again.
    if (confirmed.reason === "IN_DOUBT") throw inDoubt("confirm", row.reservation_id);
    await sqlRows(
      this.own,
      `UPDATE ${this.table} SET status = 'cancelled', cancelled_at = now(), cancel_reason = $2
       WHERE id = $1 AND status = 'paid'`,
      [
        orderId,
        confirmed.reason === "RELEASED"
          ? "paid after the stock reservation was released"
          : "the stock store does not know the reservation",
      ],
    );
    return false;
  }

  /**
   * Cancels a pending order (`UPDATE … SET status = 'cancelled' WHERE id = $1 AND status = 'pending'`) and
   * then releases its reservation. A paid order answers `PAID` and is left alone, except that its
   * reservation is confirmed again (a no-op, or the completion of a payment that a crash interrupted
   * between its UPDATE and the confirm; should the stock store have let that reservation go meanwhile, the
   * order is cancelled as in {@link PostgresOrders.pay}). Repeating a cancellation
   * answers `ok` and releases again (a no-op in the stock store, or the completion of a release that a
   * crash interrupted).
   *
   * @example
   * ```ts
   * await orders.cancelUnpaid(orderId, "cancelled by the user");
   * ```
   */
  async cancelUnpaid(orderId: string, reason = "payment timeout"): Promise<CancelResult> {
    validateId("orderId", orderId);
    if (typeof reason !== "string" || reason.length > 1000) {
      throw new InvalidArgumentError("reason", "must be a string of at most 1000 characters");
    }
    let [row] = await sqlRows<{ sku: string; reservation_id: string; status: OrderStatus }>(
      this.own,
      `UPDATE ${this.table} SET status = 'cancelled', cancelled_at = now(), cancel_reason = $2
       WHERE id = $1 AND status = 'pending' RETURNING sku, reservation_id, status`,
      [orderId, reason],
    );
    row ??= await this.current(orderId);
    if (row === undefined) return { ok: false, reason: "UNKNOWN_ORDER" };
    // Paid: finish the confirm in case the payment's own call to the stock store never happened (a crash
    // or an error between its UPDATE and the confirm), or the unit would go back on sale with its hold.
    if (row.status === "paid" && (await this.settlePaid(orderId, row))) return { ok: false, reason: "PAID" };
    const released = await this.stock.release(row.sku, row.reservation_id);
    if (!released.ok && released.reason === "IN_DOUBT") throw inDoubt("release", row.reservation_id);
    return { ok: true };
  }

  /**
   * The handler of payment-timeout messages: cancels the order if it is still unpaid (see
   * {@link PostgresOrders.cancelUnpaid}). Bound to the instance: pass it as the `publish` of a relay
   * restricted to `orders.topic`, or call it from the consumer of a transport.
   *
   * @example
   * ```ts
   * const relay = new OutboxRelay(outbox, { topics: [orders.topic], publish: orders.handlePaymentTimeout });
   * ```
   */
  readonly handlePaymentTimeout = async (
    message: Pick<OutboxMessage, "topic" | "payload">,
  ): Promise<void> => {
    const payload = message?.payload as Partial<PaymentTimeoutPayload> | null | undefined;
    if (message?.topic !== this.topic || typeof payload?.orderId !== "string") {
      throw new UnexpectedReplyError(`not a ${this.topic} message`);
    }
    await this.cancelUnpaid(payload.orderId);
  };

  /**
   * Reads an order, or `null`.
   *
   * @example
   * ```ts
   * const order = await orders.get(orderId); // { status: "pending", paymentDueAt: …, … }
   * ```
   */
  async get(orderId: string): Promise<Order | null> {
    validateId("orderId", orderId);
    const [row] = await sqlRows<OrderRow>(
      this.own,
      `SELECT ${ORDER_COLUMNS} FROM ${this.table} WHERE id = $1`,
      [orderId],
    );
    return row === undefined ? null : toOrder(row);
  }

  /**
   * Every order of a SKU, oldest first (by creation, then id): what {@link reconcileStock} rebuilds the
   * SKU's Redis state from. Reads them all at once: meant for repairs and audits, not for a hot path.
   *
   * @example
   * ```ts
   * const sold = (await orders.listBySku("iphone-17")).filter((o) => o.status === "paid");
   * ```
   */
  async listBySku(sku: string): Promise<Order[]> {
    validateId("sku", sku);
    const rows = await sqlRows<OrderRow>(
      this.own,
      `SELECT ${ORDER_COLUMNS} FROM ${this.table} WHERE sku = $1 ORDER BY created_at, id`,
      [sku],
    );
    return rows.map(toOrder);
  }

  private async current(
    orderId: string,
  ): Promise<{ sku: string; reservation_id: string; status: OrderStatus } | undefined> {
    const [row] = await sqlRows<{ sku: string; reservation_id: string; status: OrderStatus }>(
      this.own,
      `SELECT sku, reservation_id, status FROM ${this.table} WHERE id = $1`,
      [orderId],
    );
    return row;
  }
}

/** A stock step whose outcome is in doubt: thrown, so that the message or the payment is retried. */
function inDoubt(step: string, reservationId: string): RedisUnavailableError {
  return new RedisUnavailableError(`${step} of reservation ${reservationId} is in doubt; repeat the call`);
}
