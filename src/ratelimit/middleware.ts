// HTTP middleware over RateLimits: a Fastify plugin (and onRequest hook) and an Express middleware that
// answer 429 with RateLimit-Policy / RateLimit / Retry-After headers, and fail open or closed when Redis is
// down or slow. Fastify and Express are never imported: the request and reply are typed by their shape.
import { FlashSaleError, InvalidArgumentError } from "../errors.js";
import { validateInt, validateOptions } from "../internal/validate.js";
import type { LimitState, RateLimits, RateLimitsResult } from "./rate-limits.js";

/** Options shared by `fastifyRateLimit`, `fastifyRateLimitHook` and `expressRateLimit`. */
export interface RateLimitMiddlewareOptions<Req> {
  /** The limits to check; their key functions receive the framework's request object. */
  readonly limits: RateLimits<Req>;
  /**
   * What to do when Redis fails or does not answer within `timeoutMs`: `"open"` lets the request through
   * (without RateLimit headers), `"closed"` answers 503 with `Retry-After: 1`.
   * @default "open"
   */
  readonly failMode?: "open" | "closed";
  /**
   * The longest the limiter may hold a request up. A check still running then is decided by `failMode`
   * (it may yet take its tokens when Redis answers; give the limiter a client with
   * `enableOfflineQueue: false` so that commands fail at once while Redis is unreachable).
   * @default 250
   */
  readonly timeoutMs?: number;
  /**
   * Send `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers) on every checked
   * response. `Retry-After` is always sent with a 429 or 503.
   * @default true
   */
  readonly headers?: boolean;
  /**
   * Called with the Redis error or timeout behind a fail-open or fail-closed decision (for logs, metrics).
   * Other errors (a key function that throws, bad input) are not decided by `failMode`: they go to the
   * framework's error handling.
   */
  readonly onError?: (err: unknown, req: Req) => void;
  /**
   * The JSON body of a 429.
   * @default { error: "Too Many Requests", limit: <the refusing limit>, retryAfterMs }
   */
  readonly body?: (result: Extract<RateLimitsResult, { allowed: false }>, req: Req) => unknown;
}

/**
 * The limiter answered nothing in time: what `onError` receives on a timeout.
 *
 * @example
 * ```ts
 * expressRateLimit({ limits, onError: (err) => { if (err instanceof RateLimitTimeoutError) slowRedis.inc(); } });
 * ```
 */
export class RateLimitTimeoutError extends FlashSaleError {
  /** The class's stable name, matched by `instanceof` across copies of the package. */
  static override readonly kind: string = "RateLimitTimeoutError";

  constructor(timeoutMs: number) {
    super("RATE_LIMIT_TIMEOUT", `the rate limiter did not answer within ${timeoutMs} ms`);
  }
}

type Decision =
  | { readonly kind: "pass"; readonly result: RateLimitsResult | undefined }
  | { readonly kind: "limited"; readonly result: Extract<RateLimitsResult, { allowed: false }> }
  | { readonly kind: "unavailable" };

interface Resolved<Req> {
  readonly limits: RateLimits<Req>;
  readonly closed: boolean;
  readonly timeoutMs: number;
  readonly headers: boolean;
  readonly policy: string;
  readonly onError: ((err: unknown, req: Req) => void) | undefined;
  readonly body: (result: Extract<RateLimitsResult, { allowed: false }>, req: Req) => unknown;
}

/** A Structured Fields string (RFC 8941): quotes and backslashes escaped. */
const sfString = (s: string): string => `"${s.replace(/[\\"]/g, "\\$&")}"`;

function resolve<Req>(options: RateLimitMiddlewareOptions<Req>): Resolved<Req> {
  validateOptions("options", options, { required: true });
  if (typeof options.limits?.check !== "function") {
    throw new InvalidArgumentError("limits", "must be a RateLimits instance");
  }
  const failMode = options.failMode ?? "open";
  if (failMode !== "open" && failMode !== "closed") {
    throw new InvalidArgumentError("failMode", 'must be "open" or "closed"');
  }
  const timeoutMs = options.timeoutMs ?? 250;
  validateInt("timeoutMs", timeoutMs, { min: 1, max: 60_000 });
  const policy = options.limits
    .policies()
    .map((p) => `${sfString(p.name)};q=${p.capacity};w=${p.windowSeconds}`)
    .join(", ");
  return {
    limits: options.limits,
    closed: failMode === "closed",
    timeoutMs,
    headers: options.headers ?? true,
    policy,
    onError: options.onError,
    body:
      options.body ??
      ((r) => ({ error: "Too Many Requests", limit: r.rejectedBy, retryAfterMs: r.retryAfterMs })),
  };
}

/** Runs the check under the timeout; Redis faults and timeouts become the configured fail mode. */
async function decide<Req>(o: Resolved<Req>, req: Req): Promise<Decision> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RateLimitTimeoutError(o.timeoutMs)), o.timeoutMs);
  });
  try {
    const result = await Promise.race([o.limits.check(req), timeout]);
    return result.allowed ? { kind: "pass", result } : { kind: "limited", result };
  } catch (err) {
    // Misuse (a key with braces, a cost above capacity) and errors of your own code (a key function that
    // throws) are bugs to surface, not an outage to ride out: only the limiter's own failures (Redis down or
    // failing, the timeout) are decided by failMode.
    if (err instanceof InvalidArgumentError || !(err instanceof FlashSaleError)) throw err;
    try {
      o.onError?.(err, req);
    } catch {
      // a logging hook that throws must not change the answer
    }
    return o.closed ? { kind: "unavailable" } : { kind: "pass", result: undefined };
  } finally {
    clearTimeout(timer);
  }
}

/** The `RateLimit` field: each applied limit's remaining tokens and seconds until full. */
function rateLimitField(states: readonly LimitState[]): string {
  return states
    .map((s) => `${sfString(s.name)};r=${s.remaining};t=${Math.ceil(s.resetMs / 1000)}`)
    .join(", ");
}

/** Headers for a decision, in the order they are set. */
function headersOf<Req>(o: Resolved<Req>, d: Decision): [string, string][] {
  const out: [string, string][] = [];
  const result = d.kind === "unavailable" ? undefined : d.result;
  if (o.headers && result !== undefined && result.limits.length > 0) {
    out.push(["RateLimit-Policy", o.policy], ["RateLimit", rateLimitField(result.limits)]);
  }
  if (d.kind === "limited")
    out.push(["Retry-After", String(Math.max(1, Math.ceil(d.result.retryAfterMs / 1000)))]);
  if (d.kind === "unavailable") out.push(["Retry-After", "1"]);
  return out;
}

const UNAVAILABLE = { error: "Service Unavailable", message: "the rate limiter is unavailable" };

/** The reply methods the Fastify hook uses; Fastify's `FastifyReply` fits. */
export interface FastifyReplyLike {
  code(statusCode: number): unknown;
  header(name: string, value: string): unknown;
  send(payload?: unknown): unknown;
}

/** A Fastify `onRequest` hook, as `fastifyRateLimitHook` returns it. */
export type FastifyRateLimitHook<Req> = (request: Req, reply: FastifyReplyLike) => Promise<unknown>;

/**
 * A Fastify `onRequest` hook that checks the limits: for a route's `onRequest` option, or
 * `app.addHook("onRequest", …)` in one encapsulated scope.
 *
 * @example
 * ```ts
 * import Fastify, { type FastifyRequest } from "fastify";
 * const limits = new RateLimits<FastifyRequest>([...]);
 * app.post("/buy", { onRequest: fastifyRateLimitHook({ limits, failMode: "closed" }) }, buyHandler);
 * ```
 */
export function fastifyRateLimitHook<Req>(
  options: RateLimitMiddlewareOptions<Req>,
): FastifyRateLimitHook<Req> {
  const o = resolve(options);
  return async (request, reply) => {
    const d = await decide(o, request);
    for (const [name, value] of headersOf(o, d)) reply.header(name, value);
    if (d.kind === "pass") return undefined;
    reply.code(d.kind === "limited" ? 429 : 503);
    reply.send(d.kind === "limited" ? o.body(d.result, request) : UNAVAILABLE);
    return reply;
  };
}

/** What the Fastify plugin needs from the instance it is registered on; a `FastifyInstance` fits. */
export interface FastifyInstanceLike<Req> {
  addHook(name: "onRequest", hook: FastifyRateLimitHook<Req>): unknown;
}

/** A Fastify plugin, as `fastifyRateLimit` returns it. */
export type FastifyRateLimitPlugin<Req> = (
  instance: FastifyInstanceLike<Req>,
  options: unknown,
  done: (err?: Error) => void,
) => void;

/**
 * A Fastify plugin that checks the limits on every request of the scope it is registered in (it skips
 * encapsulation, as `fastify-plugin` does, so the hook applies to the registering scope).
 *
 * @example
 * ```ts
 * import Fastify, { type FastifyRequest } from "fastify";
 * import { RateLimits, TokenBucket, clientIp, fastifyRateLimit, ipKey } from "flash-sale-kit/ratelimit";
 *
 * const TRUST = { trustedProxies: 1 };
 * const limits = new RateLimits<FastifyRequest>([
 *   { name: "ip", bucket: new TokenBucket(redis, { capacity: 20, refillPerSecond: 5, prefix: "rl:ip" }),
 *     key: (req) => ipKey(clientIp(req, TRUST)) },
 * ]);
 * const app = Fastify();
 * await app.register(fastifyRateLimit({ limits, failMode: "open", timeoutMs: 100 }));
 * ```
 */
export function fastifyRateLimit<Req>(options: RateLimitMiddlewareOptions<Req>): FastifyRateLimitPlugin<Req> {
  const hook = fastifyRateLimitHook(options);
  const plugin: FastifyRateLimitPlugin<Req> = (instance, _opts, done) => {
    instance.addHook("onRequest", hook);
    done();
  };
  Object.assign(plugin, {
    [Symbol.for("skip-override")]: true,
    [Symbol.for("fastify.display-name")]: "flash-sale-kit-ratelimit",
  });
  return plugin;
}

/** The response methods the Express middleware uses; Express's `Response` and Node's `ServerResponse` fit. */
export interface ExpressResponseLike {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  end(chunk: string): unknown;
}

/** An Express (Connect) middleware, as `expressRateLimit` returns it. */
export type ExpressRateLimitMiddleware<Req> = (
  req: Req,
  res: ExpressResponseLike,
  next: (err?: unknown) => void,
) => void;

/**
 * An Express middleware that checks the limits: `app.use(…)` or per route.
 *
 * @example
 * ```ts
 * import express, { type Request } from "express";
 * const limits = new RateLimits<Request>([...]);
 * app.post("/buy", expressRateLimit({ limits, failMode: "closed" }), buyHandler);
 * ```
 */
export function expressRateLimit<Req>(
  options: RateLimitMiddlewareOptions<Req>,
): ExpressRateLimitMiddleware<Req> {
  const o = resolve(options);
  return (req, res, next) => {
    decide(o, req)
      .then((d) => {
        for (const [name, value] of headersOf(o, d)) res.setHeader(name, value);
        if (d.kind === "pass") return next();
        res.statusCode = d.kind === "limited" ? 429 : 503;
        res.setHeader("Content-Type", "application/json; charset=utf-8");
        res.end(JSON.stringify(d.kind === "limited" ? o.body(d.result, req) : UNAVAILABLE));
      })
      // Also a `body` that throws or headers already sent: Express's error handling, never an unhandled
      // rejection (which would end the process).
      .catch((err: unknown) => next(err));
  };
}
