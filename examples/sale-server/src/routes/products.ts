// GET /api/products/:sku: the product through ReadThroughCache + PenetrationGuard, and the units left.
import type { FastifyInstance } from "fastify";
import type { SaleContext } from "../context.js";
import { HttpError, skuParams } from "../http.js";

export function productRoutes(app: FastifyInstance, ctx: SaleContext): void {
  app.get<{ Params: { sku: string } }>(
    "/api/products/:sku",
    { schema: { params: skuParams } },
    async (req) => {
      const product = await ctx.catalog.get(req.params.sku);
      if (!product) throw new HttpError(404, "UNKNOWN_SKU", `No product with SKU ${req.params.sku}.`);
      const snap = await ctx.inventory.snapshot(product.sku);
      return { ...product, available: snap?.available ?? 0 };
    },
  );
}
