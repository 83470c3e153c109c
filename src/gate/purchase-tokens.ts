// PurchaseTokens: HMAC-signed, short-lived, single-use tokens bound to a sale, a SKU and a user: the hidden,
// per-user purchase path a buy endpoint requires.
import { randomBytes } from "node:crypto";
import { InvalidArgumentError } from "../errors.js";
import { RedisClock } from "../internal/clock.js";
import { entityKeys, resolvePrefix } from "../internal/keys.js";
import { TickBatcher, type Pending } from "../internal/batch.js";
import { defineScript, replyError, type RedisClient } from "../internal/scripts.js";
import { isCluster } from "../internal/slot.js";
import { seal, secretsOf, unseal } from "../internal/signed.js";
import { redisTimeMs } from "../internal/time.js";
import {
  checkKnownKeys,
  validateId,
  validateInt,
  validateOptionalInt,
  validateOptions,
} from "../internal/validate.js";

/** A signing secret: at least 32 bytes (a string counts its UTF-8 bytes). */
export type TokenSecret = string | Buffer;

/** Options of `new PurchaseTokens()`. */
export interface PurchaseTokensOptions {
  /**
   * The HMAC-SHA256 key, at least 32 bytes; the same on every server. A list rotates keys: tokens are signed
   * with the first and accepted when any of them verifies.
   */
  readonly secret: TokenSecret | readonly TokenSecret[];
  /**
   * How long a token stays valid, judged by Redis time.
   * @default 60000
   */
  readonly ttlMs?: number;
  /**
   * First part of the used-marker keys' hash tag: `{<prefix>:<nonce>}:ptok`.
   * @default "fsk"
   */
  readonly prefix?: string;
  /**
   * Redeems that arrive together share one script call on standalone Redis (or Sentinel): those of one tick,
   * and, while a call is out, those that arrive before it comes back. Each token is still judged on its own,
   * in order. `false` sends one call per redeem. On a Cluster every token's key has a slot of its own, so
   * redeems go one by one whatever this says.
   * @default true
   */
  readonly batch?: boolean;
}

/** What a token is bound to. */
export interface TokenSubject {
  readonly saleId: string;
  readonly sku: string;
  readonly userId: string;
}

/** A token as issued. */
export interface IssuedToken {
  /** The token: URL-safe (base64url and dots), to put in the purchase path or a header. */
  readonly token: string;
  /** Epoch ms (Redis time) after which it is refused. */
  readonly expiresAt: number;
}

/** Why a token was refused. Refusals write nothing. */
export type TokenRejection =
  /** Not a token, or its signature does not verify (tampered, or signed with another secret). */
  | "INVALID"
  /** Signed for another sale. */
  | "WRONG_SALE"
  /** Signed for another user: a token passed on or stolen. */
  | "WRONG_USER"
  /** Signed for another SKU. */
  | "WRONG_SKU"
  /** Past its `expiresAt` by Redis time. */
  | "EXPIRED"
  /** Already redeemed once. */
  | "USED"
  /** The sale's window closed (only when a sale end is given, as `SaleGate.redeem` does). */
  | "SALE_ENDED";

/** The outcome of `redeem`. */
export type RedeemResult =
  { readonly ok: true; readonly expiresAt: number } | { readonly ok: false; readonly reason: TokenRejection };

/**
 * The outcome of `verify`: a token that passed every check but single use, with its own random id; or why
 * it was refused (never `USED`: `verify` does not know, and does not record, whether a token was used).
 */
export type VerifyResult =
  | {
      readonly ok: true;
      readonly expiresAt: number;
      /**
       * The token's random id (16 bytes, base64url): unique to this token, the same on every server. Reserve
       * under an id made from it (`t-${nonce}`) and the reservation's idempotency spends the token: a second
       * buy with it replays the first reservation instead of making another.
       */
      readonly nonce: string;
    }
  | { readonly ok: false; readonly reason: Exclude<TokenRejection, "USED"> };

interface Payload {
  readonly s: string;
  readonly k: string;
  readonly u: string;
  readonly e: number;
  readonly n: string;
}

const VERSION = "v1";
const REDEEM_REASONS: Readonly<Record<number, TokenRejection>> = Object.freeze({
  1: "EXPIRED",
  2: "USED",
  3: "SALE_ENDED",
});

/** What spending a token found (lua/gate/redeem-token.lua): 0 redeemed, else the reason. */
const REDEEM = defineScript("gate/redeem-token", (r): "OK" | TokenRejection => {
  if (r === 0) return "OK";
  const reason = typeof r === "number" ? REDEEM_REASONS[r] : undefined;
  if (reason === undefined) throw replyError("gate/redeem-token", r, "0, 1, 2 or 3");
  return reason;
});

/** Spends a batch of tokens (lua/gate/redeem-tokens.lua): one code per token, as REDEEM. */
const REDEEM_MANY = defineScript("gate/redeem-tokens", (r): number[] => {
  if (!Array.isArray(r) || !r.every((c) => c === 0 || c === 1 || c === 2 || c === 3)) {
    throw replyError("gate/redeem-tokens", r, "an array of 0, 1, 2 or 3");
  }
  return r as number[];
});

/** The most tokens one batched call carries. */
const MAX_BATCH = 64;

/** One token to spend: its used-marker key, expiry and the sale's end ('' for none). */
interface SpendItem {
  readonly key: string;
  readonly expiresAt: number;
  readonly saleEndsAt: number | "";
}

/**
 * Single-use purchase tokens. `issue` signs `{ saleId, sku, userId, expiresAt, nonce }` with HMAC-SHA256
 * (no Redis write; one `TIME` read for the expiry); `redeem` checks the signature and the binding, then spends
 * the token in one Lua call: expiry by Redis time and `SET NX` on its nonce, so it works exactly once, on any
 * server, and a refused token changes nothing. Reused, tampered, expired, other-user and other-SKU tokens are
 * refused with a reason.
 *
 * The token is the hidden purchase path of a sale: the page learns it only after the gate (window,
 * eligibility, CAPTCHA) admitted the user, and the buy endpoint takes nothing else.
 *
 * @example
 * ```ts
 * import { PurchaseTokens } from "flash-sale-kit/gate";
 *
 * const tokens = new PurchaseTokens(redis, { secret: process.env.PURCHASE_SECRET!, ttlMs: 30_000 });
 * const { token } = await tokens.issue({ saleId: "s1", sku: "iphone-17", userId: "u42" });
 * // POST /buy/:token by the same user:
 * const r = await tokens.redeem(token, { saleId: "s1", sku: "iphone-17", userId: "u42" });
 * if (!r.ok) reply.code(403).send({ reason: r.reason }); // USED, EXPIRED, WRONG_USER, …
 * ```
 */
export class PurchaseTokens {
  readonly #secrets: Buffer[];
  readonly #prefix: string;
  readonly #batcher: TickBatcher<0, SpendItem, "OK" | TokenRejection> | undefined;
  readonly #clock: RedisClock;
  /** How long a token stays valid (ms). */
  readonly ttlMs: number;

  constructor(
    private readonly redis: RedisClient,
    options: PurchaseTokensOptions,
  ) {
    validateOptions("options", options, { required: true, known: ["secret", "ttlMs", "prefix", "batch"] });
    if (redis === null || typeof redis !== "object" || typeof redis.defineCommand !== "function") {
      throw new InvalidArgumentError("redis", "must be an ioredis Redis or Cluster client");
    }
    this.#secrets = secretsOf(options.secret);
    this.ttlMs = options.ttlMs ?? 60_000;
    validateInt("ttlMs", this.ttlMs, { min: 1, max: 24 * 3_600_000 });
    this.#prefix = resolvePrefix(options.prefix);
    if (options.batch !== undefined && typeof options.batch !== "boolean") {
      throw new InvalidArgumentError("batch", "must be a boolean");
    }
    this.#batcher =
      options.batch === false || isCluster(redis)
        ? undefined
        : new TickBatcher((_g, batch) => this.#spendMany(batch), MAX_BATCH, undefined, 1);
    this.#clock = RedisClock.for(redis);
  }

  /** Spends a batch of tokens in one call and settles each caller. */
  async #spendMany(batch: Pending<SpendItem, "OK" | TokenRejection>[]): Promise<void> {
    const args: (number | string)[] = [];
    for (const p of batch) args.push(p.item.expiresAt, p.item.saleEndsAt);
    const codes = await REDEEM_MANY.run(
      this.redis,
      batch.map((p) => p.item.key),
      args,
    );
    if (codes.length !== batch.length) {
      throw replyError("gate/redeem-tokens", codes, `${batch.length} codes`);
    }
    batch.forEach((p, i) => p.resolve(codes[i] === 0 ? "OK" : REDEEM_REASONS[codes[i]!]!));
  }

  /**
   * Issues a token for one user, SKU and sale, valid for `ttlMs` from now (Redis time).
   *
   * @example
   * ```ts
   * const { token, expiresAt } = await tokens.issue({ saleId: "s1", sku: "iphone-17", userId: "u42" });
   * ```
   */
  async issue(subject: TokenSubject): Promise<IssuedToken> {
    checkSubject(subject);
    return this.issueAt(subject, await redisTimeMs(this.redis));
  }

  /** Issues a token as of `nowMs` (a Redis time the caller already read). @internal */
  issueAt(subject: TokenSubject, nowMs: number): IssuedToken {
    checkSubject(subject);
    const expiresAt = nowMs + this.ttlMs;
    const payload: Payload = {
      s: subject.saleId,
      k: subject.sku,
      u: subject.userId,
      e: expiresAt,
      n: randomBytes(16).toString("base64url"),
    };
    return { token: seal(VERSION, payload, this.#secrets), expiresAt };
  }

  /** The verified payload of a token, or `undefined` when it is malformed or its signature is wrong. */
  #open(token: unknown): Payload | undefined {
    // Canonical: one accepted spelling per token, so its text names it (a caller may key on it, as on the nonce).
    const p = unseal(VERSION, token, this.#secrets, true) as Partial<Payload> | null | undefined;
    if (
      typeof p !== "object" ||
      p === null ||
      typeof p.s !== "string" ||
      typeof p.k !== "string" ||
      typeof p.u !== "string" ||
      typeof p.n !== "string" ||
      !/^[A-Za-z0-9_-]{16,64}$/.test(p.n) ||
      typeof p.e !== "number" ||
      !Number.isSafeInteger(p.e)
    ) {
      return undefined;
    }
    return p as Payload;
  }

  /**
   * What `redeem` and `verify` check first: their arguments (a bad one throws), then the token's signature
   * and its binding to exactly `expected`. The payload, or why the token is refused.
   */
  #bound(
    token: string,
    expected: TokenSubject,
    options: { readonly saleEndsAt?: number },
  ):
    Payload | { readonly ok: false; readonly reason: "INVALID" | "WRONG_SALE" | "WRONG_USER" | "WRONG_SKU" } {
    checkSubject(expected);
    validateOptions("options", options, { known: ["saleEndsAt"] });
    validateOptionalInt("saleEndsAt", options.saleEndsAt, { min: 0 });
    const p = this.#open(token);
    if (p === undefined) return { ok: false, reason: "INVALID" };
    if (p.s !== expected.saleId) return { ok: false, reason: "WRONG_SALE" };
    if (p.u !== expected.userId) return { ok: false, reason: "WRONG_USER" };
    if (p.k !== expected.sku) return { ok: false, reason: "WRONG_SKU" };
    return p;
  }

  /**
   * Spends a token: it must verify, be bound to exactly this sale, SKU and user, not be expired (Redis
   * time) and not be spent yet. A valid token works exactly once, across all servers.
   *
   * @example
   * ```ts
   * const r = await tokens.redeem(req.params.token, { saleId: "s1", sku, userId: session.userId });
   * if (r.ok) await inventory.reserve(sku, { userId: session.userId });
   * ```
   */
  async redeem(
    token: string,
    expected: TokenSubject,
    options: { readonly saleEndsAt?: number } = {},
  ): Promise<RedeemResult> {
    const p = this.#bound(token, expected, options);
    if ("reason" in p) return p;
    const key = entityKeys(this.#prefix, p.n, "nonce").key("ptok");
    const saleEndsAt = options.saleEndsAt ?? "";
    const reason =
      this.#batcher !== undefined
        ? await this.#batcher.submit(0, { key, expiresAt: p.e, saleEndsAt })
        : await REDEEM.run(this.redis, [key], [p.e, saleEndsAt]);
    return reason === "OK" ? { ok: true, expiresAt: p.e } : { ok: false, reason };
  }

  /**
   * Checks a token without spending it: the signature, the binding to exactly this sale, SKU and user, the
   * expiry and (with `saleEndsAt`) the sale's end, both by Redis time. Writes nothing, and costs no Redis
   * command once the process's Redis-synced clock has a sample (shared with `SaleGate`): only a token within
   * the clock's error bound (a few ms) of its expiry or the sale's end, or a call before the first sample,
   * reads `TIME`.
   *
   * Single use is then the caller's: reserve under an id made from `nonce`, and `Inventory.reserve`'s
   * idempotency makes the token buy at most once (a second buy with it replays the first reservation, and
   * one by another user is refused), with no Redis call for the token. Unlike `redeem`, a buy that is
   * refused (sold out, limit reached) leaves the token as it was: it consumes nothing.
   *
   * @example
   * ```ts
   * const v = await tokens.verify(req.body.token, { saleId: "s1", sku, userId: session.userId });
   * if (!v.ok) return reply.code(403).send({ reason: v.reason }); // EXPIRED, WRONG_USER, …
   * const r = await inventory.reserve(sku, { userId: session.userId, reservationId: `t-${v.nonce}` });
   * ```
   */
  async verify(
    token: string,
    expected: TokenSubject,
    options: { readonly saleEndsAt?: number } = {},
  ): Promise<VerifyResult> {
    const p = this.#bound(token, expected, options);
    if ("reason" in p) return p;
    const ends = options.saleEndsAt;
    // As lua/gate/redeem-token.lua judges: the sale's end first, then the expiry; a time at or after either
    // refuses. The clock decides when it is sure, else Redis TIME does.
    let endVerdict = ends === undefined ? "before" : this.#clock.compare(ends);
    let expiryVerdict = this.#clock.compare(p.e);
    if (endVerdict === "unsure" || expiryVerdict === "unsure") {
      const now = await redisTimeMs(this.redis);
      endVerdict = ends !== undefined && now >= ends ? "after" : "before";
      expiryVerdict = now >= p.e ? "after" : "before";
    }
    if (endVerdict === "after") return { ok: false, reason: "SALE_ENDED" };
    if (expiryVerdict === "after") return { ok: false, reason: "EXPIRED" };
    return { ok: true, expiresAt: p.e, nonce: p.n };
  }
}

function checkSubject(s: TokenSubject): void {
  if (typeof s !== "object" || s === null) {
    throw new InvalidArgumentError("subject", "must be an object with saleId, sku and userId");
  }
  checkKnownKeys("subject", s, ["saleId", "sku", "userId"]);
  validateId("saleId", s.saleId);
  validateId("sku", s.sku);
  validateId("userId", s.userId);
}
