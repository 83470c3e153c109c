// The admin routes (header x-admin-key): create a sale, pre-warm the product cache, reconcile a SKU's Redis
// state with the orders after a Redis loss.
import { timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { reconcileStock } from "flash-sale-kit/orders";
import type { SaleContext } from "../context.js";
import { HttpError } from "../http.js";
import { saleSchema, type SaleInput } from "../sales.js";
import type { Product } from "../catalog.js";

export function adminRoutes(app: FastifyInstance, ctx: SaleContext): void {
  const want = Buffer.from(ctx.adminKey);
  // Checked before the body is validated: without the key nobody learns what a valid body looks like.
  const admin = async (req: FastifyRequest) => {
    const raw = req.headers["x-admin-key"];
    const given = Buffer.from(typeof raw === "string" ? raw : "");
    if (given.length !== want.length || !timingSafeEqual(given, want)) {
      throw new HttpError(401, "ADMIN_KEY_REQUIRED", "This route needs the x-admin-key header.");
    }
  };

  app.post<{ Body: SaleInput }>(
    "/api/admin/sales",
    { onRequest: admin, schema: { body: saleSchema } },
    async (req, reply) => {
      await ctx.sales.create(req.body);
      return reply.code(201).send({ sku: req.body.sku });
    },
  );

  app.post("/api/admin/prewarm", { onRequest: admin }, async () => {
    const products = await Promise.all(ctx.sales.skus.map((s) => ctx.catalog.get(s)));
    const entries = products.filter((p): p is Product => p !== undefined).map((p) => [p.sku, p] as const);
    return { prewarmed: await ctx.catalog.cache.prewarm(entries) };
  });

  // After a failover or a restore that may have lost acknowledged reservations: rebuild the SKU's Redis
  // state from the orders in the database (see docs/orders.md in the library).
  app.post<{ Params: { sku: string } }>("/api/admin/reconcile/:sku", { onRequest: admin }, async (req) => {
    const sku = req.params.sku;
    if (ctx.sales.gate(sku) === undefined)
      throw new HttpError(404, "UNKNOWN_SKU", `No sale with SKU ${sku}.`);
    const { inventory, redis } = ctx;
    return reconcileStock({ redis, inventory, orders: ctx.pipeline.orders, sku });
  });
}
