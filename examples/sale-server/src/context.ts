// What the routes share: the library's objects and the example's own pieces, made once by createSaleApp.
import type { RedisCaptcha } from "flash-sale-kit/gate";
import type { Inventory } from "flash-sale-kit/stock";
import type { FastifyRequest } from "fastify";
import type { Redis } from "ioredis";
import type { StaticSite } from "./assets.js";
import type { Catalog } from "./catalog.js";
import type { TimeSource } from "./clock.js";
import { HttpError } from "./http.js";
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
  stats(sku: string): Promise<SaleStats>;
}

/** The signed-in user (the demo's `x-user-id` header, checked by the route's schema). */
export const userOf = (req: FastifyRequest): string => String(req.headers["x-user-id"]);

/**
 * A preHandler that answers, in process, what is known without Redis: an unknown SKU (404) and a sale
 * clearly not open yet or over by the process's Redis-synced clock (409). Runs before the rate limits, so
 * the crowd that clicks before the start costs Redis nothing.
 */
export function saleOpen(ctx: SaleContext, skuOf: (req: FastifyRequest) => string) {
  return async (req: FastifyRequest): Promise<void> => {
    const sku = skuOf(req);
    if (ctx.sales.gate(sku) === undefined)
      throw new HttpError(404, "UNKNOWN_SKU", `No sale with SKU ${sku}.`);
    const w = ctx.sales.window(sku);
    if (w === "before") {
      ctx.metrics.reject("NOT_STARTED (in process)");
      throw new HttpError(409, "NOT_STARTED", "The sale has not started yet.", {
        startsAt: ctx.sales.get(sku)!.startsAt,
      });
    }
    if (w === "ended") throw new HttpError(409, "ENDED", "The sale has ended.");
  };
}
