// Inventory: atomic stock reservation in Redis. Each operation is one Lua script on the SKU's hash slot.
import { randomUUID } from "node:crypto";
import {
  ConflictError,
  InvalidArgumentError,
  RedisUnavailableError,
  UnexpectedReplyError,
} from "../errors.js";
import { entityKeys, resolvePrefix } from "../internal/keys.js";
import type { RedisClient } from "../internal/scripts.js";
import { TickBatcher, type Pending } from "../internal/batch.js";
import {
  optionKeys,
  validateId,
  validateInt,
  validateOptionalInt,
  validateOptions,
} from "../internal/validate.js";
import { startHoldSweeper, type HoldSweeper, type HoldSweeperOptions } from "./hold-sweeper.js";
import { validateRedisClient } from "../internal/client.js";
import { RedisClock } from "../internal/clock.js";
import { CONFIRM, EXPIRE, RELEASE, RESERVE, SET_STOCK } from "./scripts.js";
import { readIds, readReservation, readSnapshot, readUserQuantity, type ReservationInfo } from "./records.js";
import { SoldOutFlags, type FlagToken } from "./sold-out-flags.js";
import { checkReplicated, RecordState, ReplicaAcks } from "./replication.js";
import { InDoubt, settle } from "./settle.js";
import { Buckets, type BucketedKeys } from "./buckets.js";

import type { InventoryOptions } from "./inventory-options.js";

export type { InventoryOptions, ReplicatedOptions } from "./inventory-options.js";
export type { ReservationInfo, StockEvent } from "./records.js";
export type { BucketKeys, BucketedKeys } from "./buckets.js";
import {
  checkExpireArgs,
  checkReserveArgs,
  checkStockArgs,
  REFUSED,
  RESERVE_REJECTIONS,
  ReserveCode,
  type ConfirmResult,
  type ExpireOptions,
  MAX_BUCKETS,
  type InventorySnapshot,
  type ReleaseResult,
  type ReserveOptions,
  type ReserveRejection,
  type ReserveResult,
  type StockOptions,
  type StockStore,
} from "./types.js";
import { reservePayload, traced } from "../internal/trace.js";
import { channels, type ConfirmTrace, type ReleaseTrace, type ReserveTrace } from "../metrics/channels.js";

const TRACE_RESERVE = traced<ReserveTrace>(channels.reserve);
const TRACE_CONFIRM = traced<ConfirmTrace>(channels.confirm);
const TRACE_RELEASE = traced<ReleaseTrace>(channels.release);

const KNOWN_OPTIONS = optionKeys<InventoryOptions>({
  prefix: 1,
  eventsMaxLen: 1,
  localCacheMs: 1,
  localMaxIds: 1,
  subscriber: 1,
  batch: 1,
  replicated: 1,
  settleMs: 1,
});

/** The longest `settleMs` accepted: 10 minutes. */
const MAX_SETTLE_MS = 600_000;

/** The most reservations one script call carries. */
const MAX_BATCH = 32;

interface ReserveItem {
  readonly reservationId: string;
  readonly userId: string;
  readonly quantity: number;
  /** The in-process flags' state when the call was made: its reply may teach them only if it is unchanged. */
  readonly token: FlagToken;
}

/** The in-process refusals as settled promises, made once: `reserve` returns them as they are. */
const REFUSED_NOW: Readonly<Record<ReserveRejection, Promise<ReserveResult>>> = Object.freeze({
  SOLD_OUT: Promise.resolve(REFUSED.SOLD_OUT),
  LIMIT_REACHED: Promise.resolve(REFUSED.LIMIT_REACHED),
  UNKNOWN_SKU: Promise.resolve(REFUSED.UNKNOWN_SKU),
  NOT_STARTED: Promise.resolve(REFUSED.NOT_STARTED),
  ENDED: Promise.resolve(REFUSED.ENDED),
});

/**
 * Atomic stock reservation on Redis (standalone, Sentinel or Cluster). Every call is one Lua script that
 * checks everything before it writes anything, so a refused request changes nothing, stock is never
 * negative and `available + held + confirmed === initial` holds under any crowd.
 *
 * Keys of one SKU share the hash tag `{<prefix>:<sku>}`: `:stock` (a hash of the counters, the settings, each
 * user's units and each reservation, so the buy step is one read and one write), `:holds` (unconfirmed
 * reservations by expiry) and `:events` (a Redis Stream of `reserved` / `confirmed` / `released` events for
 * the order pipeline).
 *
 * @example
 * ```ts
 * import { Redis } from "ioredis";
 * import { Inventory } from "flash-sale-kit";
 *
 * const inventory = new Inventory(new Redis());
 * await inventory.setStock("iphone-17", 100, { perUserLimit: 1, startsAt: Date.parse("2026-12-01T10:00:00Z") });
 * const r = await inventory.reserve("iphone-17", { userId: "u42", reservationId: "req-7f3a" });
 * if (r.ok) console.log("reserved", r.reservationId, "left:", r.remaining);
 * else console.log("refused:", r.reason); // SOLD_OUT, LIMIT_REACHED, NOT_STARTED, ENDED, UNKNOWN_SKU
 * ```
 */
export class Inventory implements StockStore {
  private readonly prefix: string;
  private readonly maxLen: string;
  private readonly keyCache = new Map<string, string[]>();
  private readonly channel: string;
  private readonly flags: SoldOutFlags;
  private readonly batcher: TickBatcher<string, ReserveItem, ReserveResult> | undefined;
  /** Replicated acknowledgement, when asked for. */
  private readonly acks: ReplicaAcks | undefined;
  private readonly settleMs: number;
  /** SKUs split into buckets (setStock's `buckets`): see buckets.ts. */
  private readonly buckets: Buckets;

  constructor(
    private readonly redis: RedisClient,
    options: InventoryOptions = {},
  ) {
    validateOptions("options", options, { known: KNOWN_OPTIONS });
    validateRedisClient("redis", redis);
    this.prefix = resolvePrefix(options.prefix);
    validateOptionalInt("eventsMaxLen", options.eventsMaxLen, { min: 1 });
    this.maxLen = options.eventsMaxLen === undefined ? "" : String(options.eventsMaxLen);
    const cacheMs = options.localCacheMs ?? 1000;
    validateInt("localCacheMs", cacheMs, { min: 0, max: 3_600_000 });
    const maxIds = options.localMaxIds ?? 100_000;
    validateInt("localMaxIds", maxIds, { min: 0, max: 10_000_000 });
    if (options.batch !== undefined && typeof options.batch !== "boolean") {
      throw new InvalidArgumentError("batch", "must be a boolean");
    }
    const replicated = checkReplicated(options.replicated);
    this.acks = replicated === undefined ? undefined : new ReplicaAcks(redis, replicated);
    this.settleMs = options.settleMs ?? 0;
    validateInt("settleMs", this.settleMs, { min: 0, max: MAX_SETTLE_MS });
    this.flags = new SoldOutFlags(
      `${this.prefix}:restock`,
      options.subscriber,
      cacheMs,
      maxIds,
      RedisClock.for(redis),
      (sku) => {
        const b = this.buckets.known(sku);
        return b ? this.buckets.readIds(b, maxIds) : readIds(this.redis, this.keyList(sku)[0]!, maxIds);
      },
    );
    this.channel = this.flags.channel;
    this.buckets = new Buckets(
      redis,
      this.prefix,
      this.maxLen,
      this.channel,
      this.flags.origin,
      this.flags,
      options.batch !== false,
      MAX_BATCH,
    );
    this.batcher =
      options.batch === false
        ? undefined
        : new TickBatcher((sku, batch) => this.sendReserves(sku, batch), MAX_BATCH);
  }

  /**
   * Stops listening for restocks on the `subscriber` (the connection stays open: it is yours) and closes
   * the Inventory's own `WAIT` connection (`replicated`).
   *
   * @example
   * ```ts
   * await inventory.close();
   * ```
   */
  async close(): Promise<void> {
    await Promise.all([this.flags.close(), this.acks?.close()]);
  }

  /**
   * The keys of one SKU, in the order the scripts take them. Useful to read the event stream
   * (`keys(sku).events`) or to delete a finished sale.
   *
   * @example
   * ```ts
   * const { events } = inventory.keys("iphone-17"); // "{fsk:iphone-17}:events"
   * ```
   */
  keys(sku: string): { readonly stock: string; readonly holds: string; readonly events: string } {
    const k = entityKeys(this.prefix, sku, "sku");
    return { stock: k.key("stock"), holds: k.key("holds"), events: k.key("events") };
  }

  /**
   * The keys of a SKU split into `buckets` buckets (`setStock`'s `buckets` option): the SKU's record and,
   * per bucket, its stock hash, holds, event stream and unfinished transfers. Each bucket's stream carries the
   * events of the users whose home it is; read all of them. Useful to delete a finished sale.
   *
   * @example
   * ```ts
   * const { meta, buckets } = inventory.bucketKeys("hot-sku", 3);
   * for (const b of buckets) console.log(b.events);
   * ```
   */
  bucketKeys(sku: string, buckets: number): BucketedKeys {
    validateId("sku", sku);
    validateInt("buckets", buckets, { min: 1, max: MAX_BUCKETS });
    return this.buckets.keysOf(sku, buckets);
  }

  /**
   * The event streams of a SKU as it is laid out now: `[keys(sku).events]` for a one-bucket SKU (or one not
   * set), one per bucket, in bucket order, for a SKU split into buckets. Give all of them to the consumer
   * (the orders worker). Reads the SKU's bucket record (a call to Redis).
   *
   * @example
   * ```ts
   * const streams = await inventory.eventStreams("iphone-17"); // ["{fsk:iphone-17}:events"]
   * ```
   */
  async eventStreams(sku: string): Promise<string[]> {
    validateId("sku", sku);
    const n = await this.buckets.countOf(sku);
    if (n <= 1) return [this.keys(sku).events];
    return this.buckets.keysOf(sku, n).buckets.map((b) => b.events);
  }

  /** The script KEYS of a SKU; cached because the buy path builds them on every call. */
  private keyList(sku: string): string[] {
    let list = this.keyCache.get(sku);
    if (list === undefined) {
      const k = entityKeys(this.prefix, sku, "sku");
      list = [k.key("stock"), k.key("holds"), k.key("events")];
      if (this.keyCache.size >= 10_000) this.keyCache.clear();
      this.keyCache.set(sku, list);
    }
    return list;
  }

  /**
   * Creates a SKU, or adjusts a live one without losing its reservations.
   *
   * `quantity` is the new total (`initial`): on a live SKU, `available` becomes `quantity - held - confirmed`,
   * so existing reservations, per-user counts and the event stream are kept. Setting a total below
   * `held + confirmed` throws {@link ConflictError} (`STOCK_BELOW_COMMITTED`) and changes nothing.
   * Settings (`perUserLimit`, window, `holdMs`) are replaced by the ones given; omitted ones reset to their
   * defaults. A new `holdMs` applies to reservations made from then on.
   *
   * @example
   * ```ts
   * await inventory.setStock("iphone-17", 100, { perUserLimit: 2, holdMs: 15 * 60_000 });
   * await inventory.setStock("iphone-17", 120, { perUserLimit: 2, holdMs: 15 * 60_000 }); // +20 units
   * ```
   */
  async setStock(sku: string, quantity: number, options: StockOptions = {}): Promise<void> {
    const o = checkStockArgs(sku, quantity, options);
    // A live SKU keeps its bucket count; saying another one is refused before anything is written.
    const live = await this.buckets.countOf(sku);
    const count = o.buckets ?? (live === 0 ? 1 : live);
    if (live !== 0 && count !== live) {
      throw new ConflictError(
        "BUCKET_COUNT",
        `${sku} has ${live} bucket${live === 1 ? "" : "s"}, not ${count}: the count of a live SKU cannot change (delete its keys first)`,
      );
    }
    if (count > 1) {
      if (this.acks !== undefined)
        throw new InvalidArgumentError("buckets", "cannot be used with the replicated option yet");
      return this.buckets.setStock(sku, quantity, count, o);
    }
    // A one-bucket SKU (set again after a re-split, perhaps): what this process knew of its buckets is stale.
    this.buckets.forget(sku);
    let token = this.flags.token(sku);
    const reply = await SET_STOCK.run(
      this.redis,
      [this.keys(sku).stock, this.buckets.metaKey(sku)],
      [
        quantity,
        o.perUserLimit,
        o.startsAt ?? "",
        o.endsAt ?? "",
        o.holdMs ?? 0,
        this.channel,
        sku,
        this.flags.origin,
      ],
    );
    const { code, value, records } = reply;
    if (code === 1) {
      throw new ConflictError(
        "STOCK_BELOW_COMMITTED",
        `cannot set ${sku} to ${quantity} units: ${value} are already held or confirmed`,
      );
    }
    if (code === 2) {
      // Another call made it bucketed between countOf and this script (which checks in the same step).
      throw new ConflictError(
        "BUCKET_COUNT",
        `${sku} has ${value} buckets, not 1: the count of a live SKU cannot change (delete its keys first)`,
      );
    }
    if (this.acks !== undefined) {
      // The write stands on the master even if the WAIT comes back short: drop what this process answers
      // in process now (its own change message is ignored), and learn the new state only if nothing else
      // changed while the WAIT was out.
      this.flags.changed(sku);
      token = this.flags.token(sku);
      const { replicas } = await this.acks.wait(this.keys(sku).stock, []);
      const { replicas: want, timeoutMs } = this.acks.options;
      if (replicas < want) {
        throw new RedisUnavailableError(
          `setStock(${sku}) reached ${replicas} of ${want} replicas within ${timeoutMs} ms; repeat the call`,
        );
      }
    }
    const state = {
      records,
      available: value,
      perUserLimit: o.perUserLimit,
      startsAt: o.startsAt ?? -1,
      endsAt: o.endsAt ?? -1,
      now: -1,
    };
    this.flags.changedBy(sku, state, token);
  }

  /**
   * What `reserve` would refuse in this process (no Redis call, nothing reserved), or `undefined`: lets a
   * route refuse before it spends rate limits or a token. @example
   * `if (inventory.knownRefusal(sku, { userId, reservationId })) return reply.code(409).send();`
   */
  knownRefusal(sku: string, options: ReserveOptions): ReserveRejection | undefined {
    const quantity = checkReserveArgs(sku, options);
    return this.flags.answer(sku, options.reservationId, options.userId, quantity);
  }

  /**
   * Reserves units for a user in one atomic step: the sale window (Redis time), idempotency on
   * `reservationId`, the per-user limit (it counts quantity), the stock check-and-decrement, the reservation
   * record and a `reserved` event on the SKU's stream. A refusal writes nothing.
   *
   * @example
   * ```ts
   * const r = await inventory.reserve("iphone-17", { userId: "u42", quantity: 1, reservationId: "req-7f3a" });
   * if (!r.ok && r.reason === "SOLD_OUT") showSoldOut();
   * ```
   */
  reserve(sku: string, options: ReserveOptions): Promise<ReserveResult> {
    if (!TRACE_RESERVE.active) return this.#reserve(sku, options);
    return TRACE_RESERVE.trace(() => this.#reserve(sku, options), {
      store: "redis",
      sku,
      ...reservePayload(options),
    });
  }

  #reserve(sku: string, options: ReserveOptions): Promise<ReserveResult> {
    let quantity: number;
    let known: ReserveRejection | undefined;
    try {
      quantity = checkReserveArgs(sku, options);
      known = this.flags.answer(sku, options.reservationId, options.userId, quantity);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    // A refusal known in process: one settled promise a reason, shared (no async frame, no allocation).
    if (known !== undefined) return REFUSED_NOW[known];
    return this.#ask(sku, options, quantity);
  }

  async #ask(sku: string, options: ReserveOptions, quantity: number): Promise<ReserveResult> {
    const reservationId = options.reservationId ?? randomUUID();
    const { userId } = options;
    const b = this.buckets.known(sku);
    if (b !== undefined) {
      this.refuseBucketsIfReplicated(sku);
      const r = await this.buckets.reserve(sku, b, {
        reservationId,
        userId,
        quantity,
        token: this.flags.token(sku),
      });
      // UNKNOWN_SKU: its buckets are gone (forgotten now); it may have been set again: look again below.
      if (r.ok || r.reason !== "UNKNOWN_SKU") return r;
    }
    let result: ReserveResult;
    if (this.settleMs === 0 && this.acks === undefined) {
      result = await this.reserveOnce(sku, { reservationId, userId, quantity, token: this.flags.token(sku) });
    } else {
      // Every attempt carries the same id, so a repeat is answered by the first one that ran (a replay).
      result = await settle(
        this.settleMs,
        () => this.reserveOnce(sku, { reservationId, userId, quantity, token: this.flags.token(sku) }),
        () => ({ ok: false, reason: "IN_DOUBT", reservationId }),
      );
    }
    if (!result.ok && result.reason === "UNKNOWN_SKU") {
      // Not a one-bucket SKU: perhaps a bucketed one this process has not met yet.
      const found = await this.buckets.lookup(sku);
      if (found !== undefined) {
        this.refuseBucketsIfReplicated(sku);
        return this.buckets.reserve(sku, found, {
          reservationId,
          userId,
          quantity,
          token: this.flags.token(sku),
        });
      }
    }
    return result;
  }

  /**
   * A SKU split into buckets has no replicated acknowledgement yet: with `replicated`, refuse rather than
   * acknowledge on the master's word (`setStock` refuses to create one; another Inventory may have).
   */
  private refuseBucketsIfReplicated(sku: string): void {
    if (this.acks !== undefined) {
      throw new InvalidArgumentError(
        "sku",
        `${sku} is split into buckets, which the replicated option does not cover yet`,
      );
    }
  }

  /** One attempt: in a batch, or alone. */
  private reserveOnce(sku: string, item: ReserveItem): Promise<ReserveResult> {
    if (this.batcher !== undefined) return this.batcher.submit(sku, item);
    return new Promise<ReserveResult>((resolve, reject) => {
      this.sendReserves(sku, [{ item, resolve, reject }]).catch(reject);
    });
  }

  /**
   * Runs a batch of reservations and settles each caller. With `replicated`, refusals are answered at once
   * and reservations (new ones and replays) after the batch's WAIT; one not acknowledged as asked is
   * rejected with {@link InDoubt}, which `settle` turns into another attempt or `IN_DOUBT`.
   */
  private async sendReserves(sku: string, batch: Pending<ReserveItem, ReserveResult>[]): Promise<void> {
    const results = await this.runReserves(
      sku,
      batch.map((p) => p.item),
    );
    const held: number[] = [];
    batch.forEach((p, i) => {
      const r = results[i];
      if (r === undefined || r instanceof Error)
        p.reject(r ?? new UnexpectedReplyError("stock/reserve: short reply"));
      else if (r.ok && this.acks !== undefined) held.push(i);
      else p.resolve(r);
    });
    if (held.length === 0) return;
    const verdicts = await this.replicated(
      sku,
      held.map((i) => batch[i]!.item.reservationId),
      (state) => state !== RecordState.NONE,
    );
    held.forEach((i, k) => {
      const doubt = verdicts[k];
      if (doubt !== undefined) batch[i]!.reject(doubt);
      else batch[i]!.resolve(results[i] as ReserveResult);
    });
  }

  /**
   * One WAIT (shared with the calls of the SKU that finish meanwhile) for the given reservations: per id,
   * `undefined` when it stands on the master in the state `want` accepts and the master has enough replicas
   * that acknowledged it, or the {@link InDoubt} that says why not.
   */
  private async replicated(
    sku: string,
    ids: readonly string[],
    want: (state: number) => boolean,
  ): Promise<(InDoubt | undefined)[]> {
    const acks = this.acks!;
    const need = acks.options.replicas;
    let ack;
    try {
      ack = await acks.wait(this.keyList(sku)[0]!, ids);
    } catch (err) {
      const doubt = new InDoubt(`could not wait for replicas of ${sku}`, { cause: err });
      return ids.map(() => doubt);
    }
    return ids.map((id, i) => {
      if (!want(ack.states[i] ?? RecordState.NONE)) {
        return new InDoubt(`reservation ${id} of ${sku} is not as written on the master that answered WAIT`);
      }
      if (ack.replicas < need) {
        return new InDoubt(`reservation ${id} of ${sku} reached ${ack.replicas} of ${need} replicas`);
      }
      return undefined;
    });
  }

  /** One script call for reservations of one SKU: a result (or the error to throw) per item, in order. */
  private async runReserves(sku: string, items: readonly ReserveItem[]): Promise<(ReserveResult | Error)[]> {
    const args: (string | number)[] = [sku, this.maxLen];
    for (const it of items) args.push(it.reservationId, it.userId, it.quantity);
    const { codes: reply, state } = await RESERVE.run(this.redis, this.keyList(sku), args);
    if (reply.length !== 2 * items.length) {
      throw new UnexpectedReplyError(
        `stock/reserve replied ${reply.length} integers for ${items.length} reservations`,
      );
    }
    // Calls of one batch were made in one tick, so with one token; any other token means a change between.
    const token = items[0]!.token;
    if (items.every((it) => it.token.generation === token.generation && it.token.epoch === token.epoch)) {
      this.flags.learn(sku, state, token);
    }
    return items.map((it, i) => {
      const code = reply[2 * i]!;
      const remaining = reply[2 * i + 1]!;
      if (code === ReserveCode.OK || code === ReserveCode.REPLAY) {
        return { ok: true, reservationId: it.reservationId, remaining };
      }
      if (code === ReserveCode.CONFLICT) {
        return new ConflictError(
          "RESERVATION_CONFLICT",
          `reservationId ${it.reservationId} was already used for another user or quantity`,
        );
      }
      const reason = RESERVE_REJECTIONS[code];
      if (reason === undefined) return new UnexpectedReplyError(`stock/reserve returned code ${code}`);
      return { ok: false, reason };
    });
  }

  /**
   * Turns a held reservation into a sale. Idempotent: a repeat returns the first outcome. When the hold has
   * expired (Redis time) it is released instead and the answer is `RELEASED`.
   *
   * @example
   * ```ts
   * const c = await inventory.confirm("iphone-17", reservationId); // after payment
   * if (!c.ok) refund(); // RELEASED: the hold ran out or was cancelled first
   * ```
   */
  confirm(sku: string, reservationId: string): Promise<ConfirmResult> {
    if (!TRACE_CONFIRM.active) return this.#confirm(sku, reservationId);
    return TRACE_CONFIRM.trace(() => this.#confirm(sku, reservationId), {
      store: "redis",
      sku,
      reservationId,
    });
  }

  async #confirm(sku: string, reservationId: string): Promise<ConfirmResult> {
    validateId("sku", sku);
    validateId("reservationId", reservationId);
    for (let again = true; ; again = false) {
      let b = this.buckets.known(sku);
      const cached = b !== undefined;
      if (b === undefined) {
        const r = await this.confirmOne(sku, reservationId);
        if (r.ok || r.reason !== "UNKNOWN_RESERVATION") return r;
        b = await this.buckets.lookup(sku);
        if (b === undefined) return r;
      }
      this.refuseBucketsIfReplicated(sku);
      const code = await this.buckets.confirm(sku, b, reservationId);
      if (code === 1) {
        this.flags.changed(sku); // an expired hold may just have been given back
        return { ok: false, reason: "RELEASED" };
      }
      // Not found with what this process knew of the SKU: after a re-split, look again once.
      if (code.ok || !again || !cached || !(await this.buckets.stale(sku, b))) return code;
    }
  }

  /** `confirm` of a one-bucket SKU. */
  private async confirmOne(sku: string, reservationId: string): Promise<ConfirmResult> {
    const once = async (): Promise<ConfirmResult> => {
      const code = await CONFIRM.run(this.redis, this.keyList(sku), [
        reservationId,
        sku,
        this.maxLen,
        this.channel,
      ]);
      if (code === 2) return { ok: false, reason: "UNKNOWN_RESERVATION" };
      if (code === 1) this.flags.changed(sku); // an expired hold may just have been given back
      if (this.acks !== undefined) {
        const state = code === 0 ? RecordState.CONFIRMED : RecordState.RELEASED;
        const [doubt] = await this.replicated(sku, [reservationId], (s) => s === state);
        if (doubt !== undefined) throw doubt;
      }
      return code === 0 ? { ok: true } : { ok: false, reason: "RELEASED" };
    };
    if (this.settleMs === 0 && this.acks === undefined) return once();
    return settle(this.settleMs, once, () => ({ ok: false, reason: "IN_DOUBT" }));
  }

  /**
   * Gives a held reservation's units back to stock and to the user's quota. Idempotent; a confirmed
   * reservation is not released (`CONFIRMED`). For one reservation exactly one of confirm and release wins.
   *
   * @example
   * ```ts
   * await inventory.release("iphone-17", reservationId); // payment timed out
   * ```
   */
  release(sku: string, reservationId: string): Promise<ReleaseResult> {
    if (!TRACE_RELEASE.active) return this.#release(sku, reservationId);
    return TRACE_RELEASE.trace(() => this.#release(sku, reservationId), {
      store: "redis",
      sku,
      reservationId,
    });
  }

  async #release(sku: string, reservationId: string): Promise<ReleaseResult> {
    validateId("sku", sku);
    validateId("reservationId", reservationId);
    for (let again = true; ; again = false) {
      let b = this.buckets.known(sku);
      const cached = b !== undefined;
      if (b === undefined) {
        const r = await this.releaseOne(sku, reservationId);
        if (r.ok || r.reason !== "UNKNOWN_RESERVATION") return r;
        b = await this.buckets.lookup(sku);
        if (b === undefined) return r;
      }
      this.refuseBucketsIfReplicated(sku);
      const r = await this.buckets.release(sku, b, reservationId);
      if (r.ok) this.flags.changed(sku);
      // Not found with what this process knew of the SKU: after a re-split, look again once.
      if (r.ok || r.reason !== "UNKNOWN_RESERVATION" || !again || !cached) return r;
      if (!(await this.buckets.stale(sku, b))) return r;
    }
  }

  /** `release` of a one-bucket SKU. */
  private async releaseOne(sku: string, reservationId: string): Promise<ReleaseResult> {
    const once = async (): Promise<ReleaseResult> => {
      const code = await RELEASE.run(this.redis, this.keyList(sku), [
        reservationId,
        sku,
        this.maxLen,
        this.channel,
      ]);
      if (code === 2) return { ok: false, reason: "UNKNOWN_RESERVATION" };
      if (code === 0) this.flags.changed(sku);
      if (this.acks !== undefined) {
        const state = code === 0 ? RecordState.RELEASED : RecordState.CONFIRMED;
        const [doubt] = await this.replicated(sku, [reservationId], (s) => s === state);
        if (doubt !== undefined) throw doubt;
      }
      return code === 0 ? { ok: true } : { ok: false, reason: "CONFIRMED" };
    };
    if (this.settleMs === 0 && this.acks === undefined) return once();
    return settle(this.settleMs, once, () => ({ ok: false, reason: "IN_DOUBT" }));
  }

  /**
   * Releases holds older than the SKU's `holdMs` (by Redis time), oldest first, and returns how many.
   *
   * @example
   * ```ts
   * const n = await inventory.expireHolds("iphone-17", { limit: 500 });
   * ```
   */
  async expireHolds(sku: string, options: ExpireOptions = {}): Promise<number> {
    const limit = checkExpireArgs(sku, options);
    let n = 0;
    for (let again = true; ; again = false) {
      let b = this.buckets.known(sku);
      const cached = b !== undefined;
      if (b === undefined) {
        n = await EXPIRE.run(this.redis, this.keyList(sku), [limit, sku, this.maxLen, this.channel]);
        if (n === 0) b = await this.buckets.lookup(sku);
      }
      if (b !== undefined) n = await this.buckets.expireHolds(sku, b, limit);
      // Nothing due with what this process knew of the SKU: after a re-split, look again once.
      if (n > 0 || b === undefined || !cached || !again || !(await this.buckets.stale(sku, b))) break;
    }
    if (n > 0) this.flags.changed(sku);
    return n;
  }

  /**
   * Starts a background loop that calls {@link Inventory.expireHolds} for the given SKUs. The timer is
   * unref'd, so it never keeps the process alive; errors go to `onError` and the loop goes on.
   *
   * @example
   * ```ts
   * const sweeper = inventory.startHoldSweeper({ skus: ["iphone-17"], intervalMs: 500 });
   * // …
   * await sweeper.stop();
   * ```
   */
  startHoldSweeper(options: HoldSweeperOptions): HoldSweeper {
    return startHoldSweeper((sku, limit) => this.expireHolds(sku, { limit }), options);
  }

  /**
   * Reads a SKU's counters and settings, or `null` for a SKU that was never set.
   *
   * @example
   * ```ts
   * const s = await inventory.snapshot("iphone-17");
   * // s.available + s.held + s.confirmed === s.initial
   * ```
   */
  async snapshot(sku: string): Promise<InventorySnapshot | null> {
    for (let again = true; ; again = false) {
      const b = this.buckets.known(sku);
      const s = b === undefined ? await readSnapshot(this.redis, this.keys(sku).stock) : null;
      if (s !== null) return s;
      const found = b ?? (await this.buckets.lookup(sku));
      if (found === undefined) return null;
      const r = await this.buckets.snapshot(sku, found);
      // "stale": the SKU's record is gone or has another count (forgotten now): look again once.
      if (r !== "stale") return r;
      if (!again) return null;
    }
  }

  /**
   * One reservation as stored, or `null` when the SKU has none with that id. `remaining` is the units that
   * were left right after it was made (what `reserve` answered).
   *
   * @example
   * ```ts
   * const r = await inventory.reservation("iphone-17", "req-7f3a");
   * if (r?.state === "held") showPayButton();
   * ```
   */
  async reservation(sku: string, reservationId: string): Promise<ReservationInfo | null> {
    validateId("reservationId", reservationId);
    for (let again = true; ; again = false) {
      const b = this.buckets.known(sku);
      const r =
        b === undefined ? await readReservation(this.redis, this.keys(sku).stock, reservationId) : null;
      if (r !== null) return r;
      const found = b ?? (await this.buckets.lookup(sku));
      if (found === undefined) return null;
      const inBucket = await this.buckets.reservation(sku, found, reservationId);
      // Not found with what this process knew of the SKU: after a re-split, look again once.
      if (inBucket !== null || !again || b === undefined || !(await this.buckets.stale(sku, b)))
        return inBucket;
    }
  }

  /**
   * Units a user currently holds plus has confirmed for a SKU (what the per-user limit counts).
   *
   * @example
   * ```ts
   * await inventory.userQuantity("iphone-17", "u42"); // 1
   * ```
   */
  async userQuantity(sku: string, userId: string): Promise<number> {
    validateId("userId", userId);
    for (let again = true; ; again = false) {
      const b = this.buckets.known(sku);
      const q = b === undefined ? await readUserQuantity(this.redis, this.keys(sku).stock, userId) : 0;
      if (q !== 0) return q;
      const found = b ?? (await this.buckets.lookup(sku));
      if (found === undefined) return 0;
      const inBucket = await this.buckets.userQuantity(found, userId);
      // None with what this process knew of the SKU: after a re-split, look again once.
      if (inBucket !== 0 || !again || b === undefined || !(await this.buckets.stale(sku, b))) return inBucket;
    }
  }
}
