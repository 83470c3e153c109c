// What one Inventory knows about its SKUs without asking Redis: sold out (with the ids of every reservation
// ever made, so that a new id is refused in process while a retry still goes to Redis for its replay) and the
// sale window (judged on a Redis-synced clock); and the pub/sub subscriber that drops it when it changes.
import { randomBytes } from "node:crypto";
import { validateRedisClient } from "../internal/client.js";
import type { RedisClient } from "../internal/scripts.js";
import type { ReserveRejection } from "./types.js";

/** Per subscriber connection: how many flag sets listen on each restock channel. */
const subscriptions = new WeakMap<RedisClient, Map<string, number>>();

/** What the flags were when a call to Redis was made: its reply may teach them only if they are unchanged. */
export interface FlagToken {
  /** The SKU's change count when the call was made. */
  readonly generation: number;
  /** The flags' epoch when the call was made. */
  readonly epoch: number;
}

/** A SKU's state as a script left it (the tail of a reserve reply, or stock/state). */
export interface SkuState {
  /** Reservation records the SKU has ever made (records are never deleted); -1: unknown SKU. */
  readonly records: number;
  /** Units left; -1: unlimited. */
  readonly available: number;
  readonly perUserLimit: number;
  /** -1: none. */
  readonly startsAt: number;
  /** -1: none. */
  readonly endsAt: number;
  /** Redis time (ms) of the read; -1 when unknown. */
  readonly now: number;
}

/** A SKU's reservation ids and each user's units (held plus confirmed), as a load read them. */
export interface LoadedIds {
  readonly ids: Set<string>;
  readonly users: Map<string, number>;
}

/** Where Redis time stands against a boundary (see `RedisClock.compare`). */
export interface WindowClock {
  compare(boundaryMs: number): "before" | "after" | "unsure";
}

interface Known {
  /** `performance.now()` until which this is trusted (Infinity with a subscriber: until a change message). */
  readonly until: number;
  /** No unit left. */
  readonly soldOut: boolean;
  /** null: no start; 0: Redis time was seen at or past the start (time only grows), so no clock is needed. */
  readonly startsAt: number | null;
  /** null: no end; the end, until Redis time is seen at or past it (then `ended`). */
  readonly endsAt: number | null;
  readonly ended: boolean;
  /**
   * The ids of every reservation the SKU has made, when known complete: `closed` ones were counted while it
   * was sold out or over, so no id can have joined without a change message; open ones only hold while the
   * sale has not started (no reservation can succeed before its start).
   */
  readonly ids: ReadonlySet<string> | undefined;
  readonly idsClosed: boolean;
  /**
   * Each user's units, read with `ids` while sold out: frozen until a change message (no reserve succeeds,
   * and a release or expiry of a sold-out SKU publishes one), so LIMIT_REACHED is told apart as Redis would.
   */
  readonly users: ReadonlyMap<string, number> | undefined;
  readonly perUserLimit: number;
}

/**
 * In-process answers of one Inventory. Knowledge comes from Redis replies and goes up only if no change
 * message for the SKU arrived while the call was in flight (the message comes on another connection and can
 * overtake the reply), and, with a subscriber, only while it is subscribed; all of it drops when its
 * connection drops. @internal
 */
export class SoldOutFlags {
  private readonly known = new Map<string, Known>();
  /** SKU → change messages heard (a reply that started before one teaches nothing). */
  private readonly changes = new Map<string, number>();
  /** SKUs whose ids are being read. */
  private readonly loading = new Set<string>();
  /**
   * SKU → the token of a read whose count did not match (records from before the counter existed, a hand
   * edit): not read again until the SKU changes, so a mismatch costs one read, not one per reply.
   */
  private readonly fruitless = new Map<string, string>();
  /**
   * Bumped whenever changes may have been missed or forgotten (the subscriber's connection dropped or came
   * back, the `changes` map was cleared): a reply made in an older epoch teaches nothing.
   */
  private epoch = 0;
  /** With a subscriber: whether it is subscribed now. Nothing is known unless it is (no change is missed). */
  private listening = false;
  private closed = false;
  /** Tags this instance's own setStock messages, which it has already applied. */
  readonly origin = randomBytes(8).toString("hex");

  private readonly onSubscriberDown = (): void => {
    this.listening = false;
    this.forget();
  };
  private readonly onSubscriberReady = (): void => this.listen();
  private readonly onMessage = (channel: string, message: string): void => {
    if (channel !== this.channel) return;
    const nl = message.indexOf("\n");
    if (nl >= 0 && message.slice(nl + 1) === this.origin) return;
    this.changed(nl >= 0 ? message.slice(0, nl) : message);
  };

  constructor(
    /** The change channel, `<prefix>:restock`. */
    readonly channel: string,
    private readonly subscriber: RedisClient | undefined,
    /** Without a subscriber, how long a reply is trusted; 0: nothing is answered in process. */
    private readonly cacheMs: number,
    /** The most reservation ids held for one SKU. */
    private readonly maxIds: number,
    private readonly clock: WindowClock,
    /** Reads a SKU's reservation ids and then its state (stock/state); used once it is sold out or over. */
    private readonly loadIds: (sku: string) => Promise<(LoadedIds & { state: SkuState }) | undefined>,
  ) {
    if (subscriber === undefined) return;
    validateRedisClient("subscriber", subscriber);
    subscriber.on("message", this.onMessage);
    subscriber.on("close", this.onSubscriberDown);
    subscriber.on("end", this.onSubscriberDown);
    subscriber.on("ready", this.onSubscriberReady);
    // Counted per connection and channel: several Inventories may share a subscriber.
    let channels = subscriptions.get(subscriber);
    if (channels === undefined) subscriptions.set(subscriber, (channels = new Map()));
    channels.set(channel, (channels.get(channel) ?? 0) + 1);
    this.listen();
  }

  /**
   * The refusal Redis would give a `reserve` of `sku` now, when it is certain without asking: not started
   * or over (clearly, on the Redis clock), or sold out (then LIMIT_REACHED for a user it would refuse for
   * that), and the call carries no id or one that no reservation of the SKU has. `undefined`: ask Redis.
   */
  answer(
    sku: string,
    reservationId: string | undefined,
    userId: string,
    quantity: number,
  ): ReserveRejection | undefined {
    if (this.known.size === 0) return undefined;
    const k = this.known.get(sku);
    if (k === undefined || (this.subscriber !== undefined && !this.listening)) return undefined;
    if (k.until !== Infinity && performance.now() >= k.until) {
      this.known.delete(sku);
      return undefined;
    }
    let reason: ReserveRejection | undefined;
    // Redis checks the window before the stock: so does this, and a boundary too close to call asks Redis.
    if (k.startsAt !== null && k.startsAt !== 0) {
      const v = this.clock.compare(k.startsAt);
      if (v === "unsure") return undefined;
      if (v === "before") reason = "NOT_STARTED";
    }
    if (reason === undefined && k.endsAt !== null) {
      if (k.ended) reason = "ENDED";
      else {
        const v = this.clock.compare(k.endsAt);
        if (v === "unsure") return undefined;
        if (v === "after") reason = "ENDED";
      }
    }
    if (reason === undefined && k.soldOut) {
      // Redis checks the user's limit before the stock.
      if (k.users === undefined) return undefined;
      reason = (k.users.get(userId) ?? 0) + quantity > k.perUserLimit ? "LIMIT_REACHED" : "SOLD_OUT";
    }
    if (reason === undefined || reservationId === undefined) return reason;
    // A caller's id: refused here only if it is certainly new; a retry must get its first outcome. Without
    // a subscriber nothing tells this process that another one restocked (or moved the window) and then
    // made a reservation whose retry may come here, so a caller's id always goes to Redis.
    if (this.subscriber === undefined) return undefined;
    if (k.ids === undefined || k.ids.has(reservationId)) return undefined;
    return k.idsClosed || reason === "NOT_STARTED" ? reason : undefined;
  }

  /** The token a call to Redis carries, to learn from its reply. */
  token(sku: string): FlagToken {
    return { generation: this.changes.get(sku) ?? 0, epoch: this.epoch };
  }

  private valid(sku: string, token: FlagToken): boolean {
    return (
      this.cacheMs > 0 &&
      !this.closed &&
      (this.subscriber === undefined || this.listening) &&
      this.epoch === token.epoch &&
      (this.changes.get(sku) ?? 0) === token.generation
    );
  }

  /**
   * Learns what a reply says about `sku` (its state as the script left it), if no change came while its call
   * was in flight. `ids`: the SKU's reservation ids read before `state`, from a load.
   */
  learn(sku: string, state: SkuState, token: FlagToken, loaded?: LoadedIds): void {
    if (!this.valid(sku, token)) return;
    if (state.records < 0) {
      this.known.delete(sku);
      return;
    }
    const prev = this.known.get(sku);
    const soldOut = state.available === 0;
    const endsAt = state.endsAt < 0 ? null : state.endsAt;
    const startsAt = state.startsAt < 0 ? null : state.startsAt;
    const seen = state.now >= 0;
    const ended = endsAt !== null && seen && state.now >= endsAt;
    const before = startsAt !== null && seen && state.now < startsAt;
    // A set of `records` ids read before this state is all of them: records are never deleted.
    // A set counted while the sale was open stays complete only until its start, so it is only used to
    // refuse a new id as NOT_STARTED (see `answer`); one counted sold out or over, until a change message.
    let set: ReadonlySet<string> | undefined;
    let users: ReadonlyMap<string, number> | undefined;
    if (state.records === 0) {
      set = new Set();
      users = new Map(); // no reservation ever: nobody holds a unit
    } else if (loaded !== undefined && loaded.ids.size === state.records) {
      set = loaded.ids;
      users = loaded.users;
    } else if (prev?.ids !== undefined && prev.ids.size === state.records) {
      set = prev.ids;
      users = prev.users;
    }
    const closed = soldOut || ended;
    if (this.known.size >= 10_000 && prev === undefined) this.known.clear();
    this.known.set(sku, {
      until: this.subscriber === undefined ? performance.now() + this.cacheMs : Infinity,
      soldOut,
      startsAt: startsAt !== null && seen && state.now >= startsAt ? 0 : startsAt,
      endsAt,
      ended,
      ids: set,
      idsClosed: set !== undefined && closed,
      users: soldOut ? users : undefined,
      perUserLimit: state.perUserLimit,
    });
    // Read the ids (and users' units) when they make answers possible: closed or not started without a
    // complete set, or sold out without the units that tell LIMIT_REACHED apart.
    const useful = (set === undefined && (closed || before)) || (soldOut && users === undefined);
    if (useful && state.records <= this.maxIds && !this.loading.has(sku)) {
      if (this.fruitless.get(sku) !== `${token.epoch}:${token.generation}`) this.load(sku, token);
    }
  }

  /** Reads the SKU's ids once it is sold out, over or not started, so that new ids are refused in process. */
  private load(sku: string, token: FlagToken): void {
    this.loading.add(sku);
    this.loadIds(sku)
      .then(
        (r) => {
          if (r === undefined) return;
          this.learn(sku, r.state, token, r);
          // While closed, no id can join without a change message (a new token): a mismatch would repeat.
          if (r.ids.size !== r.state.records) {
            if (this.fruitless.size >= 10_000) this.fruitless.clear();
            this.fruitless.set(sku, `${token.epoch}:${token.generation}`);
          }
        },
        () => undefined, // no ids: calls with an id keep asking Redis
      )
      .finally(() => this.loading.delete(sku));
  }

  /** The SKU changed (or may have): drop what is known and let no older reply teach it again. */
  changed(sku: string): void {
    this.known.delete(sku);
    if (this.changes.size >= 10_000) {
      this.changes.clear();
      this.forget(); // the cleared counts could match an older reply's again
    }
    this.changes.set(sku, (this.changes.get(sku) ?? 0) + 1);
  }

  /**
   * This instance's own `setStock` left the SKU in `state` (its own change message is ignored): drop what
   * was known, and learn the new state unless another change came while the call was in flight (that one
   * may have been applied after it).
   */
  changedBy(sku: string, state: SkuState, token: FlagToken): void {
    const fresh = this.valid(sku, token);
    this.changed(sku);
    if (fresh) this.learn(sku, state, this.token(sku));
  }

  /** Drops everything known and keeps the replies in flight from teaching it again. */
  private forget(): void {
    this.epoch++;
    this.known.clear();
  }

  /** (Re)subscribes; knowledge may build again once the subscription is confirmed. */
  private listen(): void {
    const sub = this.subscriber;
    if (sub === undefined || this.closed) return;
    // SUBSCRIBE again is harmless (ioredis also resubscribes on reconnect); its reply confirms the channel.
    // A failed subscription only means nothing is answered in process; never an unhandled rejection.
    sub.subscribe(this.channel).then(
      () => {
        if (this.closed || (sub as { status?: string }).status !== "ready") return;
        this.forget(); // changes published before the subscription took hold were missed
        this.listening = true;
      },
      () => undefined,
    );
  }

  /** Stops listening (the connection stays open: it is the caller's) and forgets everything. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listening = false;
    this.forget();
    const sub = this.subscriber;
    if (sub === undefined) return;
    sub.off("message", this.onMessage);
    sub.off("close", this.onSubscriberDown);
    sub.off("end", this.onSubscriberDown);
    sub.off("ready", this.onSubscriberReady);
    const channels = subscriptions.get(sub);
    const n = (channels?.get(this.channel) ?? 1) - 1;
    if (n > 0) channels?.set(this.channel, n);
    else {
      channels?.delete(this.channel);
      await sub.unsubscribe(this.channel).catch(() => undefined);
    }
  }
}
