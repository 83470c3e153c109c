// WaitingRoom: a fair waiting room on Redis. Joins before the opening are put in a uniformly random order,
// later joins in arrival order; the head of the line is admitted at a set rate and/or while the active passes
// stay under a cap, decided lazily on Redis TIME inside the join and status scripts; each admitted user gets a
// signed, single-use pass.
import { randomBytes } from "node:crypto";
import { InvalidArgumentError } from "../errors.js";
import { TickBatcher, type Pending } from "../internal/batch.js";
import { validateRedisClient } from "../internal/client.js";
import { entityKeys, resolvePrefix } from "../internal/keys.js";
import { defineScript, replyError, replyInts, toRedisError, type RedisClient } from "../internal/scripts.js";
import { optionKeys, validateId, validateInt, validateOptions } from "../internal/validate.js";
import { Signer, type RoomSecret } from "./signing.js";

/** Options of `new WaitingRoom()`. Give `admitPerSecond`, `maxActive`, or both. */
export interface WaitingRoomOptions {
  /** The room: every key of it shares the hash tag `{<prefix>:<roomId>}`. */
  readonly roomId: string;
  /**
   * The HMAC-SHA256 key that signs tickets and passes, at least 32 bytes; the same on every server. A list
   * rotates keys: the first signs, any of them verifies.
   */
  readonly secret: RoomSecret | readonly RoomSecret[];
  /**
   * Epoch ms the room opens (Redis time). Joins before it are put in a uniformly random order at the
   * opening; later joins queue in arrival order. Nobody is admitted before it.
   * @default 0 (open already)
   */
  readonly opensAt?: number;
  /**
   * Admissions per second once open (fractions allowed), as a token bucket on Redis time: at most
   * `burst + admitPerSecond × seconds since the opening` users are ever admitted. Omitted: no rate limit
   * (then `maxActive` is required).
   */
  readonly admitPerSecond?: number;
  /**
   * The most admissions at once (the bucket's capacity), an integer.
   * @default max(1, ceil(admitPerSecond))
   */
  readonly burst?: number;
  /**
   * The most unexpired, unspent passes at once: a pass spent (`redeemPass`, `SaleGate`) or expired frees a
   * place for the next in line. Omitted: no cap (then `admitPerSecond` is required).
   */
  readonly maxActive?: number;
  /**
   * How long a pass stays valid after its admission, judged by Redis time; a user who does not use it in
   * time loses it (and may join again, at the back).
   * @default 120000
   */
  readonly passTtlMs?: number;
  /**
   * First part of the room's hash tag.
   * @default "fsk"
   */
  readonly prefix?: string;
  /**
   * Coalesce the joins and status reads made on one room in the same tick into one script call, each keeping
   * its own outcome exactly as if run alone in submission order.
   * @default true
   */
  readonly batch?: boolean;
}

/** A signing key of a waiting room: at least 32 bytes (a string counts its UTF-8 bytes). */
export type { RoomSecret } from "./signing.js";

/** Waiting in line, after the opening. */
export interface WaitingStanding {
  readonly state: "WAITING";
  /** The user's ticket: keep it (a cookie, local storage) and ask `status` with it. */
  readonly ticket: string;
  /** 1 for the next to be admitted. */
  readonly position: number;
  /** How many wait in the room now. */
  readonly waiting: number;
  /** Whether admissions are paused. */
  readonly paused: boolean;
  /**
   * About how long until admission, in ms, from the rate and the cap (an upper bound from the pass lifetime
   * when only `maxActive` is set: passes spent early shorten it). Absent while paused.
   */
  readonly estimatedWaitMs?: number;
}

/** Joined before the opening: the place is drawn at random among the early joiners, at the opening. */
export interface BeforeOpeningStanding {
  readonly state: "BEFORE_OPENING";
  readonly ticket: string;
  /** How many wait in the room now. */
  readonly waiting: number;
  /** Ms until the opening, by Redis time. */
  readonly opensInMs: number;
}

/** Admitted: here is the pass. */
export interface AdmittedStanding {
  readonly state: "ADMITTED";
  readonly ticket: string;
  /** The signed, single-use pass for this user; spend it with `redeemPass` (or `SaleGate`). */
  readonly pass: string;
  /** Epoch ms (Redis time) the pass expires. */
  readonly expiresAt: number;
  /** The room's n-th admission (1-based): admissions are numbered in the order they are made. */
  readonly admission: number;
}

/** A join refused: the room is draining (it takes no new joins). Nothing was written. */
export interface ClosedStanding {
  readonly state: "CLOSED";
}

/** The ticket's user is not in the room: never joined, the room was cleared, or the pass was spent or expired. */
export interface NotQueuedStanding {
  readonly state: "NOT_QUEUED";
}

/** Why a ticket was refused. */
export type TicketRejection =
  /** Not a ticket of this library, or its signature does not verify (tampered, or another secret). */
  | "INVALID"
  /** A ticket of another room. */
  | "WRONG_ROOM"
  /** A ticket of another user. */
  | "WRONG_USER";

/** A ticket refused. Nothing was read or written. */
export interface RefusedStanding {
  readonly state: "REFUSED";
  readonly reason: TicketRejection;
}

/** The outcome of `join`. */
export type JoinResult = WaitingStanding | BeforeOpeningStanding | AdmittedStanding | ClosedStanding;

/** The outcome of `status`. */
export type StatusResult =
  WaitingStanding | BeforeOpeningStanding | AdmittedStanding | NotQueuedStanding | RefusedStanding;

/** Why a pass was refused. Refusals write nothing. */
export type PassRejection =
  /** Not a pass, or its signature does not verify (forged, tampered, another secret). */
  | "INVALID"
  /** A pass of another room. */
  | "WRONG_ROOM"
  /** A pass of another user: passed on or stolen. */
  | "WRONG_USER"
  /** Past its `expiresAt` by Redis time. */
  | "EXPIRED"
  /** Spent already (or the room was cleared since). */
  | "USED";

/** The outcome of `redeemPass`. */
export type PassResult =
  | { readonly ok: true; readonly expiresAt: number; readonly admission: number }
  | { readonly ok: false; readonly reason: PassRejection };

/** The room as a dashboard shows it. */
export interface RoomStats {
  /** Redis time of the reading (epoch ms). */
  readonly now: number;
  /** Whether the room has opened (Redis time). */
  readonly open: boolean;
  readonly paused: boolean;
  readonly draining: boolean;
  /** How many wait in line. */
  readonly waiting: number;
  /** Unexpired, unspent passes. */
  readonly active: number;
  /** Admissions since the room was created (or cleared). */
  readonly admitted: number;
}

/** The Redis keys of a room. */
export interface WaitingRoomKeys {
  /** Hash: sequence, bucket, admission count, paused and draining flags. */
  readonly meta: string;
  /** Sorted set: the line (user → place score). */
  readonly waiting: string;
  /** Sorted set: admitted users → their pass's expiry. */
  readonly admitted: string;
  /** Hash: admitted users → their admission number. */
  readonly numbers: string;
}

const KNOWN = optionKeys<WaitingRoomOptions>({
  roomId: 1,
  secret: 1,
  opensAt: 1,
  admitPerSecond: 1,
  burst: 1,
  maxActive: 1,
  passTtlMs: 1,
  prefix: 1,
  batch: 1,
});

/** The most operations one script call carries. */
const MAX_BATCH = 256;

/** A batch of this many operations or more (and fewer than MAX_BATCH) goes as two script calls (see #send). */
const SPLIT_AT = 64;

/** How many verified tickets a room remembers. */
const VERIFIED_MAX = 10_000;

/** The most admissions per second, burst and active cap accepted. */
const MAX_RATE = 1_000_000;

/** One operation of a step call: its kind (`s`, `j`, or `j<draw>`: see step.lua) and the user. */
type Op = { readonly kind: string; readonly userId: string };
type OpReply = { readonly code: number; readonly a: number; readonly b: number; readonly head: Head };
interface Head {
  readonly now: number;
  readonly paused: boolean;
  readonly draining: boolean;
  readonly tokens: number;
  readonly waiting: number;
  readonly active: number;
  readonly admitted: number;
}

const HEAD = 7;

const STEP = defineScript("queue/step", (r): number[] => {
  const ints = replyInts("queue/step", r);
  if (ints.length < HEAD) throw replyError("queue/step", r, `${HEAD} integers, then the operations'`);
  return ints;
});

/** Reply codes of step.lua, the low 3 bits of an operation's integer. */
const WAITING = 1;
const ADMITTED = 2;
const NEEDS_DRAW = 6;

/**
 * The operations' outcomes in a step reply: one integer each (8 × value + code), and the admission number
 * after an admission's. Throws when the reply does not hold exactly `count` of them.
 */
function opsOf(r: readonly number[], count: number): OpReply[] {
  const head = headOf(r);
  const out: OpReply[] = new Array<OpReply>(count);
  let p = HEAD;
  for (let i = 0; i < count; i++) {
    const v = r[p++];
    if (v === undefined || v < 0) break;
    const code = v % 8;
    const a = (v - code) / 8;
    let b = 0;
    if (code === ADMITTED) {
      const n = r[p++];
      if (n === undefined) break;
      b = n;
    }
    out[i] = { code, a, b, head };
  }
  if (p !== r.length || out[count - 1] === undefined) {
    throw replyError("queue/step", r, `${count} operations' results`);
  }
  return out;
}

const REDEEM_REASONS: Readonly<Record<number, PassRejection>> = Object.freeze({ 1: "EXPIRED", 2: "USED" });
const REDEEM = defineScript("queue/redeem-pass", (r): "OK" | PassRejection => {
  if (r === 0) return "OK";
  const reason = typeof r === "number" ? REDEEM_REASONS[r] : undefined;
  if (reason === undefined) throw replyError("queue/redeem-pass", r, "0, 1 or 2");
  return reason;
});

// The CSPRNG read in blocks: one randomBytes call costs about as much as a whole join otherwise.
let pool = Buffer.alloc(0);
let poolAt = 0;

/** A uniform 53-bit integer from the CSPRNG, as decimal (the script divides it by 2^53). */
function draw(): string {
  if (poolAt + 8 > pool.length) {
    pool = randomBytes(8 * 512);
    poolAt = 0;
  }
  const hi = pool.readUInt32BE(poolAt);
  const lo = pool.readUInt32BE(poolAt + 4);
  poolAt += 8;
  return String(hi * 2 ** 21 + (lo >>> 11));
}

/**
 * A fair waiting room on Redis, in the manner of Queue-it and Cloudflare Waiting Room. Users who `join`
 * before `opensAt` are put in a uniformly random order at the opening (each gets a place drawn from the
 * CSPRNG, kept secret until the opening), so arriving early by script gives no edge; later joins queue first
 * come, first served. A re-join keeps the place. Once open, the head of the line is admitted at
 * `admitPerSecond` (a token bucket with `burst`) and/or while fewer than `maxActive` passes are out, decided
 * on Redis `TIME` inside the join and status scripts themselves: no background process, no application
 * clock. An admitted user's `status` carries a signed pass bound to the room and the user, valid for
 * `passTtlMs`, spendable once (`redeemPass`, or `SaleGate` with `waitingRoom`).
 *
 * @example
 * ```ts
 * import { WaitingRoom } from "flash-sale-kit/queue";
 *
 * const room = new WaitingRoom(redis, {
 *   roomId: "double-11",
 *   secret: process.env.ROOM_SECRET!,
 *   opensAt: Date.parse("2026-11-11T00:00:00+08:00"),
 *   admitPerSecond: 50,
 *   maxActive: 500,
 * });
 * const j = await room.join(session.userId); // { state: "WAITING", ticket, position, estimatedWaitMs }
 * // the page polls:
 * const s = await room.status(j.ticket, { userId: session.userId });
 * if (s.state === "ADMITTED") reply.send({ pass: s.pass }); // then the buy step spends it
 * ```
 */
export class WaitingRoom {
  /** The room's id. */
  readonly roomId: string;
  /** Epoch ms the room opens (Redis time). */
  readonly opensAt: number;
  /** Admissions per second, or `undefined` for none. */
  readonly admitPerSecond: number | undefined;
  /** The bucket's capacity (admissions at once). */
  readonly burst: number;
  /** The cap on active passes, or `undefined` for none. */
  readonly maxActive: number | undefined;
  /** How long a pass lives after its admission (ms). */
  readonly passTtlMs: number;
  readonly #keys: WaitingRoomKeys;
  readonly #keyList: readonly string[];
  readonly #signer: Signer;
  readonly #config: readonly (string | number)[];
  readonly #batcher: TickBatcher<number, Op, OpReply> | undefined;
  /** Step calls sent and not answered yet. */
  readonly #inFlight = new Set<Promise<unknown>>();
  /**
   * Whether the last step reply found the room open (by Redis time): joins then go without a draw, which
   * only a join before the opening uses. Should Redis time say otherwise (a failover to a node whose clock
   * is behind), the script sends such a join back and it goes again with one.
   */
  #open: boolean;
  /**
   * Tickets verified lately → their user: a page polls with the same ticket every few seconds, and a ticket's
   * verdict never changes (it carries no time), so the HMAC is checked once per ticket and process.
   */
  readonly #verified = new Map<string, string>();

  constructor(
    private readonly redis: RedisClient,
    options: WaitingRoomOptions,
  ) {
    validateOptions("options", options, { required: true, known: KNOWN });
    validateRedisClient("redis", redis);
    validateId("roomId", options.roomId);
    const prefix = resolvePrefix(options.prefix);
    this.#signer = new Signer(options.secret, `${prefix}:${options.roomId}`);
    this.opensAt = options.opensAt ?? 0;
    validateInt("opensAt", this.opensAt, { min: 0, max: 8_640_000_000_000_000 });
    const rate = options.admitPerSecond;
    if (
      rate !== undefined &&
      (typeof rate !== "number" || !Number.isFinite(rate) || rate <= 0 || rate > MAX_RATE)
    ) {
      throw new InvalidArgumentError("admitPerSecond", `must be a number above 0 and at most ${MAX_RATE}`);
    }
    if (options.maxActive !== undefined)
      validateInt("maxActive", options.maxActive, { min: 1, max: MAX_RATE });
    if (rate === undefined && options.maxActive === undefined) {
      throw new InvalidArgumentError("options", "must set admitPerSecond, maxActive or both");
    }
    if (options.burst !== undefined && rate === undefined) {
      throw new InvalidArgumentError("burst", "is the admission rate's burst: set admitPerSecond too");
    }
    this.burst = options.burst ?? Math.max(1, Math.ceil(rate ?? 1));
    validateInt("burst", this.burst, { min: 1, max: MAX_RATE });
    this.passTtlMs = options.passTtlMs ?? 120_000;
    validateInt("passTtlMs", this.passTtlMs, { min: 1_000, max: 24 * 3_600_000 });
    if (options.batch !== undefined && typeof options.batch !== "boolean") {
      throw new InvalidArgumentError("batch", "must be a boolean");
    }
    this.roomId = options.roomId;
    this.admitPerSecond = rate;
    this.maxActive = options.maxActive;
    const k = entityKeys(prefix, options.roomId, "roomId");
    this.#keys = {
      meta: k.key("wr"),
      waiting: k.key("wr:q"),
      admitted: k.key("wr:adm"),
      numbers: k.key("wr:num"),
    };
    this.#keyList = [this.#keys.meta, this.#keys.waiting, this.#keys.admitted, this.#keys.numbers];
    this.#config = [this.opensAt, rate ?? 0, this.burst, this.maxActive ?? 0, this.passTtlMs];
    this.#open = this.opensAt === 0;
    this.#batcher =
      options.batch === false
        ? undefined
        : new TickBatcher<number, Op, OpReply>((_g, batch) => this.#send(batch), MAX_BATCH);
  }

  /**
   * The room's Redis keys (all under the hash tag `{<prefix>:<roomId>}`).
   *
   * @example
   * ```ts
   * room.keys().waiting; // "{fsk:double-11}:wr:q"
   * ```
   */
  keys(): WaitingRoomKeys {
    return this.#keys;
  }

  #send(batch: Pending<Op, OpReply>[]): Promise<void> {
    // A tick's batch of 64 to 255 goes as two script calls, back to back (Redis runs them in that order):
    // Redis runs the first while this process encodes the second, and this process decodes the first reply
    // (and its callers make their next calls) while Redis runs the second, instead of each waiting for the
    // other. Full batches (256) need not: several are in flight already.
    if (batch.length < SPLIT_AT || batch.length >= MAX_BATCH) return this.#sendOne(batch, 0, batch.length);
    const half = batch.length >> 1;
    const first = this.#sendOne(batch, 0, half);
    const second = this.#sendOne(batch, half, batch.length);
    return Promise.all([first, second]).then(() => undefined);
  }

  async #sendOne(batch: Pending<Op, OpReply>[], from: number, to: number): Promise<void> {
    // One argument for the whole batch (see step.lua): ioredis and Redis handle each argument on its own.
    let packed = "";
    for (let i = from; i < to; i++) packed += `${batch[i]!.item.kind} ${batch[i]!.item.userId} `;
    const ops = opsOf(await this.#call([...this.#config, packed]), to - from);
    for (let i = from; i < to; i++) batch[i]!.resolve(ops[i - from]!);
  }

  #step(op: Op): Promise<OpReply> {
    if (this.#batcher !== undefined) return this.#batcher.submit(0, op);
    return this.#call([...this.#config, `${op.kind} ${op.userId} `]).then((r) => opsOf(r, 1)[0]!);
  }

  /**
   * Sends a step call, tracked until answered, so that pause, resume, drain and clear run after every step
   * call made before them, even one that Redis answered NOSCRIPT and that goes out again as EVAL a round
   * trip later.
   */
  #call(args: readonly (string | number)[]): Promise<number[]> {
    const p = STEP.run(this.redis, this.#keyList, args).then((r) => {
      this.#open = r[0]! >= this.opensAt;
      return r;
    });
    this.#inFlight.add(p);
    const done = () => this.#inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  #standing(userId: string, ticket: string, o: OpReply): JoinResult | StatusResult {
    switch (o.code) {
      case WAITING: {
        const est = this.#estimate(o.a, o.head);
        const { waiting, paused } = o.head;
        return est === undefined
          ? { state: "WAITING", ticket, position: o.a, waiting, paused }
          : { state: "WAITING", ticket, position: o.a, waiting, paused, estimatedWaitMs: est };
      }
      case ADMITTED:
        return {
          state: "ADMITTED",
          ticket,
          pass: this.#signer.sign("p1", { u: userId, n: o.b, e: o.a }),
          expiresAt: o.a,
          admission: o.b,
        };
      case 3:
        return {
          state: "BEFORE_OPENING",
          ticket,
          waiting: o.a,
          opensInMs: Math.max(0, this.opensAt - o.head.now),
        };
      case 4:
        return { state: "NOT_QUEUED" };
      case 5:
        return { state: "CLOSED" };
      default:
        throw replyError("queue/step", o.code, "a state code from 1 to 5");
    }
  }

  #estimate(position: number, head: Head): number | undefined {
    if (head.paused) return undefined;
    let ms = 0;
    if (this.admitPerSecond !== undefined) {
      ms = Math.max(ms, (Math.max(0, position - head.tokens) / this.admitPerSecond) * 1000);
    }
    if (this.maxActive !== undefined) {
      const free = Math.max(0, this.maxActive - head.active);
      ms = Math.max(ms, Math.ceil(Math.max(0, position - free) / this.maxActive) * this.passTtlMs);
    }
    return Math.ceil(ms);
  }

  /**
   * Joins the room, or finds the user's place when they are in it already (a re-join keeps the place and
   * the ticket stays valid). Before the opening the place is drawn at random among the early joiners; after
   * it, the user goes to the back of the line, and straight in when the line is empty and admissions are
   * free. A user whose pass was spent or expired joins again at the back. While the room drains, new users
   * are refused (`CLOSED`) and nothing is written.
   *
   * @example
   * ```ts
   * const j = await room.join("u42");
   * if (j.state === "WAITING") console.log(`you are number ${j.position}, about ${j.estimatedWaitMs} ms`);
   * ```
   */
  async join(userId: string): Promise<JoinResult> {
    validateId("userId", userId);
    const ticket = this.#signer.ticket(userId);
    let o = await this.#step({ kind: this.#open ? "j" : `j${draw()}`, userId });
    // Sent without a draw, but Redis time says the room is not open yet: again, with one.
    while (o.code === NEEDS_DRAW) o = await this.#step({ kind: `j${draw()}`, userId });
    return this.#standing(userId, ticket, o) as JoinResult;
  }

  /**
   * Where the ticket's user stands: the place and an estimate, or, once admitted, the pass. Admissions that
   * are due are made by this call (on Redis time). A forged or tampered ticket, or one of another room or
   * (with `expected.userId`) another user, is refused as data, and nothing is read or written.
   *
   * @example
   * ```ts
   * const s = await room.status(req.cookies.ticket, { userId: session.userId });
   * if (s.state === "ADMITTED") return reply.send({ pass: s.pass, expiresAt: s.expiresAt });
   * if (s.state === "NOT_QUEUED") await room.join(session.userId);
   * ```
   */
  async status(ticket: string, expected: { readonly userId?: string } = {}): Promise<StatusResult> {
    validateOptions("expected", expected, { known: ["userId"] });
    if (expected.userId !== undefined) validateId("expected.userId", expected.userId);
    let userId = typeof ticket === "string" ? this.#verified.get(ticket) : undefined;
    if (userId === undefined) {
      const opened = this.#signer.open("t1", ticket);
      if (opened === "INVALID" || opened === "WRONG_ROOM") return { state: "REFUSED", reason: opened };
      const u = opened.u;
      if (typeof u !== "string" || !isId(u)) return { state: "REFUSED", reason: "INVALID" };
      userId = u;
      if (this.#verified.size >= VERIFIED_MAX) this.#verified.delete(this.#verified.keys().next().value!);
      this.#verified.set(ticket, userId);
    }
    if (expected.userId !== undefined && expected.userId !== userId)
      return { state: "REFUSED", reason: "WRONG_USER" };
    return this.#standing(userId, ticket, await this.#step({ kind: "s", userId })) as StatusResult;
  }

  /**
   * Spends a pass: it must verify, be of this room and of `expected.userId`, be unexpired (Redis time) and be
   * the user's current admission, unspent. A pass works exactly once, on any server; spending it frees its
   * place among the `maxActive`. Refusals are data and write nothing.
   *
   * @example
   * ```ts
   * const r = await room.redeemPass(req.body.pass, { userId: session.userId });
   * if (!r.ok) return reply.code(403).send({ reason: r.reason }); // USED, EXPIRED, WRONG_USER, …
   * ```
   */
  async redeemPass(pass: string, expected: { readonly userId: string }): Promise<PassResult> {
    validateOptions("expected", expected, { required: true, known: ["userId"] });
    validateId("expected.userId", expected.userId);
    const p = this.#signer.open("p1", pass);
    if (p === "INVALID" || p === "WRONG_ROOM") return { ok: false, reason: p };
    const { u, n, e } = p;
    if (
      typeof u !== "string" ||
      !isId(u) ||
      typeof n !== "number" ||
      !Number.isSafeInteger(n) ||
      n < 1 ||
      typeof e !== "number" ||
      !Number.isSafeInteger(e)
    ) {
      return { ok: false, reason: "INVALID" };
    }
    if (u !== expected.userId) return { ok: false, reason: "WRONG_USER" };
    const r = await REDEEM.run(this.redis, [this.#keys.admitted, this.#keys.numbers], [u, n, e]);
    return r === "OK" ? { ok: true, expiresAt: e, admission: n } : { ok: false, reason: r };
  }

  /**
   * The room now (making the admissions that are due, as a status read does).
   *
   * @example
   * ```ts
   * const { waiting, active, admitted } = await room.stats(); // for a dashboard
   * ```
   */
  async stats(): Promise<RoomStats> {
    const h = headOf(await this.#call(this.#config));
    return {
      now: h.now,
      open: h.now >= this.opensAt,
      paused: h.paused,
      draining: h.draining,
      waiting: h.waiting,
      active: h.active,
      admitted: h.admitted,
    };
  }

  /**
   * Stops admitting (joins and status reads go on; places stay). The bucket does not save up past `burst`
   * meanwhile.
   *
   * @example
   * ```ts
   * await room.pause(); // the back end is struggling
   * ```
   */
  async pause(): Promise<void> {
    await this.#command(() => this.redis.hset(this.#keys.meta, "paused", "1"));
  }

  /**
   * Admits again after `pause`.
   *
   * @example
   * ```ts
   * await room.resume();
   * ```
   */
  async resume(): Promise<void> {
    await this.#command(() => this.redis.hdel(this.#keys.meta, "paused"));
  }

  /**
   * Takes no new joins from now on (they get `CLOSED`); those in line are still admitted as usual, so the
   * line runs empty. `undrain` takes joins again.
   *
   * @example
   * ```ts
   * await room.drain(); // the stock is nearly gone: serve who waits, let nobody else in line
   * ```
   */
  async drain(): Promise<void> {
    await this.#command(() => this.redis.hset(this.#keys.meta, "draining", "1"));
  }

  /**
   * Takes joins again after `drain`.
   *
   * @example
   * ```ts
   * await room.undrain();
   * ```
   */
  async undrain(): Promise<void> {
    await this.#command(() => this.redis.hdel(this.#keys.meta, "draining"));
  }

  /**
   * Deletes the room: the line, the admissions and the passes (every pass is refused from now on), the
   * counters and the flags.
   *
   * @example
   * ```ts
   * await room.clear(); // after the sale
   * ```
   */
  async clear(): Promise<void> {
    await this.#command(() => this.redis.del(...this.#keyList));
  }

  async #command(fn: () => Promise<unknown>): Promise<void> {
    // Calls queued in this tick leave at its end (batching): let them go first, as the order of calls says.
    if (this.#batcher !== undefined) await new Promise((resolve) => setImmediate(resolve));
    if (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
    try {
      await fn();
    } catch (err) {
      throw toRedisError(err);
    }
  }
}

function headOf(r: readonly number[]): Head {
  return {
    now: r[0]!,
    paused: r[1] === 1,
    draining: r[2] === 1,
    tokens: r[3]!,
    waiting: r[4]!,
    active: r[5]!,
    admitted: r[6]!,
  };
}

function isId(v: string): boolean {
  try {
    validateId("id", v);
    return true;
  } catch {
    return false;
  }
}
