// CAPTCHA for the sale gate: the CaptchaVerifier interface (plug in hCaptcha, Turnstile, reCAPTCHA…) and a
// built-in one whose challenges live in Redis with a TTL and can be answered once.
import { randomBytes, randomInt } from "node:crypto";
import { InvalidArgumentError, UnexpectedReplyError } from "../errors.js";
import { entityKeys, resolvePrefix } from "../internal/keys.js";
import { defineScript, replyError, toRedisError, type RedisClient } from "../internal/scripts.js";
import { validateId, validateInt, validateOptions } from "../internal/validate.js";
import { renderSvg } from "./svg.js";

/** What spending a challenge found (lua/gate/captcha-take.lua). */
type TakeCode = 0 | 1 | 2 | 3;
const TAKE = defineScript("gate/captcha-take", (r): TakeCode => {
  if (r === 0 || r === 1 || r === 2 || r === 3) return r;
  throw replyError("gate/captcha-take", r, "0, 1, 2 or 3");
});

/** What a client sends back for a CAPTCHA: the challenge id (for stored challenges) and the answer. */
export interface CaptchaResponse {
  /** The challenge id, for verifiers that issue challenges (the built-in one). */
  readonly id?: string;
  /** The answer typed, or the token a hosted CAPTCHA widget produced. */
  readonly answer: string;
}

/**
 * Anything that can judge a CAPTCHA response. `SaleGate` calls it once per admission attempt; return
 * `false` for a wrong, expired or reused response (throw only for faults).
 *
 * @example
 * ```ts
 * // Cloudflare Turnstile through its siteverify endpoint:
 * const turnstile: CaptchaVerifier = {
 *   async verify({ answer }, { remoteIp }) {
 *     const res = await fetch("https://challenges.cloudflare.com/turnstile/v0/siteverify", {
 *       method: "POST",
 *       body: new URLSearchParams({ secret: process.env.TURNSTILE_SECRET!, response: answer, remoteip: remoteIp ?? "" }),
 *     });
 *     return ((await res.json()) as { success: boolean }).success;
 *   },
 * };
 * ```
 */
export interface CaptchaVerifier {
  verify(response: CaptchaResponse, subject: CaptchaSubject): Promise<boolean>;
}

/** Who answers a CAPTCHA. */
export interface CaptchaSubject {
  readonly userId: string;
  /** The client's address, when the caller knows it (hosted CAPTCHAs take it). */
  readonly remoteIp?: string;
}

/** A challenge to show: its text never leaves the server, only the picture. */
export interface Challenge {
  /** The picture to show (an SVG document, e.g. to inline or to serve as `image/svg+xml`). */
  readonly svg: string;
  /** The expected answer. */
  readonly answer: string;
}

/** A challenge as `RedisCaptcha.create` hands it out. */
export interface IssuedChallenge {
  /** Send back with the answer. */
  readonly id: string;
  /** The picture. */
  readonly svg: string;
  /** How long the challenge can be answered (ms). */
  readonly ttlMs: number;
}

/** Options of `new RedisCaptcha()`. */
export interface RedisCaptchaOptions {
  /**
   * How long a challenge can be answered.
   * @default 120000
   */
  readonly ttlMs?: number;
  /**
   * Makes a challenge. The default is {@link mathChallenge}; pass your own to use another picture (for
   * instance `svg-captcha`: `() => { const c = create(); return { svg: c.data, answer: c.text }; }`).
   */
  readonly generate?: () => Challenge;
  /**
   * Compare answers ignoring case.
   * @default true
   */
  readonly ignoreCase?: boolean;
  /**
   * First part of the challenge keys' hash tag: `{<prefix>:<id>}:captcha`.
   * @default "fsk"
   */
  readonly prefix?: string;
}

const OPS = [
  { sym: "+", apply: (a: number, b: number) => a + b },
  { sym: "-", apply: (a: number, b: number) => a - b },
  { sym: "×", apply: (a: number, b: number) => a * b },
] as const;

/**
 * The default challenge: a small sum, difference or product (`7 + 5 = ?`) drawn as distorted strokes in an
 * SVG (the question is not in the document as text). It stops naive scripts and slows crowds of bots; for
 * determined ones plug a hosted CAPTCHA in through {@link CaptchaVerifier}.
 *
 * @example
 * ```ts
 * const { svg, answer } = mathChallenge(); // answer: "12"
 * ```
 */
export function mathChallenge(): Challenge {
  const op = OPS[randomInt(OPS.length)]!;
  let a = op.sym === "×" ? randomInt(2, 10) : randomInt(10, 50);
  let b = op.sym === "×" ? randomInt(2, 10) : randomInt(1, 10);
  if (op.sym === "-" && b > a) [a, b] = [b, a];
  return { svg: renderSvg(`${a}${op.sym}${b}=?`), answer: String(op.apply(a, b)) };
}

/**
 * The built-in CAPTCHA: `create` stores a challenge's answer in Redis with a TTL and returns an id and a
 * picture; `verify` spends the challenge in one Lua call (any attempt, right or wrong, deletes it), so each
 * challenge is answered at most once. A challenge created for a user can only be answered by that user.
 *
 * @example
 * ```ts
 * const captcha = new RedisCaptcha(redis);
 * // GET /captcha
 * const { id, svg } = await captcha.create({ userId: "u42" });
 * // POST /admit { id, answer } — through SaleGate, or directly:
 * const ok = await captcha.verify({ id, answer: "12" }, { userId: "u42" });
 * ```
 */
export class RedisCaptcha implements CaptchaVerifier {
  /** How long a challenge can be answered (ms). */
  readonly ttlMs: number;
  readonly #prefix: string;
  readonly #generate: () => Challenge;
  readonly #ignoreCase: boolean;

  constructor(
    private readonly redis: RedisClient,
    options: RedisCaptchaOptions = {},
  ) {
    validateOptions("options", options, { known: ["ttlMs", "generate", "ignoreCase", "prefix"] });
    if (redis === null || typeof redis !== "object" || typeof redis.defineCommand !== "function") {
      throw new InvalidArgumentError("redis", "must be an ioredis Redis or Cluster client");
    }
    this.ttlMs = options.ttlMs ?? 120_000;
    validateInt("ttlMs", this.ttlMs, { min: 1, max: 24 * 3_600_000 });
    if (options.generate !== undefined && typeof options.generate !== "function") {
      throw new InvalidArgumentError("generate", "must be a function returning { svg, answer }");
    }
    this.#generate = options.generate ?? mathChallenge;
    if (options.ignoreCase !== undefined && typeof options.ignoreCase !== "boolean") {
      throw new InvalidArgumentError("ignoreCase", "must be a boolean");
    }
    this.#ignoreCase = options.ignoreCase ?? true;
    this.#prefix = resolvePrefix(options.prefix);
  }

  #key(id: string): string {
    return entityKeys(this.#prefix, id, "id").key("captcha");
  }

  #normalize(answer: string): string {
    const a = answer.replace(/\s+/g, "");
    // ASCII only: full Unicode folding would take another character (KELVIN SIGN for "k") as the answer.
    return this.#ignoreCase ? a.replace(/[A-Z]/g, (c) => c.toLowerCase()) : a;
  }

  /**
   * Makes a challenge, stores its answer for `ttlMs`, and returns its id and picture. With `userId`, only
   * that user can answer it.
   *
   * @example
   * ```ts
   * const { id, svg } = await captcha.create({ userId: session.userId });
   * reply.send({ id, svg });
   * ```
   */
  async create(options: { readonly userId?: string } = {}): Promise<IssuedChallenge> {
    validateOptions("options", options, { known: ["userId"] });
    if (options.userId !== undefined) validateId("userId", options.userId);
    const c = this.#generate();
    if (typeof c !== "object" || c === null || typeof c.svg !== "string" || typeof c.answer !== "string") {
      throw new UnexpectedReplyError("generate must return { svg, answer } strings");
    }
    const answer = this.#normalize(c.answer);
    if (answer === "") throw new UnexpectedReplyError("generate returned an empty answer");
    const id = randomBytes(16).toString("base64url");
    try {
      await this.redis.set(this.#key(id), `${options.userId ?? ""}\n${answer}`, "PX", this.ttlMs);
    } catch (err) {
      throw toRedisError(err);
    }
    return { id, svg: c.svg, ttlMs: this.ttlMs };
  }

  /**
   * Judges an answer and spends the challenge: `true` once for the right answer by the right user within
   * the TTL; `false` for a wrong answer, an unknown, expired or already used id, or another user.
   *
   * @example
   * ```ts
   * if (!(await captcha.verify({ id, answer }, { userId }))) return reply.code(400).send();
   * ```
   */
  async verify(response: CaptchaResponse, subject: CaptchaSubject): Promise<boolean> {
    // The subject is the caller's (bad input, an error); the response is the client's (wrong, `false`).
    validateOptions("subject", subject, { required: true, known: ["userId", "remoteIp"] });
    validateId("userId", subject.userId);
    if (typeof response !== "object" || response === null) return false;
    const { id, answer } = response;
    if (typeof id !== "string" || typeof answer !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(id))
      return false;
    // An oversized answer is wrong anyway; it still spends the challenge, as every attempt does.
    const given = this.#normalize(answer.slice(0, 256));
    return (await TAKE.run(this.redis, [this.#key(id)], [given, subject.userId])) === 0;
  }
}
