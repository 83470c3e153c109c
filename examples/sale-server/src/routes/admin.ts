// The admin routes (header x-admin-key): create a sale, pre-warm the product cache.
import { timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
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
}
