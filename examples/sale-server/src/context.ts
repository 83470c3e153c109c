// What the routes share: the library's objects and the example's own pieces, made once by createSaleApp.
import * as crypto from "node:crypto";
import type { RedisCaptcha } from "flash-sale-kit/gate";
import type { Inventory } from "flash-sale-kit/stock";
import type { FastifyRequest } from "fastify";
import type { Redis } from "ioredis";
import type { StaticSite } from "./assets.js";
import type { Catalog } from "./catalog.js";
import type { TimeSource } from "./clock.js";
import { HttpError, refusal } from "./http.js";
import type { Limits } from "./limits.js";
import type { SaleMetrics } from "./metrics.js";
import type { Sales } from "./sales.js";
import type { SaleStats } from "./stats.js";
import type { OrderPipeline } from "./worker.js";

export interface SaleContext {
  readonly redis: Redis;
  readonly inventory: Inventory;
  readonly catalog: Catalog;
  readonly sales: Sales;
  readonly captcha: RedisCaptcha;
  readonly pipeline: OrderPipeline;
  readonly metrics: SaleMetrics;
  readonly limits: Limits;
  readonly clock: TimeSource;
  readonly site: StaticSite;
  readonly adminKey: string;
  readonly trustedProxies: number | readonly string[];
  /** onRequest hook of every route that acts for a user: a valid session cookie, else 401. */
  readonly signedIn: (req: FastifyRequest) => Promise<void>;
  stats(sku: string): Promise<SaleStats>;
}

/** The signed-in user, from the session cookie (the route's `ctx.signedIn` hook checked it). */
export const userOf = (req: FastifyRequest): string => req.userId;

/**
 * A preHandler that answers, in process, what is known without Redis: an unknown SKU (404), a sale clearly
 * not open yet or over by the process's Redis-synced clock (409), and, from the stock's in-process flags, a
 * sale sold out (or a user who already bought) for a request that is certainly new. Runs before the rate
 * limits, so the crowd that clicks before the start or after the sell-out costs Redis nothing.
 * `reservationIdOf`: the id a buy would reserve under (a retry of a reservation that succeeded goes on,
 * to be answered as its replay).
 */
export function saleOpen(
  ctx: SaleContext,
  skuOf: (req: FastifyRequest) => string,
  reservationIdOf?: (req: FastifyRequest) => string,
) {
  return async (req: FastifyRequest): Promise<void> => {
    const sku = skuOf(req);
    if (ctx.sales.gate(sku) === undefined)
      throw new HttpError(404, "UNKNOWN_SKU", `No sale with SKU ${sku}.`);
    const w = ctx.sales.window(sku);
    if (w === "before") {
      ctx.metrics.refuse("in-process", "NOT_STARTED");
      throw new HttpError(409, "NOT_STARTED", "The sale has not started yet.", {
        startsAt: ctx.sales.get(sku)!.startsAt,
      });
    }
    if (w === "ended") {
      ctx.metrics.refuse("in-process", "ENDED");
      throw new HttpError(409, "ENDED", "The sale has ended.");
    }
    // Inventory.knownRefusal calls no Redis and publishes nothing: the library's metrics never see it.
    const known = ctx.inventory.knownRefusal(sku, {
      userId: userOf(req),
      ...(reservationIdOf && { reservationId: reservationIdOf(req) }),
    });
    if (known !== undefined) {
      ctx.metrics.refuse("in-process", known);
      throw refusal(known);
    }
  };
}

/**
 * The reservation id of a buy, derived from its purchase token: it spends the token (Inventory.reserve is
 * idempotent per id), so a buy retried after a lost reply is answered with the first outcome, and a token can
 * never reserve twice.
 */
export const reservationIdOf = (token: string): string => `t-${sha256Hex(token).slice(0, 40)}`;

// crypto.hash (Node 20.12+) hashes in one call, without a Hash object: half the cost of createHash here.
const sha256Hex: (s: string) => string =
  typeof crypto.hash === "function"
    ? (s) => crypto.hash("sha256", s, "hex")
    : (s) => crypto.createHash("sha256").update(s).digest("hex");
