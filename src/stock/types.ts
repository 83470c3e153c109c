// Shared shapes of the stock module: options, results and the validation both inventories apply.
import { InvalidArgumentError } from "../errors.js";
import {
  checkKnownKeys,
  optionKeys,
  validateId,
  validateInt,
  validateOptionalInt,
  validateOptions,
} from "../internal/validate.js";

/**
 * The stock level meaning "no limit" (the seed's `-1`): reservations always succeed on stock, but the
 * per-user limit, the sale window and idempotency still apply.
 *
 * @example
 * ```ts
 * await inventory.setStock("gift-card", UNLIMITED, { perUserLimit: 3 });
 * ```
 */
export const UNLIMITED = -1;

/** Why a reservation was refused. Nothing was written. */
export type ReserveRejection = "SOLD_OUT" | "LIMIT_REACHED" | "UNKNOWN_SKU" | "NOT_STARTED" | "ENDED";

/**
 * The outcome of `reserve`: the reservation (with the units left right after it; `-1` for unlimited stock),
 * the reason it was refused, or `IN_DOUBT`.
 *
 * On a SKU split into buckets (`Inventory`, `setStock`'s `buckets`), `remaining` is the units left in the
 * user's home bucket right after the reservation, not the SKU's: the SKU has at least that many (the other
 * buckets and the transfers in flight hold the rest); 0 does not mean sold out. Summing every bucket would
 * cost a read of each on every reservation; read `snapshot(sku).available` for the SKU's total.
 *
 * `IN_DOUBT` (only from an `Inventory` with `replicated` or `settleMs`): the call may or may not have
 * reserved, and nothing could settle it in time: its reply was lost (a command timeout, a dropped
 * connection, a failover) or fewer replicas than `replicated.replicas` acknowledged it. `reservationId` is
 * the id the call used (yours, or the one generated for it): `reserve` again with it to learn the outcome
 * (a replay of the reservation, or a fresh decision if it never happened). Never an error: a buyer told
 * `IN_DOUBT` may hold the unit.
 */
export type ReserveResult =
  | { readonly ok: true; readonly reservationId: string; readonly remaining: number }
  | { readonly ok: false; readonly reason: ReserveRejection }
  | { readonly ok: false; readonly reason: "IN_DOUBT"; readonly reservationId: string };

/**
 * The outcome of `confirm`. `RELEASED`: the reservation was released (or its hold expired) first.
 * `IN_DOUBT` (only with `replicated` or `settleMs`): the confirm may or may not stand (see
 * {@link ReserveResult}); confirm again to learn.
 */
export type ConfirmResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: "RELEASED" | "UNKNOWN_RESERVATION" | "IN_DOUBT" };

/**
 * The outcome of `release`. `CONFIRMED`: the reservation was confirmed first and keeps its units.
 * `IN_DOUBT` (only with `replicated` or `settleMs`): the release may or may not stand; release again.
 */
export type ReleaseResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: "CONFIRMED" | "UNKNOWN_RESERVATION" | "IN_DOUBT" };

/** Options of `setStock`. */
export interface StockOptions {
  /**
   * Units one user may hold plus have confirmed at once (released units count no more).
   * @default 1
   */
  readonly perUserLimit?: number;
  /** Epoch ms when the sale opens, judged by the server's clock (Redis `TIME` or the database's `now()`). */
  readonly startsAt?: number;
  /** Epoch ms when the sale closes (exclusive), judged by the server's clock. */
  readonly endsAt?: number;
  /**
   * How long (ms) a reservation may stay unconfirmed before `expireHolds` (or a late `confirm`) gives its
   * units back. Omitted: holds never expire on their own.
   */
  readonly holdMs?: number;
  /**
   * `Inventory` only: split the SKU's units over this many buckets, each on its own hash slot (so on a
   * cluster, on different masters), to spread a hot SKU's reservations over several Redis cores. At most
   * {@link MAX_BUCKETS}; the count of a live SKU cannot change (a `ConflictError`, code `BUCKET_COUNT`).
   * Omitted: the live SKU's count, or 1 for a new SKU. See docs/stock.md, "Buckets".
   * @default 1
   */
  readonly buckets?: number;
}

/** Arguments of `reserve`. */
export interface ReserveOptions {
  /** Who buys; the per-user limit counts against this id. */
  readonly userId: string;
  /**
   * Units to reserve.
   * @default 1
   */
  readonly quantity?: number;
  /**
   * The idempotency key. A call repeated with the id of a successful reservation returns that reservation
   * and changes nothing; a refused call stored nothing, so its retry is decided afresh. Omitted: a random
   * UUID is used (and returned).
   */
  readonly reservationId?: string;
}

/** A SKU's counters. For finite stock, `available + held + confirmed === initial` at all times. */
export interface InventorySnapshot {
  /** Total units, including every adjustment made by later `setStock` calls; `-1` when unlimited. */
  readonly initial: number;
  /** Units that can still be reserved; `-1` when unlimited. */
  readonly available: number;
  /** Units reserved and neither confirmed nor released yet. */
  readonly held: number;
  /** Units sold. */
  readonly confirmed: number;
  readonly perUserLimit: number;
  readonly startsAt?: number;
  readonly endsAt?: number;
  readonly holdMs?: number;
  /** How many buckets the SKU is split into (`setStock`'s `buckets`); omitted for a one-bucket SKU. */
  readonly buckets?: number;
}

/** Options of `expireHolds`. */
export interface ExpireOptions {
  /**
   * The most holds released by one call.
   * @default 100
   */
  readonly limit?: number;
}

/**
 * What `Inventory` (Redis) and `PostgresInventory` (PostgreSQL) both offer, so the order pipeline and the
 * example server can take either.
 *
 * @example
 * ```ts
 * async function buy(stock: StockStore, sku: string, userId: string) {
 *   return stock.reserve(sku, { userId });
 * }
 * ```
 */
export interface StockStore {
  setStock(sku: string, quantity: number, options?: StockOptions): Promise<void>;
  reserve(sku: string, options: ReserveOptions): Promise<ReserveResult>;
  confirm(sku: string, reservationId: string): Promise<ConfirmResult>;
  release(sku: string, reservationId: string): Promise<ReleaseResult>;
  expireHolds(sku: string, options?: ExpireOptions): Promise<number>;
  snapshot(sku: string): Promise<InventorySnapshot | null>;
}

/**
 * The longest `holdMs` accepted: 365 days. (Expiry times must stay plain integers inside the scripts.)
 *
 * @example
 * ```ts
 * await inventory.setStock("preorder", 500, { holdMs: MAX_HOLD_MS });
 * ```
 */
export const MAX_HOLD_MS = 365 * 24 * 3_600_000;

/**
 * The largest quantity the library accepts (PostgreSQL `integer`).
 *
 * @example
 * ```ts
 * await inventory.setStock("gift-card", MAX_QUANTITY); // as good as unlimited, but counted
 * ```
 */
export const MAX_QUANTITY = 2_147_483_647;

/**
 * The most buckets one SKU may be split into (`setStock`'s `buckets`). Finding a reservation (`confirm`,
 * `release`, `reservation`) reads every bucket, and so does deciding that the SKU is sold out, so a few
 * buckets per cluster master is the useful range.
 *
 * @example
 * ```ts
 * await inventory.setStock("hot-sku", 30_000, { buckets: Math.min(3, MAX_BUCKETS) });
 * ```
 */
export const MAX_BUCKETS = 16;

const STOCK_KEYS = optionKeys<StockOptions>({
  perUserLimit: 1,
  startsAt: 1,
  endsAt: 1,
  holdMs: 1,
  buckets: 1,
});
const RESERVE_KEYS = optionKeys<ReserveOptions>({ userId: 1, quantity: 1, reservationId: 1 });
const EXPIRE_KEYS = optionKeys<ExpireOptions>({ limit: 1 });

/** Validates `setStock` arguments; returns the options with defaults applied. @internal */
export function checkStockArgs(
  sku: string,
  quantity: number,
  options: StockOptions,
): Required<Pick<StockOptions, "perUserLimit">> & StockOptions {
  validateOptions("options", options, { known: STOCK_KEYS });
  validateId("sku", sku);
  validateInt("quantity", quantity, { min: UNLIMITED, max: MAX_QUANTITY });
  const perUserLimit = options.perUserLimit === undefined ? 1 : options.perUserLimit;
  validateInt("perUserLimit", perUserLimit, { min: 1, max: MAX_QUANTITY });
  validateOptionalInt("startsAt", options.startsAt, { min: 0 });
  validateOptionalInt("endsAt", options.endsAt, { min: 0 });
  validateOptionalInt("holdMs", options.holdMs, { min: 1, max: MAX_HOLD_MS });
  validateOptionalInt("buckets", options.buckets, { min: 1, max: MAX_BUCKETS });
  if (options.startsAt !== undefined && options.endsAt !== undefined && options.endsAt <= options.startsAt) {
    throw new InvalidArgumentError("endsAt", "must be later than startsAt");
  }
  return { ...options, perUserLimit };
}

/** Validates `reserve` arguments; returns the quantity. @internal */
export function checkReserveArgs(sku: string, options: ReserveOptions): number {
  validateId("sku", sku);
  if (typeof options !== "object" || options === null)
    throw new InvalidArgumentError("options", "must be an object with a userId");
  // The buy path runs this on every call, answered in process or not: no key array unless a key is unknown.
  for (const key in options) {
    if (key !== "userId" && key !== "quantity" && key !== "reservationId") {
      checkKnownKeys("options", options, RESERVE_KEYS);
    }
  }
  validateId("userId", options.userId);
  const quantity = options.quantity === undefined ? 1 : options.quantity;
  validateInt("quantity", quantity, { min: 1, max: MAX_QUANTITY });
  if (options.reservationId !== undefined) validateId("reservationId", options.reservationId);
  return quantity;
}

/** Validates `expireHolds` arguments; returns the limit. @internal */
export function checkExpireArgs(sku: string, options: ExpireOptions): number {
  validateOptions("options", options, { known: EXPIRE_KEYS });
  validateId("sku", sku);
  const limit = options.limit ?? 100;
  validateInt("limit", limit, { min: 1, max: 100_000 });
  return limit;
}

/** The reasons, indexed by the scripts' reserve codes 2..6. @internal */
export const RESERVE_REJECTIONS: Readonly<Record<number, ReserveRejection>> = Object.freeze({
  2: "UNKNOWN_SKU",
  3: "NOT_STARTED",
  4: "ENDED",
  5: "LIMIT_REACHED",
  6: "SOLD_OUT",
});

/** Reserve codes shared by lua/stock/reserve.lua and sql/stock/schema.sql. @internal */
export const ReserveCode = Object.freeze({ OK: 0, REPLAY: 1, CONFLICT: 7 } as const);

/** The refusals answered in process, allocated once (results are read-only). @internal */
export const REFUSED: Readonly<Record<ReserveRejection, ReserveResult>> = Object.freeze({
  SOLD_OUT: Object.freeze({ ok: false, reason: "SOLD_OUT" }),
  LIMIT_REACHED: Object.freeze({ ok: false, reason: "LIMIT_REACHED" }),
  UNKNOWN_SKU: Object.freeze({ ok: false, reason: "UNKNOWN_SKU" }),
  NOT_STARTED: Object.freeze({ ok: false, reason: "NOT_STARTED" }),
  ENDED: Object.freeze({ ok: false, reason: "ENDED" }),
});
