// PostgresInventory: the seed's database path, `UPDATE … SET stock = stock - q WHERE … AND stock >= q`, with a
// per-user row and a unique reservation id, behind the same results as Inventory. Reservations of one SKU that
// arrive together share one statement (group commit), so one hot-row lock and one commit serve many buyers.
import { randomUUID } from "node:crypto";
import { ConflictError, InvalidArgumentError, UnexpectedReplyError } from "../errors.js";
import { TickBatcher, type Pending } from "../internal/batch.js";
import { SQL } from "../internal/embedded.generated.js";
import { runMigration, sqlRows, type SqlClient } from "../internal/sql.js";
import { optionKeys, validateId, validateOptions } from "../internal/validate.js";
import {
  checkExpireArgs,
  checkReserveArgs,
  checkStockArgs,
  RESERVE_REJECTIONS,
  ReserveCode,
  type ConfirmResult,
  type ExpireOptions,
  type InventorySnapshot,
  type ReleaseResult,
  type ReserveOptions,
  type ReserveResult,
  type StockOptions,
  type StockStore,
} from "./types.js";
import { reservePayload, traced } from "../internal/trace.js";
import { channels, type ConfirmTrace, type ReleaseTrace, type ReserveTrace } from "../metrics/channels.js";

const TRACE_RESERVE = traced<ReserveTrace>(channels.reserve);
const TRACE_CONFIRM = traced<ConfirmTrace>(channels.confirm);
const TRACE_RELEASE = traced<ReleaseTrace>(channels.release);

/** Options of `new PostgresInventory()`. */
export interface PostgresInventoryOptions {
  /**
   * Prefix of every table and function the schema creates (`<prefix>stock`, `<prefix>reserve`, …).
   * Lower-case letters, digits and underscores.
   * @default "fsk_"
   */
  readonly tablePrefix?: string;
  /**
   * Group commit: reservations of one SKU made in the same tick share one statement and so one transaction,
   * one lock of the SKU's row and one commit (each still decided on its own, in order, with its own result).
   * `false` sends one statement per call.
   * @default true
   */
  readonly batch?: boolean;
}

/** The most reservations one statement carries. */
const MAX_BATCH = 64;

interface ReserveItem {
  readonly reservationId: string;
  readonly userId: string;
  readonly quantity: number;
}

const PREFIX_RE = /^[a-z_][a-z0-9_]{0,40}$/;

/**
 * The schema (tables and PL/pgSQL functions) of {@link PostgresInventory} for a table prefix. Run it with your
 * migration tool, or call {@link PostgresInventory.migrate}.
 *
 * @example
 * ```ts
 * await fs.writeFile("migrations/001_stock.sql", postgresInventorySchema("shop_"));
 * ```
 */
export function postgresInventorySchema(tablePrefix = "fsk_"): string {
  if (!PREFIX_RE.test(tablePrefix)) {
    throw new InvalidArgumentError("tablePrefix", "must match /^[a-z_][a-z0-9_]{0,40}$/");
  }
  return SQL["stock/schema"].replace(/\bfsk_/g, tablePrefix);
}

/**
 * Stock reservation in PostgreSQL (13+, or PGlite), with the same results and invariants as
 * {@link Inventory}: the seed's optimistic `UPDATE … WHERE available >= $q`, a per-user row for the limit and
 * a unique reservation id for idempotency, each operation one function call, so one statement and one
 * transaction. Every write of a SKU takes its stock row's lock first, so a SKU moves one commit at a time;
 * group commit (on by default) lets reservations of one SKU made together share that statement, lock and
 * commit. Time decisions use the database's `now()`. It has no event stream: pair it with the outbox.
 *
 * It takes any client with `query(sql, params)`: `pg.Pool`, `pg.Client` or PGlite.
 *
 * @example
 * ```ts
 * import pg from "pg";
 * import { PostgresInventory } from "flash-sale-kit/stock";
 *
 * const stock = new PostgresInventory(new pg.Pool({ connectionString: process.env.DATABASE_URL }));
 * await stock.migrate();
 * await stock.setStock("iphone-17", 100);
 * const r = await stock.reserve("iphone-17", { userId: "u42" });
 * ```
 */
export class PostgresInventory implements StockStore {
  private readonly p: string;
  private readonly batcher: TickBatcher<string, ReserveItem, ReserveResult> | undefined;

  constructor(
    private readonly db: SqlClient,
    options: PostgresInventoryOptions = {},
  ) {
    validateOptions("options", options, {
      known: optionKeys<PostgresInventoryOptions>({ tablePrefix: 1, batch: 1 }),
    });
    if (db === null || typeof db !== "object" || typeof db.query !== "function") {
      throw new InvalidArgumentError("db", "must have a query(sql, params) method");
    }
    this.p = options.tablePrefix ?? "fsk_";
    if (!PREFIX_RE.test(this.p))
      throw new InvalidArgumentError("tablePrefix", "must match /^[a-z_][a-z0-9_]{0,40}$/");
    if (options.batch !== undefined && typeof options.batch !== "boolean") {
      throw new InvalidArgumentError("batch", "must be a boolean");
    }
    this.batcher =
      options.batch === false
        ? undefined
        : new TickBatcher((sku, batch) => this.sendReserves(sku, batch), MAX_BATCH);
  }

  /**
   * Creates the tables and (re)creates the functions. Idempotent.
   *
   * @example
   * ```ts
   * await stock.migrate();
   * ```
   */
  async migrate(): Promise<void> {
    await runMigration(this.db, postgresInventorySchema(this.p));
  }

  /**
   * Creates a SKU or adjusts a live one; same semantics as {@link Inventory.setStock}.
   *
   * @example
   * ```ts
   * await stock.setStock("iphone-17", 100, { perUserLimit: 1, holdMs: 900_000 });
   * ```
   */
  async setStock(sku: string, quantity: number, options: StockOptions = {}): Promise<void> {
    const o = checkStockArgs(sku, quantity, options);
    if (o.buckets !== undefined && o.buckets !== 1)
      throw new InvalidArgumentError(
        "buckets",
        "is an Inventory (Redis) option: PostgreSQL has one row per SKU",
      );
    const [row] = await sqlRows<{ code: number; available: number }>(
      this.db,
      `SELECT code, available FROM ${this.p}set_stock($1, $2, $3, $4, $5, $6)`,
      [sku, quantity, o.perUserLimit, o.startsAt ?? null, o.endsAt ?? null, o.holdMs ?? 0],
    );
    if (row === undefined) throw new UnexpectedReplyError("set_stock returned no row");
    if (Number(row.code) === 1) {
      throw new ConflictError(
        "STOCK_BELOW_COMMITTED",
        `cannot set ${sku} to ${quantity} units: ${Number(row.available)} are already held or confirmed`,
      );
    }
  }

  /**
   * Reserves units; same checks, order and results as {@link Inventory.reserve}. Calls for one SKU made in the
   * same tick share one statement (see {@link PostgresInventoryOptions.batch}); bad input is refused before,
   * so it fails only its own call.
   *
   * @example
   * ```ts
   * const r = await stock.reserve("iphone-17", { userId: "u42", reservationId: "req-7f3a" });
   * ```
   */
  reserve(sku: string, options: ReserveOptions): Promise<ReserveResult> {
    if (!TRACE_RESERVE.active) return this.#reserve(sku, options);
    return TRACE_RESERVE.trace(() => this.#reserve(sku, options), {
      store: "postgresql",
      sku,
      ...reservePayload(options),
    });
  }

  async #reserve(sku: string, options: ReserveOptions): Promise<ReserveResult> {
    const quantity = checkReserveArgs(sku, options);
    const item = { reservationId: options.reservationId ?? randomUUID(), userId: options.userId, quantity };
    if (this.batcher !== undefined) return this.batcher.submit(sku, item);
    const [result] = await this.runReserves(sku, [item]);
    if (result instanceof Error) throw result;
    return result!;
  }

  /**
   * Runs a batch and settles each caller. When the shared statement fails with an error from the server, it
   * was rolled back whole, so each item runs again on its own, in order: every caller gets its own outcome, and
   * an item the database refuses (a constraint of yours, say) fails only its caller. Without an answer from
   * the server (a lost connection) the shared call's outcome is unknown, and every caller gets that error.
   */
  private async sendReserves(sku: string, batch: Pending<ReserveItem, ReserveResult>[]): Promise<void> {
    let results: (ReserveResult | Error)[];
    try {
      results = await this.runReserves(
        sku,
        batch.map((p) => p.item),
      );
    } catch (err) {
      if (batch.length === 1 || !fromServer(err)) throw err;
      for (const p of batch) {
        try {
          const [r] = await this.runReserves(sku, [p.item]);
          if (r instanceof Error) p.reject(r);
          else p.resolve(r!);
        } catch (e) {
          p.reject(e);
        }
      }
      return;
    }
    batch.forEach((p, i) => {
      const r = results[i]!;
      if (r instanceof Error) p.reject(r);
      else p.resolve(r);
    });
  }

  /** One statement for reservations of one SKU: a result (or the error to throw) per item, in order. */
  private async runReserves(sku: string, items: readonly ReserveItem[]): Promise<(ReserveResult | Error)[]> {
    const [row] = await sqlRows<{ codes: number[] | null; remainings: number[] | null }>(
      this.db,
      `SELECT codes, remainings FROM ${this.p}reserve_many($1, $2, $3, $4)`,
      [
        sku,
        items.map((it) => it.reservationId),
        items.map((it) => it.userId),
        items.map((it) => it.quantity),
      ],
    );
    const codes = row?.codes;
    const remainings = row?.remainings;
    if (!Array.isArray(codes) || !Array.isArray(remainings) || codes.length !== items.length) {
      throw new UnexpectedReplyError(
        `reserve_many replied ${codes?.length ?? "no"} codes for ${items.length} items`,
      );
    }
    return items.map((it, i) => {
      const code = Number(codes[i]);
      if (code === ReserveCode.OK || code === ReserveCode.REPLAY) {
        return { ok: true, reservationId: it.reservationId, remaining: Number(remainings[i]) };
      }
      if (code === ReserveCode.CONFLICT) {
        return new ConflictError(
          "RESERVATION_CONFLICT",
          `reservationId ${it.reservationId} was already used for another user or quantity`,
        );
      }
      const reason = RESERVE_REJECTIONS[code];
      if (reason === undefined) return new UnexpectedReplyError(`reserve returned code ${code}`);
      return { ok: false, reason };
    });
  }

  /**
   * Confirms a held reservation; same semantics as {@link Inventory.confirm}.
   *
   * @example
   * ```ts
   * await stock.confirm("iphone-17", reservationId);
   * ```
   */
  confirm(sku: string, reservationId: string): Promise<ConfirmResult> {
    if (!TRACE_CONFIRM.active) return this.#confirm(sku, reservationId);
    return TRACE_CONFIRM.trace(() => this.#confirm(sku, reservationId), {
      store: "postgresql",
      sku,
      reservationId,
    });
  }

  async #confirm(sku: string, reservationId: string): Promise<ConfirmResult> {
    validateId("sku", sku);
    validateId("reservationId", reservationId);
    const code = await this.scalar(`SELECT ${this.p}confirm($1, $2) AS code`, [sku, reservationId]);
    if (code === 0) return { ok: true };
    if (code === 1) return { ok: false, reason: "RELEASED" };
    if (code === 2) return { ok: false, reason: "UNKNOWN_RESERVATION" };
    throw new UnexpectedReplyError(`confirm returned ${code}`);
  }

  /**
   * Releases a held reservation; same semantics as {@link Inventory.release}.
   *
   * @example
   * ```ts
   * await stock.release("iphone-17", reservationId);
   * ```
   */
  release(sku: string, reservationId: string): Promise<ReleaseResult> {
    if (!TRACE_RELEASE.active) return this.#release(sku, reservationId);
    return TRACE_RELEASE.trace(() => this.#release(sku, reservationId), {
      store: "postgresql",
      sku,
      reservationId,
    });
  }

  async #release(sku: string, reservationId: string): Promise<ReleaseResult> {
    validateId("sku", sku);
    validateId("reservationId", reservationId);
    const code = await this.scalar(`SELECT ${this.p}release($1, $2) AS code`, [sku, reservationId]);
    if (code === 0) return { ok: true };
    if (code === 1) return { ok: false, reason: "CONFIRMED" };
    if (code === 2) return { ok: false, reason: "UNKNOWN_RESERVATION" };
    throw new UnexpectedReplyError(`release returned ${code}`);
  }

  /**
   * Releases holds past their expiry (database time); returns how many. Several callers may run at once
   * (they take turns on the SKU's row; a call with nothing due takes no lock).
   *
   * @example
   * ```ts
   * await stock.expireHolds("iphone-17", { limit: 500 });
   * ```
   */
  async expireHolds(sku: string, options: ExpireOptions = {}): Promise<number> {
    const limit = checkExpireArgs(sku, options);
    return this.scalar(`SELECT ${this.p}expire_holds($1, $2) AS code`, [sku, limit]);
  }

  /**
   * Reads a SKU's counters and settings, or `null` for an unknown SKU.
   *
   * @example
   * ```ts
   * const s = await stock.snapshot("iphone-17");
   * ```
   */
  async snapshot(sku: string): Promise<InventorySnapshot | null> {
    validateId("sku", sku);
    const [row] = await sqlRows<Record<string, number | string | null>>(
      this.db,
      `SELECT initial, available, held, confirmed, per_user_limit, hold_ms::float8 AS hold_ms,
         (extract(epoch FROM starts_at) * 1000)::float8 AS starts_ms,
         (extract(epoch FROM ends_at) * 1000)::float8 AS ends_ms
       FROM ${this.p}stock WHERE sku = $1`,
      [sku],
    );
    if (row === undefined) return null;
    const hold = Number(row.hold_ms);
    return {
      initial: Number(row.initial),
      available: Number(row.available),
      held: Number(row.held),
      confirmed: Number(row.confirmed),
      perUserLimit: Number(row.per_user_limit),
      ...(row.starts_ms !== null && { startsAt: Math.round(Number(row.starts_ms)) }),
      ...(row.ends_ms !== null && { endsAt: Math.round(Number(row.ends_ms)) }),
      ...(hold > 0 && { holdMs: hold }),
    };
  }

  private async scalar(sql: string, params: unknown[]): Promise<number> {
    const [row] = await sqlRows<{ code: number }>(this.db, sql, params);
    if (row === undefined) throw new UnexpectedReplyError(`no row from: ${sql}`);
    return Number(row.code);
  }
}

/** Whether a failed query was answered by the server (an SQLSTATE), so it ran and was rolled back. */
function fromServer(err: unknown): boolean {
  const cause = (err as { cause?: { code?: unknown } } | null)?.cause;
  return typeof cause?.code === "string" && /^[0-9A-Z]{5}$/.test(cause.code) && !cause.code.startsWith("08");
}
