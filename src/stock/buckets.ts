// A hot SKU split into buckets: N copies of the one-bucket layout, each under its own hash tag chosen so the
// buckets land on different slot ranges (and so on different masters of a cluster). Each user has a home
// bucket (a hash of the user id) that holds the user's quota and reservations, so the per-user limit stays
// exact; a drained bucket borrows from the others through an idempotent two-step transfer, and a SKU is sold
// out only when a consistent read of every bucket finds no unit left and none in flight.
import { randomUUID } from "node:crypto";
import { ConflictError, InvalidArgumentError, UnexpectedReplyError } from "../errors.js";
import { TickBatcher, type Pending } from "../internal/batch.js";
import {
  defineScript,
  replyArray,
  replyError,
  replyInt,
  replyInts,
  toRedisError,
} from "../internal/scripts.js";
import type { RedisClient } from "../internal/scripts.js";
import { keySlot } from "../internal/slot.js";
import { readIds, readReservation, readUserQuantity, type ReservationInfo } from "./records.js";
import { CONFIRM, EXPIRE, RELEASE, RESERVE } from "./scripts.js";
import type { FlagToken, LoadedIds, SkuState, SoldOutFlags } from "./sold-out-flags.js";
import {
  RESERVE_REJECTIONS,
  ReserveCode,
  type ConfirmResult,
  type InventorySnapshot,
  type ReleaseResult,
  type ReserveResult,
  type StockOptions,
} from "./types.js";

/** The keys of one bucket of a bucketed SKU. */
export interface BucketKeys {
  /** The bucket's stock hash (the same fields as a one-bucket SKU's `stock`). */
  readonly stock: string;
  /** Its unconfirmed reservations by expiry. */
  readonly holds: string;
  /** Its event stream (the `reserved` / `confirmed` / `released` events of the users it is home to). */
  readonly events: string;
  /** Its outgoing transfers not yet received by the borrowing bucket. */
  readonly moves: string;
}

/** The keys of a bucketed SKU: its record and each bucket's keys, in bucket order. */
export interface BucketedKeys {
  /** The SKU's record: bucket count, total, a `setStock` in progress. Same slot as the one-bucket keys. */
  readonly meta: string;
  readonly buckets: readonly BucketKeys[];
}

/** The reply of stock/bucket-meta. */
const META = defineScript("stock/bucket-meta", (r) => {
  const a = replyArray("stock/bucket-meta", r);
  if (a.length !== 5) throw replyError("stock/bucket-meta", r, "five fields");
  const code = Number(a[0]);
  if (code !== 0 && code !== 1 && code !== 2) throw replyError("stock/bucket-meta", r, "code 0, 1 or 2");
  return {
    code,
    id: String(a[1]),
    total: Number(a[2]),
    delta: Number(a[3]),
    resumed: Number(a[4]) === 1,
  };
});
const ADJUST = defineScript("stock/bucket-adjust", (r) => {
  const [added, available] = replyInts("stock/bucket-adjust", r, 2) as [number, number];
  return { added, available };
});
const TAKE = defineScript("stock/bucket-take", (r) => {
  const n = replyInt("stock/bucket-take", r);
  if (n < 0) throw replyError("stock/bucket-take", r, "a count");
  return n;
});
const CREDIT = defineScript("stock/bucket-credit", (r) => replyInt("stock/bucket-credit", r));

interface Peek {
  /** -1: the bucket does not exist. */
  readonly available: number;
  readonly v: number;
  readonly n: number;
  readonly limit: number;
  readonly startsAt: number;
  readonly endsAt: number;
  readonly held: number;
  readonly confirmed: number;
  /** Unfinished outgoing transfers. */
  readonly moves: { id: string; to: number; units: number }[];
}
const PEEK = defineScript("stock/bucket-peek", (r): Peek => {
  const a = replyArray("stock/bucket-peek", r);
  if (a.length !== 9 || !Array.isArray(a[8])) throw replyError("stock/bucket-peek", r, "nine fields");
  const flat = a[8] as unknown[];
  const moves: Peek["moves"] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const [to, units] = String(flat[i + 1])
      .split("|")
      .map(Number) as [number, number];
    moves.push({ id: String(flat[i]), to, units });
  }
  const [available, v, n, limit, startsAt, endsAt, held, confirmed] = a.slice(0, 8).map(Number) as number[];
  return {
    available: available!,
    v: v!,
    n: n!,
    limit: limit!,
    startsAt: startsAt!,
    endsAt: endsAt!,
    held: held!,
    confirmed: confirmed!,
    moves,
  };
});

/** The slot range bucket `i` of `n` aims at: the middle half of the i-th n-th of the 16,384 slots. */
function band(i: number, n: number): [number, number] {
  const lo = Math.floor((16384 * i) / n);
  const hi = Math.floor((16384 * (i + 1)) / n);
  const quarter = Math.floor((hi - lo) / 4);
  return [lo + quarter, hi - quarter];
}

/**
 * The hash tags (without braces) of a SKU's buckets: `<prefix>:<sku>#<i>/<n>.<j>` with the smallest `j`
 * whose slot falls in the middle of the i-th n-th of the slot space, so that on a cluster whose masters own
 * equal ranges (what `redis-cli --cluster create` makes) bucket i of 3 lands on master i. The `#` before the
 * bucket part is the last one in the tag, so two SKUs never share a tag; the key names (`:bstock`, …) differ
 * from a one-bucket SKU's anyway.
 * @internal
 */
export function bucketTags(prefix: string, sku: string, n: number): string[] {
  const tags: string[] = [];
  for (let i = 0; i < n; i++) {
    const [lo, hi] = band(i, n);
    for (let j = 0; ; j++) {
      const tag = `${prefix}:${sku}#${i}/${n}.${j}`;
      const slot = keySlot(`{${tag}}`);
      if (slot >= lo && slot < hi) {
        tags.push(tag);
        break;
      }
    }
  }
  return tags;
}

/** FNV-1a of the user id: which bucket is a user's home. @internal */
export function homeOf(userId: string, n: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < userId.length; i++) {
    h ^= userId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % n;
}

/** What a process knows about one bucketed SKU (fixed for the SKU's life: its count cannot change). */
export interface BucketInfo {
  readonly n: number;
  /** Per bucket: the script KEYS of stock/reserve, confirm, release, expire-holds ([stock, holds, events]). */
  readonly lists: readonly string[][];
  readonly keys: BucketedKeys;
}

/** One reservation on its way to its home bucket. */
export interface BucketItem {
  readonly reservationId: string;
  readonly userId: string;
  readonly quantity: number;
  readonly token: FlagToken;
}

type Raw = { code: number; remaining: number };

/** The most script calls one reservation may spend borrowing before it gives up with an error. */
const MAX_ROUNDS = 1000;

/**
 * The bucketed side of an Inventory: keys, setStock, the reserve path with borrowing, and finding a
 * reservation's bucket. @internal
 */
export class Buckets {
  private readonly infos = new Map<string, BucketInfo>();
  /** expireHolds calls so far: which bucket's share comes first rotates. */
  private sweeps = 0;
  /** SKUs looked up and found not bucketed, until (performance.now()) the answer is trusted. */
  private readonly plain = new Map<string, number>();
  /** One borrowing round at a time per (SKU, bucket): the others wait for it and retry. */
  private readonly gathering = new Map<string, { need: number; done: Promise<"retry" | "soldout"> }>();
  private readonly batcher: TickBatcher<string, BucketItem, Raw> | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly maxLen: string,
    private readonly channel: string,
    private readonly origin: string,
    private readonly flags: SoldOutFlags,
    batch: boolean,
    maxBatch: number,
  ) {
    this.batcher = batch ? new TickBatcher((group, b) => this.send(group, b), maxBatch) : undefined;
  }

  /** The keys of a SKU split into `n` buckets. */
  keysOf(sku: string, n: number): BucketedKeys {
    return {
      meta: this.metaKey(sku),
      buckets: bucketTags(this.prefix, sku, n).map((t) => ({
        stock: `{${t}}:bstock`,
        holds: `{${t}}:bholds`,
        events: `{${t}}:bevents`,
        moves: `{${t}}:bmoves`,
      })),
    };
  }

  private build(sku: string, n: number): BucketInfo {
    const keys = this.keysOf(sku, n);
    return { n, keys, lists: keys.buckets.map((b) => [b.stock, b.holds, b.events]) };
  }

  private infoFor(sku: string, n: number): BucketInfo {
    let info = this.infos.get(sku);
    if (info === undefined || info.n !== n) {
      info = this.build(sku, n);
      if (this.infos.size >= 10_000) this.infos.clear();
      this.infos.set(sku, info);
    }
    return info;
  }

  /** What this process knows: the SKU's buckets, or `undefined` (not bucketed, or not known yet). */
  known(sku: string): BucketInfo | undefined {
    return this.infos.size === 0 ? undefined : this.infos.get(sku);
  }

  /** Reads whether the SKU is bucketed (a one-bucket call just found it unknown). */
  async lookup(sku: string): Promise<BucketInfo | undefined> {
    const known = this.infos.get(sku);
    if (known !== undefined) return known;
    const until = this.plain.get(sku);
    if (until !== undefined && performance.now() < until) return undefined;
    let n: string | null;
    try {
      n = await this.redis.hget(this.metaKey(sku), "n");
    } catch (err) {
      throw toRedisError(err);
    }
    if (n === null) {
      if (this.plain.size >= 10_000) this.plain.clear();
      this.plain.set(sku, performance.now() + 1000);
      return undefined;
    }
    return this.infoFor(sku, Number(n));
  }

  /** The key of a SKU's bucketed record (same slot as its one-bucket keys). */
  metaKey(sku: string): string {
    return `{${this.prefix}:${sku}}:buckets`;
  }

  /** What this process knew of a SKU's buckets may be stale (keys deleted, SKU set again): forget it. */
  forget(sku: string): void {
    this.infos.delete(sku);
    this.plain.delete(sku);
  }

  /**
   * Whether `info` is no longer the SKU's layout (its record is gone or has another count): then it is
   * forgotten, and the caller looks again. One read of the record.
   */
  async stale(sku: string, info: BucketInfo): Promise<boolean> {
    let n: string | null;
    try {
      n = await this.redis.hget(info.keys.meta, "n");
    } catch (err) {
      throw toRedisError(err);
    }
    if (n !== null && Number(n) === info.n) return false;
    if (this.infos.get(sku) === info) this.infos.delete(sku);
    return true;
  }

  /** The bucket count a live SKU has, 1 for a one-bucket SKU, 0 for none. */
  async countOf(sku: string): Promise<number> {
    try {
      const [n, plain] = await Promise.all([
        this.redis.hget(this.metaKey(sku), "n"),
        this.redis.exists(`{${this.prefix}:${sku}}:stock`),
      ]);
      if (n !== null) return Number(n);
      return plain === 1 ? 1 : 0;
    } catch (err) {
      throw toRedisError(err);
    }
  }

  /**
   * Creates or adjusts a bucketed SKU: the record first (refusing another count or a one-bucket SKU of that
   * name), then each bucket under one operation id (idempotent per bucket), then the record's total. A call
   * that finds an earlier one unfinished completes it first.
   */
  async setStock(
    sku: string,
    quantity: number,
    n: number,
    o: Required<Pick<StockOptions, "perUserLimit">> & StockOptions,
  ): Promise<void> {
    if (quantity < 0)
      throw new InvalidArgumentError("quantity", "must be finite (not UNLIMITED) with buckets");
    const keys = this.keysOf(sku, n);
    const one = `{${this.prefix}:${sku}}:stock`;
    const token = this.flags.token(sku);
    for (let round = 0; ; round++) {
      const id = randomUUID();
      const m = await META.run(this.redis, [keys.meta, one], ["begin", n, id, quantity]);
      if (m.code === 1) {
        throw new ConflictError(
          "BUCKET_COUNT",
          `${sku} is a one-bucket SKU: its bucket count cannot change while it lives (delete its keys first)`,
        );
      }
      if (m.code === 2) {
        throw new ConflictError(
          "BUCKET_COUNT",
          `${sku} has ${m.id} buckets, not ${n}: the count of a live SKU cannot change (delete its keys first)`,
        );
      }
      const ok = await this.apply(sku, keys, m.id, m.delta, n, o);
      await META.run(this.redis, [keys.meta, one], [ok ? "commit" : "abort", n, m.id]);
      if (!ok && !m.resumed) {
        throw new ConflictError(
          "STOCK_BELOW_COMMITTED",
          `cannot set ${sku} to ${m.total} units: fewer than ${-m.delta} of its units are available`,
        );
      }
      if (!m.resumed) break;
      if (round > 3) throw new UnexpectedReplyError(`setStock ${sku}: earlier operations keep appearing`);
    }
    this.infoFor(sku, n);
    this.plain.delete(sku);
    const peeks = await this.peekAll(this.infoFor(sku, n));
    this.flags.changedBy(sku, this.stateOf(peeks), token);
  }

  /**
   * Applies one operation to every bucket: an increase spread evenly, a decrease taken from the available
   * units bucket by bucket (and put back, under a second id, when there are not enough). `false`: not enough.
   */
  private async apply(
    sku: string,
    keys: BucketedKeys,
    id: string,
    delta: number,
    n: number,
    o: Required<Pick<StockOptions, "perUserLimit">> & StockOptions,
  ): Promise<boolean> {
    const run = (i: number, opId: string, add: number, unitsOnly = false) =>
      ADJUST.run(
        this.redis,
        [keys.buckets[i]!.stock],
        [
          opId,
          n,
          add,
          o.perUserLimit,
          o.startsAt ?? "",
          o.endsAt ?? "",
          o.holdMs ?? 0,
          this.channel,
          sku,
          this.origin,
          unitsOnly ? "1" : "",
        ],
      );
    if (delta >= 0) {
      await Promise.all(
        keys.buckets.map((_, i) => run(i, id, Math.floor(delta / n) + (i < delta % n ? 1 : 0))),
      );
      return true;
    }
    // In bucket order, each asked for what is still missing: a retry of the same id replays the same steps.
    // The units are taken with the settings left as they are, and the settings written only once every unit
    // is taken, so a refused call (STOCK_BELOW_COMMITTED) changes no setting.
    let missing = -delta;
    const taken: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = await run(i, id, -missing, true);
      taken.push(-r.added);
      missing += r.added;
    }
    if (missing === 0) {
      await Promise.all(keys.buckets.map((_, i) => run(i, `${id}:set`, 0)));
      return true;
    }
    await Promise.all(taken.map((t, i) => run(i, `${id}:undo`, t, true)));
    return false;
  }

  /** Reserves in the user's home bucket, borrowing from the others when it runs dry. */
  async reserve(sku: string, info: BucketInfo, item: BucketItem): Promise<ReserveResult> {
    const home = homeOf(item.userId, info.n);
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const raw =
        this.batcher === undefined
          ? (await this.run(sku, info, home, [item]))[0]!
          : await this.batcher.submit(`${info.n}/${home}\n${sku}`, item);
      const { code, remaining } = raw;
      if (code === ReserveCode.OK || code === ReserveCode.REPLAY) {
        return { ok: true, reservationId: item.reservationId, remaining };
      }
      if (code === ReserveCode.CONFLICT) {
        throw new ConflictError(
          "RESERVATION_CONFLICT",
          `reservationId ${item.reservationId} was already used for another user or quantity`,
        );
      }
      if (code === 2) {
        // The bucket is gone (keys deleted) or not made yet: ask again what the SKU is.
        this.forget(sku);
        return { ok: false, reason: "UNKNOWN_SKU" };
      }
      if (code !== 6) {
        const reason = RESERVE_REJECTIONS[code];
        if (reason === undefined) throw new UnexpectedReplyError(`stock/reserve returned code ${code}`);
        return { ok: false, reason };
      }
      const outcome = await this.gather(sku, info, home, item.quantity, item.token);
      if (outcome === "soldout") return { ok: false, reason: "SOLD_OUT" };
    }
    throw new UnexpectedReplyError(
      `stock/reserve of ${sku}: no outcome after ${MAX_ROUNDS} borrowing rounds`,
    );
  }

  private async send(group: string, batch: Pending<BucketItem, Raw>[]): Promise<void> {
    const nl = group.indexOf("\n");
    const [n, home] = group.slice(0, nl).split("/").map(Number) as [number, number];
    const sku = group.slice(nl + 1);
    // The info the calls were made with (it may have been forgotten meanwhile: a stale one is told by code 2).
    const known = this.infos.get(sku);
    const info = known !== undefined && known.n === n ? known : this.build(sku, n);
    const results = await this.run(
      sku,
      info,
      home,
      batch.map((p) => p.item),
    );
    batch.forEach((p, i) => p.resolve(results[i]!));
  }

  /** One stock/reserve call on one bucket (the one-bucket script, unchanged, on the bucket's keys). */
  private async run(sku: string, info: BucketInfo, i: number, items: readonly BucketItem[]): Promise<Raw[]> {
    const args: (string | number)[] = [sku, this.maxLen];
    for (const it of items) args.push(it.reservationId, it.userId, it.quantity);
    const { codes } = await RESERVE.run(this.redis, info.lists[i]!, args);
    if (codes.length !== 2 * items.length) {
      throw new UnexpectedReplyError(`stock/reserve replied ${codes.length} integers for ${items.length}`);
    }
    return items.map((_, k) => ({ code: codes[2 * k]!, remaining: codes[2 * k + 1]! }));
  }

  /** One borrowing round for bucket `home`, shared by the calls that find it dry at the same time. */
  private gather(
    sku: string,
    info: BucketInfo,
    home: number,
    need: number,
    token: FlagToken,
  ): Promise<"retry" | "soldout"> {
    const key = `${home}\n${sku}`;
    const running = this.gathering.get(key);
    // Someone is already borrowing for this bucket: wait for it, then try the bucket again.
    // Its "sold out" holds for this call too only if this call needs at least as many units.
    if (running !== undefined)
      return running.done.then((r) => (r === "soldout" && need >= running.need ? r : "retry"));
    const done = this.borrow(sku, info, home, need, token).finally(() => this.gathering.delete(key));
    this.gathering.set(key, { need, done });
    return done;
  }

  private async peekAll(info: BucketInfo): Promise<Peek[]> {
    return Promise.all(info.keys.buckets.map((b) => PEEK.run(this.redis, [b.stock, b.moves], [])));
  }

  /** The SKU's state summed over the buckets, as the sold-out flags take it. */
  private stateOf(peeks: readonly Peek[]): SkuState {
    const first = peeks[0]!;
    if (peeks.some((p) => p.available < 0)) {
      return { records: -1, available: -1, perUserLimit: -1, startsAt: -1, endsAt: -1, now: -1 };
    }
    let records = 0;
    let available = 0;
    for (const p of peeks) {
      records += p.n;
      available += p.available + p.moves.reduce((s, m) => s + m.units, 0);
    }
    return {
      records,
      available,
      perUserLimit: first.limit,
      startsAt: first.startsAt,
      endsAt: first.endsAt,
      now: -1,
    };
  }

  /** Finishes a transfer whose first step is done: credit the receiver (once), then clear the donor's entry. */
  private async finish(info: BucketInfo, from: number, id: string, to: number, units: number): Promise<void> {
    const receiver = info.keys.buckets[to];
    if (receiver === undefined) throw new UnexpectedReplyError(`transfer ${id} names bucket ${to}`);
    await CREDIT.run(this.redis, [receiver.stock], [id, units, from]);
    try {
      await this.redis.hdel(info.keys.buckets[from]!.moves, id);
    } catch (err) {
      throw toRedisError(err);
    }
  }

  /**
   * Moves units to `home` from the bucket with the most, or finishes transfers left half done, or decides
   * the SKU is sold out: two reads of every bucket with no unit, no transfer in flight and the same transfer
   * counters (v) in both mean that, between them, every bucket was empty at once.
   */
  private async borrow(
    sku: string,
    info: BucketInfo,
    home: number,
    need: number,
    token: FlagToken,
  ): Promise<"retry" | "soldout"> {
    const first = await this.peekAll(info);
    if (first.some((p) => p.available < 0)) return "retry"; // a bucket vanished: the reserve call will tell
    // `need` is the reservation's quantity; the bucket may have got units since the reserve call.
    if (first[home]!.available >= need) return "retry";
    let pending = false;
    for (let i = 0; i < first.length; i++) {
      for (const m of first[i]!.moves) {
        pending = true;
        await this.finish(info, i, m.id, m.to, m.units);
      }
    }
    if (pending) return "retry";
    let donor = -1;
    for (let i = 0; i < first.length; i++) {
      if (
        i !== home &&
        first[i]!.available > 0 &&
        (donor < 0 || first[i]!.available > first[donor]!.available)
      )
        donor = i;
    }
    if (donor >= 0) {
      const id = randomUUID();
      const from = info.keys.buckets[donor]!;
      const units = await TAKE.run(
        this.redis,
        [from.stock, from.moves],
        [id, home, need - Math.max(0, first[home]!.available)],
      );
      if (units > 0) await this.finish(info, donor, id, home, units);
      return "retry";
    }
    const second = await this.peekAll(info);
    const same = second.every(
      (p, i) => p.v === first[i]!.v && p.moves.length === 0 && p.available <= first[i]!.available,
    );
    if (!same) return "retry";
    this.flags.learn(sku, this.stateOf(second), token);
    return "soldout";
  }

  /** Reads every bucket's reservation ids and users for the sold-out flags (see `readIds`). */
  async readIds(info: BucketInfo, maxIds: number): Promise<(LoadedIds & { state: SkuState }) | undefined> {
    const ids = new Set<string>();
    const users = new Map<string, number>();
    let records = 0;
    let available = 0;
    let state: SkuState | undefined;
    for (const b of info.keys.buckets) {
      const r = await readIds(this.redis, b.stock, maxIds - ids.size);
      if (r === undefined) return undefined;
      for (const id of r.ids) ids.add(id);
      for (const [u, q] of r.users) users.set(u, q);
      if (r.state.records < 0) return undefined;
      records += r.state.records;
      available += r.state.available;
      state = r.state;
    }
    if (state === undefined) return undefined;
    // Units in flight between buckets count as available (not sold out): read after the ids, as `state` is.
    const peeks = await this.peekAll(info);
    for (const p of peeks) for (const m of p.moves) available += m.units;
    return { ids, users, state: { ...state, records, available, now: -1 } };
  }

  /**
   * Finds the bucket holding a reservation: this process's hint, else a read of every bucket. A
   * reservation id held by two buckets (reused by two users) is refused with ConflictError.
   */
  private async locate(sku: string, info: BucketInfo, reservationId: string): Promise<number | undefined> {
    let found: (string | null)[];
    try {
      found = await Promise.all(info.keys.buckets.map((b) => this.redis.hget(b.stock, `r:${reservationId}`)));
    } catch (err) {
      throw toRedisError(err);
    }
    const at = found.flatMap((r, i) => (r === null ? [] : [i]));
    if (at.length > 1) {
      throw new ConflictError(
        "RESERVATION_CONFLICT",
        `reservationId ${reservationId} of ${sku} was used by ${at.length} users; confirm or release it by hand`,
      );
    }
    return at[0];
  }

  async confirm(sku: string, info: BucketInfo, reservationId: string): Promise<ConfirmResult | 1> {
    const i = await this.locate(sku, info, reservationId);
    if (i === undefined) return { ok: false, reason: "UNKNOWN_RESERVATION" };
    const code = await CONFIRM.run(this.redis, info.lists[i]!, [
      reservationId,
      sku,
      this.maxLen,
      this.channel,
    ]);
    if (code === 0) return { ok: true };
    if (code === 1) return 1;
    return { ok: false, reason: "UNKNOWN_RESERVATION" };
  }

  async release(sku: string, info: BucketInfo, reservationId: string): Promise<ReleaseResult> {
    const i = await this.locate(sku, info, reservationId);
    if (i === undefined) return { ok: false, reason: "UNKNOWN_RESERVATION" };
    const code = await RELEASE.run(this.redis, info.lists[i]!, [
      reservationId,
      sku,
      this.maxLen,
      this.channel,
    ]);
    if (code === 0) return { ok: true };
    if (code === 1) return { ok: false, reason: "CONFIRMED" };
    return { ok: false, reason: "UNKNOWN_RESERVATION" };
  }

  /**
   * Releases at most `limit` due holds over all the buckets: the limit is shared out among the buckets (the
   * remainder to a rotating first few, so no bucket waits for ever), in parallel; what a bucket with fewer
   * due holds left unused goes, in further rounds, to the buckets that used their whole share.
   */
  async expireHolds(sku: string, info: BucketInfo, limit: number): Promise<number> {
    const start = this.sweeps++ % info.n;
    let active = info.lists.map((_, k) => (start + k) % info.n);
    let left = limit;
    let total = 0;
    while (left > 0 && active.length > 0) {
      const k = active.length;
      const shares = active.map((_, j) => Math.floor(left / k) + (j < left % k ? 1 : 0));
      const counts = await Promise.all(
        active.map((i, j) =>
          shares[j]! === 0
            ? 0
            : EXPIRE.run(this.redis, info.lists[i]!, [shares[j]!, sku, this.maxLen, this.channel]),
        ),
      );
      const released = counts.reduce((a, b) => a + b, 0);
      total += released;
      left -= released;
      // A bucket that released less than its share has no more due; one with no share yet keeps its turn.
      active = active.filter((_, j) => counts[j]! === shares[j]!);
      if (released === 0 && shares.every((x) => x > 0)) break;
    }
    return total;
  }

  async reservation(sku: string, info: BucketInfo, reservationId: string): Promise<ReservationInfo | null> {
    const i = await this.locate(sku, info, reservationId);
    if (i === undefined) return null;
    return readReservation(this.redis, info.keys.buckets[i]!.stock, reservationId);
  }

  async userQuantity(info: BucketInfo, userId: string): Promise<number> {
    return readUserQuantity(this.redis, info.keys.buckets[homeOf(userId, info.n)]!.stock, userId);
  }

  /**
   * The counters summed over the buckets (units in flight between two buckets count as available), or
   * `null` when the SKU's record is gone. Each bucket is read in one step, the buckets one after another,
   * so under traffic the sum is of nearly simultaneous reads; once calls stop it is exact.
   */
  async snapshot(sku: string, info: BucketInfo): Promise<InventorySnapshot | null | "stale"> {
    let meta: (string | null)[];
    try {
      meta = await this.redis.hmget(info.keys.meta, "initial", "n");
    } catch (err) {
      throw toRedisError(err);
    }
    if (meta[1] === null || Number(meta[1]) !== info.n) {
      // Deleted, perhaps set again with another layout: the caller looks again.
      if (this.infos.get(sku) === info) this.infos.delete(sku);
      return "stale";
    }
    if (meta[0] === null) return null;
    const peeks = await this.peekAll(info);
    let available = 0;
    let held = 0;
    let confirmed = 0;
    const credited = await Promise.all(
      peeks.flatMap((p) =>
        p.moves.map(async (m) => {
          const to = info.keys.buckets[m.to];
          if (to === undefined) return 0;
          // Between the two steps the units are in neither bucket's `available`: count them once.
          return (await this.redis.hexists(to.stock, `x:${m.id}`)) === 1 ? 0 : m.units;
        }),
      ),
    );
    for (const p of peeks) {
      if (p.available < 0) return null;
      available += p.available;
      held += p.held;
      confirmed += p.confirmed;
    }
    available += credited.reduce((a, b) => a + b, 0);
    const first = peeks[0]!;
    let hold: string | null = null;
    try {
      hold = await this.redis.hget(info.keys.buckets[0]!.stock, "hold");
    } catch (err) {
      throw toRedisError(err);
    }
    return {
      initial: Number(meta[0]),
      available,
      held,
      confirmed,
      perUserLimit: first.limit,
      ...(first.startsAt >= 0 && { startsAt: first.startsAt }),
      ...(first.endsAt >= 0 && { endsAt: first.endsAt }),
      ...(Number(hold) > 0 && { holdMs: Number(hold) }),
      buckets: info.n,
    };
  }
}
