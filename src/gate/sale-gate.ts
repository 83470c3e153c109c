// SaleGate: who may buy, and when. The sale window on Redis time, an eligibility predicate, a CAPTCHA, and
// on success a single-use purchase token (the hidden purchase path) that the buy endpoint redeems.
import { InvalidArgumentError } from "../errors.js";
import { RedisClock } from "../internal/clock.js";
import { redisTimeMs } from "../internal/time.js";
import type { RedisClient } from "../internal/scripts.js";
import {
  checkKnownKeys,
  validateId,
  validateOptionalInt,
  validateInt,
  validateOptions,
} from "../internal/validate.js";
import type { CaptchaResponse, CaptchaVerifier } from "./captcha.js";
import type { PurchaseTokens, RedeemResult, TokenSubject, VerifyResult } from "./purchase-tokens.js";
import { traced } from "../internal/trace.js";
import { channels, type AdmitTrace } from "../metrics/channels.js";

const ADMIT = traced<AdmitTrace>(channels.admit);

/** Whom the eligibility predicate judges. */
export interface GateSubject<Ctx> {
  readonly saleId: string;
  readonly sku: string;
  readonly userId: string;
  /** Whatever the caller passed as `context` (the session, the user record with its level…). */
  readonly context: Ctx;
}

/**
 * Decides whether a user may take part: `true` to admit, `false` (or a string naming why) to refuse.
 *
 * @example
 * ```ts
 * // Members of level 3 or more, and only those who pre-registered:
 * const eligible: Eligibility<{ level: number; member: boolean }> = async ({ userId, context }) =>
 *   !context.member ? "NOT_A_MEMBER" : context.level < 3 ? "LEVEL_TOO_LOW" : await registered(userId);
 * ```
 */
export type Eligibility<Ctx> = (subject: GateSubject<Ctx>) => boolean | string | Promise<boolean | string>;

/**
 * What `SaleGate` needs of a waiting room: spending a pass once. A `WaitingRoom` of `flash-sale-kit/queue`
 * is one.
 *
 * @example
 * ```ts
 * const gate = new SaleGate(redis, { saleId, startsAt, tokens, waitingRoom: room });
 * ```
 */
export interface PassRedeemer {
  /** Spends `pass` for `expected.userId`: exactly once, before it expires; a refusal says why. */
  redeemPass(
    pass: string,
    expected: { readonly userId: string },
  ): Promise<{ readonly ok: true } | { readonly ok: false; readonly reason: string }>;
}

/** Options of `new SaleGate()`. */
export interface SaleGateOptions<Ctx> {
  /** The sale this gate guards; tokens are bound to it. */
  readonly saleId: string;
  /** Epoch ms the sale opens, judged by Redis `TIME` (never the application server's clock). */
  readonly startsAt: number;
  /** Epoch ms the sale closes (exclusive), judged by Redis `TIME`. Omitted: open-ended. */
  readonly endsAt?: number;
  /** Issues and redeems the purchase tokens. */
  readonly tokens: PurchaseTokens;
  /** Who may take part. Omitted: everyone. */
  readonly eligible?: Eligibility<Ctx>;
  /** The CAPTCHA to pass before a token is issued. Omitted: none. */
  readonly captcha?: CaptchaVerifier;
  /**
   * Require a waiting-room pass: `admit` takes the user's `pass` and spends it (signature, room, user,
   * expiry on Redis time, once) after every other check passed, just before the token is issued. Omitted:
   * no pass needed.
   */
  readonly waitingRoom?: PassRedeemer;
}

/** Arguments of `admit`. */
export interface AdmitRequest<Ctx> {
  readonly userId: string;
  readonly sku: string;
  /** The CAPTCHA response, when the gate has a verifier. */
  readonly captcha?: CaptchaResponse;
  /** Passed to the eligibility predicate as `context`. */
  readonly context?: Ctx;
  /** The client's address, passed to the CAPTCHA verifier (hosted CAPTCHAs take it). */
  readonly remoteIp?: string;
  /** The user's waiting-room pass, when the gate has a `waitingRoom`. */
  readonly pass?: string;
}

/** Why `admit` refused. Nothing was issued; a CAPTCHA challenge that was answered is spent. */
export type AdmitRejection =
  | "NOT_STARTED"
  | "ENDED"
  | "NOT_ELIGIBLE"
  | "CAPTCHA_REQUIRED"
  | "CAPTCHA_FAILED"
  | "PASS_REQUIRED"
  | "PASS_REFUSED";

/** The outcome of `admit`. */
export type AdmitResult =
  | {
      readonly ok: true;
      /** The purchase token: put it in the purchase path (`POST /buy/:token`). */
      readonly token: string;
      /** Epoch ms (Redis time) the token expires. */
      readonly expiresAt: number;
    }
  | {
      readonly ok: false;
      readonly reason: AdmitRejection;
      /** For `NOT_STARTED`: ms until the sale opens, by Redis time (to re-sync a countdown). */
      readonly startsInMs?: number;
      /**
       * For `NOT_ELIGIBLE`: the string the predicate returned, if any; for `PASS_REFUSED`: why the pass was
       * refused (`USED`, `EXPIRED`, `WRONG_USER`, `INVALID`…).
       */
      readonly detail?: string;
    };

/** Where the sale stands, by Redis time. */
export interface GateStatus {
  readonly state: "NOT_STARTED" | "OPEN" | "ENDED";
  /**
   * Redis time (epoch ms) of this reading: the clock a countdown page should follow. From the process's
   * Redis-synced clock when it has a fresh sample, else read from Redis.
   */
  readonly now: number;
  /** How far `now` may be from the Redis server's clock, in ms (0 when read from Redis just now). */
  readonly errorMs: number;
  readonly startsAt: number;
  readonly endsAt?: number;
  /** Ms until the sale opens; 0 once open. */
  readonly startsInMs: number;
}

/**
 * The gate in front of a sale's buy endpoint. `admit` checks, in order, the sale window (Redis time, so
 * a server whose clock runs ahead cannot open early), eligibility, and the CAPTCHA, and then issues a
 * single-use purchase token bound to the user, the SKU and the sale. `redeem` spends that token on the buy
 * request, also refusing it once the sale has ended.
 *
 * The window is judged on the process's Redis-synced clock (sampled `TIME`, an offset and an error bound,
 * running on the monotonic clock): a call clearly before the start, clearly after the end, or clearly
 * inside the window is decided in process, with no round trip; one within the error bound of a boundary
 * (or before the first sample) reads Redis `TIME`. The application server's wall clock (`Date.now`) never
 * decides.
 *
 * @example
 * ```ts
 * import { PurchaseTokens, RedisCaptcha, SaleGate } from "flash-sale-kit/gate";
 *
 * const captcha = new RedisCaptcha(redis);
 * const gate = new SaleGate<{ level: number }>(redis, {
 *   saleId: "double-11",
 *   startsAt: Date.parse("2026-11-11T00:00:00+08:00"),
 *   tokens: new PurchaseTokens(redis, { secret: process.env.PURCHASE_SECRET! }),
 *   captcha,
 *   eligible: ({ context }) => context.level >= 2 || "LEVEL_TOO_LOW",
 * });
 *
 * // GET /sale/captcha  → captcha.create({ userId })
 * // POST /sale/admit   → the hidden purchase path
 * const a = await gate.admit({ userId, sku: "iphone-17", captcha: { id, answer }, context: { level } });
 * if (a.ok) reply.send({ buyUrl: `/buy/${a.token}` });
 * // POST /buy/:token
 * const r = await gate.redeem(token, { userId, sku: "iphone-17" });
 * if (r.ok) await inventory.reserve("iphone-17", { userId });
 * ```
 */
export class SaleGate<Ctx = undefined> {
  /** The sale this gate guards. */
  readonly saleId: string;
  /** Epoch ms the sale opens (Redis time). */
  readonly startsAt: number;
  /** Epoch ms the sale closes, if it does. */
  readonly endsAt: number | undefined;
  readonly #tokens: PurchaseTokens;
  /** The sale's end for the token checks (`saleEndsAt`), made once. */
  readonly #tokenOptions: { readonly saleEndsAt?: number };
  readonly #eligible: Eligibility<Ctx> | undefined;
  readonly #captcha: CaptchaVerifier | undefined;
  readonly #clock: RedisClock;
  readonly #room: PassRedeemer | undefined;

  constructor(
    private readonly redis: RedisClient,
    options: SaleGateOptions<Ctx>,
  ) {
    validateOptions("options", options, {
      required: true,
      known: ["saleId", "startsAt", "endsAt", "tokens", "eligible", "captcha", "waitingRoom"],
    });
    if (redis === null || typeof redis !== "object" || typeof redis.defineCommand !== "function") {
      throw new InvalidArgumentError("redis", "must be an ioredis Redis or Cluster client");
    }
    validateId("saleId", options.saleId);
    validateInt("startsAt", options.startsAt, { min: 0 });
    validateOptionalInt("endsAt", options.endsAt, { min: 0 });
    if (options.endsAt !== undefined && options.endsAt <= options.startsAt) {
      throw new InvalidArgumentError("endsAt", "must be later than startsAt");
    }
    if (typeof options.tokens?.redeem !== "function") {
      throw new InvalidArgumentError("tokens", "must be a PurchaseTokens instance");
    }
    if (options.eligible !== undefined && typeof options.eligible !== "function") {
      throw new InvalidArgumentError("eligible", "must be a function");
    }
    if (options.captcha !== undefined && typeof options.captcha?.verify !== "function") {
      throw new InvalidArgumentError("captcha", "must have a verify(response, subject) method");
    }
    if (options.waitingRoom !== undefined && typeof options.waitingRoom?.redeemPass !== "function") {
      throw new InvalidArgumentError("waitingRoom", "must have a redeemPass(pass, { userId }) method");
    }
    this.saleId = options.saleId;
    this.startsAt = options.startsAt;
    this.endsAt = options.endsAt;
    this.#tokens = options.tokens;
    this.#tokenOptions = this.endsAt === undefined ? {} : { saleEndsAt: this.endsAt };
    this.#eligible = options.eligible;
    this.#captcha = options.captcha;
    this.#clock = RedisClock.for(redis);
    this.#room = options.waitingRoom;
  }

  #stateAt(now: number): GateStatus["state"] {
    if (now < this.startsAt) return "NOT_STARTED";
    if (this.endsAt !== undefined && now >= this.endsAt) return "ENDED";
    return "OPEN";
  }

  /**
   * Redis time for a window decision: the clock's reading when it puts every boundary clearly on one side
   * (the state is then the same for every instant within the error bound), else a `TIME` read.
   */
  async #now(): Promise<{ readonly now: number; readonly errorMs: number }> {
    const r = this.#clock.read();
    if (r !== undefined) {
      // Every boundary clearly on one side of [ms - errorMs, ms + errorMs]: the state is the same at every
      // instant of the interval, so at the true Redis time.
      const clear = (b: number | undefined) =>
        b === undefined || r.ms + r.errorMs < b || r.ms - r.errorMs >= b;
      if (clear(this.startsAt) && clear(this.endsAt)) {
        return { now: Math.floor(r.ms), errorMs: Math.ceil(r.errorMs) };
      }
    }
    return { now: await redisTimeMs(this.redis), errorMs: 0 };
  }

  /**
   * Where the sale stands by Redis time, with that time, for a countdown that follows the server. Answered
   * in process unless the clock is unsure (no sample yet, or within its error bound of a boundary).
   *
   * @example
   * ```ts
   * const s = await gate.status(); // { state: "NOT_STARTED", now, errorMs, startsAt, startsInMs: 4200 }
   * ```
   */
  async status(): Promise<GateStatus> {
    const { now, errorMs } = await this.#now();
    return {
      state: this.#stateAt(now),
      now,
      errorMs,
      startsAt: this.startsAt,
      ...(this.endsAt !== undefined && { endsAt: this.endsAt }),
      startsInMs: Math.max(0, this.startsAt - now),
    };
  }

  /**
   * Lets a user through to the buy step: window (Redis time), eligibility, CAPTCHA, in that order, then,
   * with a `waitingRoom`, the user's pass is spent, and a purchase token issued. The CAPTCHA is judged (and
   * its challenge spent) only once the window and eligibility passed; the pass only once everything else
   * passed (a missing pass is refused first, as `PASS_REQUIRED`). Before the start and after the end this
   * costs no Redis command once the process clock has synced (see the class notes); inside the window only
   * the CAPTCHA's and the pass's.
   *
   * @example
   * ```ts
   * const a = await gate.admit({ userId: "u42", sku: "iphone-17", captcha: { id, answer: "12" } });
   * if (!a.ok && a.reason === "NOT_STARTED") showCountdown(a.startsInMs);
   * ```
   */
  admit(request: AdmitRequest<Ctx>): Promise<AdmitResult> {
    if (!ADMIT.active) return this.#admit(request);
    return ADMIT.trace(() => this.#admit(request), { gate: this.saleId });
  }

  async #admit(request: AdmitRequest<Ctx>): Promise<AdmitResult> {
    if (typeof request !== "object" || request === null) {
      throw new InvalidArgumentError("request", "must be an object with userId and sku");
    }
    checkKnownKeys("request", request, ["userId", "sku", "captcha", "context", "remoteIp", "pass"]);
    const { userId, sku } = request;
    validateId("userId", userId);
    validateId("sku", sku);
    let { now } = await this.#now();
    const state = this.#stateAt(now);
    if (state === "NOT_STARTED") return { ok: false, reason: "NOT_STARTED", startsInMs: this.startsAt - now };
    if (state === "ENDED") return { ok: false, reason: "ENDED" };
    if (this.#room !== undefined && (typeof request.pass !== "string" || request.pass === "")) {
      return { ok: false, reason: "PASS_REQUIRED" };
    }
    if (this.#eligible) {
      const verdict = await this.#eligible({
        saleId: this.saleId,
        sku,
        userId,
        context: request.context as Ctx,
      });
      if (verdict !== true) {
        return { ok: false, reason: "NOT_ELIGIBLE", ...(typeof verdict === "string" && { detail: verdict }) };
      }
      // The predicate may have taken a while (a database, a service): the sale may have ended meanwhile,
      // and then the CAPTCHA stays unspent and no token is issued that could only be refused.
      ({ now } = await this.#now());
      if (this.#stateAt(now) === "ENDED") return { ok: false, reason: "ENDED" };
    }
    if (this.#captcha) {
      if (request.captcha === undefined) return { ok: false, reason: "CAPTCHA_REQUIRED" };
      const passed = await this.#captcha.verify(request.captcha, {
        userId,
        ...(request.remoteIp !== undefined && { remoteIp: request.remoteIp }),
      });
      if (passed !== true) return { ok: false, reason: "CAPTCHA_FAILED" };
      // A hosted CAPTCHA is a call to another service: the sale may have ended meanwhile, and then the pass
      // stays unspent and no token is issued that could only be refused.
      ({ now } = await this.#now());
      if (this.#stateAt(now) === "ENDED") return { ok: false, reason: "ENDED" };
    }
    if (this.#room !== undefined) {
      // Spent last: a user refused by an earlier check keeps the pass for another try.
      const spent = await this.#room.redeemPass(request.pass!, { userId });
      if (!spent.ok) return { ok: false, reason: "PASS_REFUSED", detail: spent.reason };
    }
    const { token, expiresAt } = this.#tokens.issueAt({ saleId: this.saleId, sku, userId }, now);
    return { ok: true, token, expiresAt };
  }

  /** The token subject `redeem` and `verify` check a token against: this sale, and the caller's user and SKU. */
  #subject(expected: { readonly userId: string; readonly sku: string }): TokenSubject {
    validateOptions("expected", expected, { required: true, known: ["userId", "sku"] });
    return { saleId: this.saleId, sku: expected.sku, userId: expected.userId };
  }

  /**
   * Spends a purchase token of this sale for this user and SKU: exactly once, before it expires and before
   * the sale ends (Redis time).
   *
   * @example
   * ```ts
   * const r = await gate.redeem(req.params.token, { userId: session.userId, sku: "iphone-17" });
   * if (!r.ok) return reply.code(403).send({ reason: r.reason });
   * ```
   */
  async redeem(
    token: string,
    expected: { readonly userId: string; readonly sku: string },
  ): Promise<RedeemResult> {
    return this.#tokens.redeem(token, this.#subject(expected), this.#tokenOptions);
  }

  /**
   * Checks a purchase token of this sale for this user and SKU without spending it: as `redeem` (signature,
   * binding, expiry and the sale's end, by Redis time) but writing nothing, and answered in process once the
   * Redis-synced clock has a sample. Single use then rests on the reservation: reserve under an id made from
   * the token's `nonce` (see `PurchaseTokens.verify`), so the token buys at most once, one Redis call fewer
   * per buy, and a refused buy leaves the token unspent.
   *
   * @example
   * ```ts
   * const v = await gate.verify(req.body.token, { userId: session.userId, sku: "iphone-17" });
   * if (!v.ok) return reply.code(403).send({ reason: v.reason });
   * const r = await inventory.reserve("iphone-17", { userId: session.userId, reservationId: `t-${v.nonce}` });
   * ```
   */
  async verify(
    token: string,
    expected: { readonly userId: string; readonly sku: string },
  ): Promise<VerifyResult> {
    return this.#tokens.verify(token, this.#subject(expected), this.#tokenOptions);
  }
}
