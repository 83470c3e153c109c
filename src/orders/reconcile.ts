// reconcileStock: repairs a SKU's Redis state from the database of record (the orders) after Redis lost
// acknowledged writes (a failover without replicated acknowledgement, an older snapshot restored), so that no
// unit is sold twice.
import { InvalidArgumentError, UnexpectedReplyError } from "../errors.js";
import { validateRedisClient } from "../internal/client.js";
import { defineScript, replyInts, toRedisError, type RedisClient } from "../internal/scripts.js";
import { optionKeys, validateId, validateOptions } from "../internal/validate.js";
import type { Inventory } from "../stock/inventory.js";
import type { InventorySnapshot } from "../stock/types.js";
import type { Order, PostgresOrders } from "./orders.js";

/** 0 restored, 1 present, 2 short of stock, 3 past the user's limit, -1 unknown SKU; one per reservation. */
const RECONCILE = defineScript("stock/reconcile", (r) => replyInts("stock/reconcile", r));

/** Reservations per script call: each call is atomic on its own, and short enough not to hold Redis long. */
const CHUNK = 500;

/** Arguments of {@link reconcileStock}. */
export interface ReconcileStockOptions {
  /** The Redis client the inventory was built on. */
  readonly redis: RedisClient;
  /** The SKU's inventory (the `stock` the orders were built on). */
  readonly inventory: Inventory;
  /** The database of record. */
  readonly orders: PostgresOrders;
  readonly sku: string;
}

const KNOWN = optionKeys<ReconcileStockOptions>({ redis: 1, inventory: 1, orders: 1, sku: 1 });

/** What {@link reconcileStock} did. Ids are order ids, except `releasedHolds` (reservation ids). */
export interface ReconcileReport {
  readonly sku: string;
  /** Orders of the SKU in the database, all statuses. */
  readonly orders: number;
  /** Reservations written back into Redis: `held` for pending orders, `confirmed` for paid ones. */
  readonly restored: { readonly held: number; readonly confirmed: number };
  /** Paid orders whose reservation Redis still held (the confirm was lost): confirmed now. */
  readonly confirmed: number;
  /** Cancelled orders whose reservation Redis still held (the release was lost): released now. */
  readonly released: number;
  /**
   * Pending orders cancelled because no unit (or no room under the per-user limit) was left for them: the
   * units had gone to earlier orders. Tell those buyers; nothing was paid.
   */
  readonly cancelled: readonly string[];
  /**
   * Reservations Redis held that have no order yet (made after the loss, their order not written yet),
   * released because their units belong to orders that came first. Their orders, when the worker writes
   * them, cannot be paid (`pay` answers `STOCK_RELEASED`).
   */
  readonly releasedHolds: readonly string[];
  /**
   * Paid orders left without a unit: the SKU has fewer units than its paid orders, or the hold had run out
   * before the payment (`pay` cancelled the order). Refund them, or raise the stock and reconcile again.
   */
  readonly refund: readonly string[];
  /** The SKU as the repair left it. */
  readonly snapshot: InventorySnapshot;
}

interface StoredReservation {
  readonly state: "H" | "C" | "R";
  readonly quantity: number;
  readonly userId: string;
  /** Units left right after it was made: the larger, the earlier (for holds that have no order yet). */
  readonly remaining: number;
}

/** A claim on the SKU's units, in the order they are served. */
type Claim =
  | { readonly kind: "order"; readonly order: Order; readonly stored: StoredReservation | undefined }
  | { readonly kind: "hold"; readonly reservationId: string; readonly stored: StoredReservation };

/**
 * Repairs one SKU's Redis state from the orders in PostgreSQL, the database of record, after Redis lost
 * acknowledged writes (a failover that promoted a replica behind its master, an older snapshot restored):
 * afterwards every pending order holds its reservation, every paid order has it confirmed, no cancelled
 * order holds one, `available + held + confirmed === initial`, and no unit has two owners.
 *
 * The SKU must exist in Redis: when its whole state is gone, `setStock` it first (its total and settings),
 * then reconcile. The units are served in this order: paid orders whose reservation Redis still has, the
 * other paid orders, pending orders oldest first, then reservations Redis holds without an order (made after
 * the loss, their order not written yet), and each claim is kept only while the total and the per-user limit
 * allow. Then:
 *
 * - a cancelled order whose reservation Redis still holds: released (`Inventory.release`);
 * - a claim that does not fit: a pending order is cancelled (`cancelUnpaid`, its hold released), a hold
 *   without an order is released, a paid order is reported in `refund`;
 * - a kept order whose reservation Redis lost: written back (`lua/stock/reconcile.lua`: held with a fresh
 *   hold for a pending order, confirmed for a paid one, with the user's units), atomically per chunk of 500;
 * - a paid order whose reservation Redis still holds: confirmed (`orders.pay` again, which cancels the
 *   order when the hold had run out: reported in `refund`).
 *
 * Safe to run again (a second run changes nothing) and while the sale goes on: a unit sold in between is
 * never given to two buyers (a write-back that no longer fits cancels its pending order instead), but the
 * fairest outcome comes from running it with the SKU's sale paused. Reads every order and reservation of the
 * SKU into memory. A SKU split into buckets (`setStock`'s `buckets`) is refused with
 * {@link InvalidArgumentError} ("split into buckets: not supported") and nothing is changed.
 *
 * @example
 * ```ts
 * import { reconcileStock } from "flash-sale-kit/orders";
 *
 * // after a failover that may have lost acknowledged reservations:
 * const report = await reconcileStock({ redis, inventory, orders, sku: "iphone-17" });
 * for (const orderId of report.refund) await refund(orderId);
 * ```
 */
export async function reconcileStock(options: ReconcileStockOptions): Promise<ReconcileReport> {
  validateOptions("options", options, { required: true, known: KNOWN });
  const { redis, inventory, orders, sku } = options;
  validateRedisClient("redis", redis);
  if (!inventory || typeof inventory.keys !== "function" || typeof inventory.snapshot !== "function") {
    throw new InvalidArgumentError("inventory", "must be an Inventory");
  }
  if (!orders || typeof orders.listBySku !== "function") {
    throw new InvalidArgumentError("orders", "must be a PostgresOrders");
  }
  validateId("sku", sku);
  const before = await inventory.snapshot(sku);
  if (before?.buckets !== undefined) {
    // Its reservations and counters are spread over the buckets' keys, which this repair does not read.
    throw new InvalidArgumentError(
      "sku",
      `${JSON.stringify(sku)} is split into buckets: not supported (reconcileStock repairs a one-bucket SKU); nothing was changed`,
    );
  }
  if (before === null) {
    throw new InvalidArgumentError(
      "sku",
      `${JSON.stringify(sku)} is not set in Redis: setStock it (its total and settings) first, then reconcile`,
    );
  }
  const keys = inventory.keys(sku);
  const [stored, all] = await Promise.all([readReservations(redis, keys.stock), orders.listBySku(sku)]);

  let released = 0;
  let confirmed = 0;
  const restored = { held: 0, confirmed: 0 };
  const cancelled: string[] = [];
  const releasedHolds: string[] = [];
  const refund: string[] = [];
  const reason = "reconciliation after a Redis loss: no unit left for this order";

  // Cancelled orders whose hold survived (the release was lost).
  for (const order of all) {
    if (order.status !== "cancelled" || stored.get(order.reservationId)?.state !== "H") continue;
    const r = await inventory.release(sku, order.reservationId);
    if (r.ok) released++;
  }

  // Orders whose reservation Redis released (a hold that ran out, a confirm lost before it): the unit went
  // back to stock and may have been sold again. A paid one is reported for a refund, a pending one cancelled.
  for (const order of all) {
    if (order.status === "cancelled" || stored.get(order.reservationId)?.state !== "R") continue;
    await dropOrder(order, true);
  }

  // Who gets the units, in order.
  const claims: Claim[] = [];
  const ordered = new Set(all.map((o) => o.reservationId));
  const paid = all.filter((o) => o.status === "paid" && stored.get(o.reservationId)?.state !== "R");
  claims.push(
    ...paid.filter((o) => stored.has(o.reservationId)).map((o) => orderClaim(o, stored)),
    ...paid.filter((o) => !stored.has(o.reservationId)).map((o) => orderClaim(o, stored)),
    ...all
      .filter((o) => o.status === "pending" && stored.get(o.reservationId)?.state !== "R")
      .map((o) => orderClaim(o, stored)),
  );
  const orphans = [...stored]
    .filter(([id, s]) => !ordered.has(id) && s.state !== "R")
    .sort(([, a], [, b]) => (a.state === b.state ? b.remaining - a.remaining : a.state === "C" ? -1 : 1));
  for (const [reservationId, s] of orphans) claims.push({ kind: "hold", reservationId, stored: s });

  const total = before.initial === -1 ? Infinity : before.initial;
  let used = 0;
  const perUser = new Map<string, number>();
  const kept: Claim[] = [];
  for (const c of claims) {
    const { quantity, userId } = c.kind === "order" ? c.order : c.stored;
    const mine = perUser.get(userId) ?? 0;
    // A confirmed orphan is a sale Redis made: it keeps its unit whatever the count says.
    const fits =
      (used + quantity <= total && mine + quantity <= before.perUserLimit) ||
      (c.kind === "hold" && c.stored.state === "C");
    if (fits) {
      used += quantity;
      perUser.set(userId, mine + quantity);
      kept.push(c);
    } else if (c.kind === "hold") {
      const r = await inventory.release(sku, c.reservationId);
      if (r.ok) releasedHolds.push(c.reservationId);
    } else await dropOrder(c.order, c.stored !== undefined);
  }

  // Write back what Redis lost, in chunks.
  const missing = kept.filter(
    (c): c is Extract<Claim, { kind: "order" }> => c.kind === "order" && c.stored === undefined,
  );
  for (let i = 0; i < missing.length; i += CHUNK) {
    const chunk = missing.slice(i, i + CHUNK);
    const args: (string | number)[] = [];
    for (const { order } of chunk) {
      args.push(order.reservationId, order.userId, order.quantity, order.status === "paid" ? "C" : "H");
    }
    const codes = await RECONCILE.run(redis, [keys.stock, keys.holds, keys.events], args);
    if (codes.length !== chunk.length) {
      throw new UnexpectedReplyError(`stock/reconcile replied ${codes.length} codes for ${chunk.length}`);
    }
    for (let j = 0; j < chunk.length; j++) {
      const { order } = chunk[j]!;
      const code = codes[j];
      if (code === 0) restored[order.status === "paid" ? "confirmed" : "held"]++;
      else if (code === 2 || code === 3)
        await dropOrder(order, false); // sold meanwhile
      else if (code === -1) {
        throw new InvalidArgumentError("sku", `${JSON.stringify(sku)} was deleted from Redis meanwhile`);
      } else if (code !== 1) throw new UnexpectedReplyError(`stock/reconcile returned code ${code}`);
    }
  }

  // Paid orders still held: the confirm was lost.
  for (const c of kept) {
    if (c.kind !== "order" || c.order.status !== "paid" || c.stored?.state !== "H") continue;
    const r = await orders.pay(c.order.id);
    if (r.ok) confirmed++;
    else refund.push(c.order.id);
  }

  const snapshot = await inventory.snapshot(sku);
  if (snapshot === null) {
    throw new InvalidArgumentError("sku", `${JSON.stringify(sku)} was deleted from Redis meanwhile`);
  }
  return {
    sku,
    orders: all.length,
    restored,
    confirmed,
    released,
    cancelled,
    releasedHolds,
    refund,
    snapshot,
  };

  /** An order that gets no unit: a pending one is cancelled, a paid one needs a refund. */
  async function dropOrder(order: Order, inRedis: boolean): Promise<void> {
    if (order.status === "paid") {
      refund.push(order.id);
      return;
    }
    const r = await orders.cancelUnpaid(order.id, reason);
    if (r.ok) cancelled.push(order.id);
    else if (r.reason === "PAID" && !inRedis) refund.push(order.id); // paid meanwhile
  }
}

function orderClaim(order: Order, stored: ReadonlyMap<string, StoredReservation>): Claim {
  return { kind: "order", order, stored: stored.get(order.reservationId) };
}

/** Every reservation record of a SKU's stock hash (HSCAN, in short steps). */
async function readReservations(redis: RedisClient, key: string): Promise<Map<string, StoredReservation>> {
  const out = new Map<string, StoredReservation>();
  let cursor = "0";
  try {
    do {
      const [next, flat] = await redis.hscan(key, cursor, "MATCH", "r:*", "COUNT", 1000);
      for (let i = 0; i < flat.length; i += 2) {
        const m = /^([HCR])\|(\d+)\|(-?\d+)\|(-?\d+)\|(.*)$/s.exec(flat[i + 1]!);
        if (m === null) throw new UnexpectedReplyError(`${flat[i]} in ${key} is not a reservation record`);
        out.set(flat[i]!.slice(2), {
          state: m[1] as StoredReservation["state"],
          quantity: Number(m[2]),
          remaining: Number(m[4]),
          userId: m[5]!,
        });
      }
      cursor = next;
    } while (cursor !== "0");
  } catch (err) {
    throw toRedisError(err);
  }
  return out;
}
