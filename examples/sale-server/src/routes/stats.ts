// GET /api/stats?sku= for the dashboard (read-only counters, no admin key) and GET /metrics (Prometheus).
import type { FastifyInstance } from "fastify";
import type { SaleContext } from "../context.js";
import { HttpError, idSchema } from "../http.js";

export function statsRoutes(app: FastifyInstance, ctx: SaleContext): void {
  app.get<{ Querystring: { sku?: string } }>(
    "/api/stats",
    {
      schema: {
        querystring: { type: "object", properties: { sku: idSchema }, additionalProperties: false },
      },
    },
    async (req) => {
      const sku = req.query.sku ?? ctx.sales.skus[0] ?? "";
      if (ctx.sales.gate(sku) === undefined)
        throw new HttpError(404, "UNKNOWN_SKU", `No sale with SKU ${sku}.`);
      return ctx.stats(sku);
    },
  );
  app.get("/metrics", async (_req, reply) =>
    reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics()),
  );
}
