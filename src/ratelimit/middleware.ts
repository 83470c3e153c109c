// HTTP middleware over RateLimits: a Fastify plugin (and onRequest hook) and an Express middleware that
// answer 429 with RateLimit-Policy / RateLimit / Retry-After headers, and fail open, closed or to an
// in-process insurance limiter when Redis is down or slow. Fastify and Express are never imported: the request and reply are typed by their shape.
import { FlashSaleError, InvalidArgumentError } from "../errors.js";
import { validateInt, validateOptions } from "../internal/validate.js";
import type { LimitState, RateLimits, RateLimitsResult } from "./rate-limits.js";

/** Options shared by `fastifyRateLimit`, `fastifyRateLimitHook` and `expressRateLimit`. */
export interface RateLimitMiddlewareOptions<Req> {
  /** The limits to check; their key functions receive the framework's request object. */
  readonly limits: RateLimits<Req>;
  /**
   * What to do when Redis fails or does not answer within `timeoutMs` (also before the client has
   * connected): `"open"` lets the request through (without RateLimit headers), `"closed"` answers 503 with
   * `Retry-After: 1`, `"local"` decides on each limit's in-process insurance bucket (its `localShare` of
   * the capacity and rate; see `TokenBucketOptions.localShare`), answering 200 or 429 as usual.
   * @default "open"
   */
  readonly failMode?: "open" | "closed" | "local";
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
   * Called with the Redis error or timeout behind every `failMode` decision (for logs, metrics). Without
   * it, the first such decision after a healthy one (or after start) emits a process warning
   * (`process.emitWarning`, code `FSK_RATELIMIT_UNAVAILABLE`), so an outage, or a client that has not
   * connected yet, is never silent. Other errors (a key function that throws, bad input) are not decided
   * by `failMode`: they go to the framework's error handling.
   */
  readonly onError?: (err: unknown, req: Req) => void;
  /**
   * The JSON body of a 429.
   * @default { error: "Too Many Requests", limit: <the refusing limit>, retryAfterMs }
   */
  readonly body?: (result: Extract<RateLimitsResult, { ok: false }>, req: Req) => unknown;
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
  | { readonly kind: "limited"; readonly result: Extract<RateLimitsResult, { ok: false }> }
  | { readonly kind: "unavailable" };

interface Resolved<Req> {
  readonly limits: RateLimits<Req>;
  readonly failMode: "open" | "closed" | "local";
  /** Whether the last decision was a failMode one (the warning is emitted once per such streak). */
  failing: boolean;
  readonly timeoutMs: number;
  readonly headers: boolean;
  readonly policy: string;
  readonly onError: ((err: unknown, req: Req) => void) | undefined;
  readonly body: (result: Extract<RateLimitsResult, { ok: false }>, req: Req) => unknown;
}

/** A Structured Fields string (RFC 8941): quotes and backslashes escaped. */
const sfString = (s: string): string => `"${s.replace(/[\\"]/g, "\\$&")}"`;

const OPTIONS = ["limits", "failMode", "timeoutMs", "headers", "onError", "body"];

function resolve<Req>(options: RateLimitMiddlewareOptions<Req>): Resolved<Req> {
  validateOptions("options", options, { required: true, known: OPTIONS });
  if (typeof options.limits?.check !== "function" || typeof options.limits.checkLocal !== "function") {
    throw new InvalidArgumentError("limits", "must be a RateLimits instance");
  }
  const failMode = options.failMode ?? "open";
  if (failMode !== "open" && failMode !== "closed" && failMode !== "local") {
    throw new InvalidArgumentError("failMode", 'must be "open", "closed" or "local"');
  }
  const timeoutMs = options.timeoutMs ?? 250;
  validateInt("timeoutMs", timeoutMs, { min: 1, max: 60_000 });
  if (options.headers !== undefined && typeof options.headers !== "boolean") {
    throw new InvalidArgumentError("headers", "must be a boolean");
  }
  for (const name of ["onError", "body"] as const) {
    if (options[name] !== undefined && typeof options[name] !== "function") {
      throw new InvalidArgumentError(name, "must be a function");
    }
  }
  const policy = options.limits
    .policies()
    .map((p) => `${sfString(p.name)};q=${p.capacity};w=${p.windowSeconds}`)
    .join(", ");
  return {
    limits: options.limits,
    failMode,
    failing: false,
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
    o.failing = false;
    return result.ok ? { kind: "pass", result } : { kind: "limited", result };
  } catch (err) {
    // Misuse (a key with braces, a cost above capacity) and errors of your own code (a key function that
    // throws) are bugs to surface, not an outage to ride out: only the limiter's own failures (Redis down or
    // failing, the timeout) are decided by failMode.
    if (err instanceof InvalidArgumentError || !(err instanceof FlashSaleError)) throw err;
    report(o, err, req);
    if (o.failMode === "local") {
      const result = o.limits.checkLocal(req);
      return result.ok ? { kind: "pass", result } : { kind: "limited", result };
    }
    return o.failMode === "closed" ? { kind: "unavailable" } : { kind: "pass", result: undefined };
  } finally {
    clearTimeout(timer);
  }
}

/** Hands a failMode decision's cause to `onError`, or warns once per streak of them. */
function report<Req>(o: Resolved<Req>, err: FlashSaleError, req: Req): void {
  if (o.onError !== undefined) {
    try {
      o.onError(err, req);
    } catch {
      // a logging hook that throws must not change the answer
    }
  } else if (!o.failing) {
    const answer = { open: "let through", closed: "answered 503", local: "decided in process" }[o.failMode];
    process.emitWarning(
      `flash-sale-kit rate limiter: Redis is unavailable (${err.message}); requests are ${answer} (failMode "${o.failMode}") until it answers again. Pass onError to log each one.`,
      { code: "FSK_RATELIMIT_UNAVAILABLE" },
    );
  }
  o.failing = true;
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
