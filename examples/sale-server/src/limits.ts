// Rate limits in front of the buy path: three limits checked as one (a request refused by one consumes
// nothing from the others), answered 429 with Retry-After, or 503 when Redis cannot answer in time.
import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from "fastify";
import { FlashSaleError, InvalidArgumentError } from "flash-sale-kit";
import { clientIp, ipKey, RateLimits, TokenBucket } from "flash-sale-kit/ratelimit";
import type { Redis } from "ioredis";
import { HttpError } from "./http.js";
import type { SaleMetrics } from "./metrics.js";

/** [capacity, refill per second] of one limit. */
export type Rate = readonly [number, number];

export interface LimitSettings {
  /** Buys per user. @default [3, 0.2] */
  readonly user?: Rate;
  /** Buys per client IP. @default [20, 5] */
  readonly ip?: Rate;
  /** Buys through the whole API. @default [5000, 2000] */
  readonly api?: Rate;
  /** CAPTCHA and purchase-token requests per user. @default [10, 0.5] */
  readonly challengeUser?: Rate;
  /** CAPTCHA and purchase-token requests per client IP. @default [60, 10] */
  readonly challengeIp?: Rate;
  /** Waiting-room joins per user (a re-join keeps the place: this only bounds the calls). @default [20, 2] */
  readonly roomUser?: Rate;
  /** Waiting-room joins per client IP: one client cannot fill the line with made-up users. @default [60, 10] */
  readonly roomIp?: Rate;
  /** How long a check may take before the request is refused with 503 (fail closed). @default 500 */
  readonly timeoutMs?: number;
}

export interface Limits {
  readonly buy: preHandlerAsyncHookHandler;
  readonly challenge: preHandlerAsyncHookHandler;
  /** Waiting-room joins. */
  readonly room: preHandlerAsyncHookHandler;
}

export function createLimits(
  redis: Redis,
  prefix: string,
  settings: LimitSettings,
  trustedProxies: number | readonly string[],
  metrics: SaleMetrics,
): Limits {
  const trust = { trustedProxies };
  const user = (req: FastifyRequest) => req.userId; // set from the session cookie before the limits run
  const ip = (req: FastifyRequest) => ipKey(clientIp(req.raw, trust));
  const bucket = (name: string, [capacity, refillPerSecond]: Rate) =>
    new TokenBucket(redis, { capacity, refillPerSecond, prefix: `${prefix}-${name}` });
  const buy = new RateLimits<FastifyRequest>([
    { name: "user", bucket: bucket("user", settings.user ?? [3, 0.2]), key: user },
    { name: "ip", bucket: bucket("ip", settings.ip ?? [20, 5]), key: ip },
    { name: "api", bucket: bucket("api", settings.api ?? [5000, 2000]), key: () => "buy" },
  ]);
  // The CAPTCHA steps have limits of their own: without them a bot skips the picture and guesses blindly
  // (a short sum has few answers), one fresh challenge after another, each one a Redis key.
  // Named apart from the buy limits: the library's metrics count refusals by limit name
  // (flash_sale_operations_total{operation="ratelimit.check",reason="challenge-user"}).
  const challenge = new RateLimits<FastifyRequest>([
    {
      name: "challenge-user",
      bucket: bucket("challenge-user", settings.challengeUser ?? [10, 0.5]),
      key: user,
    },
    { name: "challenge-ip", bucket: bucket("challenge-ip", settings.challengeIp ?? [60, 10]), key: ip },
  ]);
  // A join adds a place to the line: limited per user and, above all, per IP (a client that signs in as many
  // users would otherwise push everyone behind its made-up ones). A status poll only reads its own ticket.
  const room = new RateLimits<FastifyRequest>([
    { name: "room-user", bucket: bucket("room-user", settings.roomUser ?? [20, 2]), key: user },
    { name: "room-ip", bucket: bucket("room-ip", settings.roomIp ?? [60, 10]), key: ip },
  ]);
  const timeoutMs = settings.timeoutMs ?? 500;
  return {
    buy: hook(buy, "buy", metrics, timeoutMs),
    challenge: hook(challenge, "challenge", metrics, timeoutMs),
    room: hook(room, "room", metrics, timeoutMs),
  };
}

/** A preHandler that checks the limits; fails closed after `timeoutMs` (a sale must not run unlimited). */
function hook(
  limits: RateLimits<FastifyRequest>,
  route: string,
  metrics: SaleMetrics,
  timeoutMs: number,
): preHandlerAsyncHookHandler {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    // The check, or "timeout" once timeoutMs passed first (one promise and one timer a request).
    const r = await new Promise<Awaited<ReturnType<typeof limits.check>> | "timeout">((resolve, reject) => {
      const timer = setTimeout(resolve, timeoutMs, "timeout");
      limits.check(req).then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (err: unknown) => {
          clearTimeout(timer);
          if (err instanceof InvalidArgumentError || !(err instanceof FlashSaleError)) reject(err);
          else {
            req.log.warn(err);
            resolve("timeout");
          }
        },
      );
    });
    if (r === "timeout") {
      reply.header("retry-after", "1");
      throw new HttpError(503, "RATE_LIMITER_UNAVAILABLE", "The rate limiter did not answer: try again.");
    }
    if (!r.ok) {
      metrics.requests.inc({ route, outcome: "RATE_LIMITED" });
      reply.header("retry-after", String(Math.max(1, Math.ceil(r.retryAfterMs / 1000))));
      throw new HttpError(429, "RATE_LIMITED", "Too many requests: slow down.", {
        rejectedBy: r.rejectedBy,
        retryAfterMs: r.retryAfterMs,
      });
    }
  };
}
