// GET /api/orders/:id and POST /api/orders/:id/pay: a buyer's own order (the id is the reservation id).
import type { FastifyInstance } from "fastify";
import { userOf, type SaleContext } from "../context.js";
import { HttpError, orderParams, refusal } from "../http.js";

export function orderRoutes(app: FastifyInstance, ctx: SaleContext): void {
  const own = async (id: string, userId: string) => {
    const order = await ctx.pipeline.orders.get(id);
    // Someone else's order is as unknown as a missing one.
    if (!order || order.userId !== userId) throw new HttpError(404, "UNKNOWN_ORDER", "No such order.");
    return order;
  };
  const opts = { onRequest: ctx.signedIn, schema: { params: orderParams } };

  app.get<{ Params: { id: string } }>("/api/orders/:id", opts, async (req) => {
    const order = await own(req.params.id, userOf(req));
    return { id: order.id, sku: order.sku, status: order.status, paymentDueAt: order.paymentDueAt };
  });

  app.post<{ Params: { id: string } }>("/api/orders/:id/pay", opts, async (req) => {
    await own(req.params.id, userOf(req));
    // A real shop charges the card here; the demo's payment always succeeds.
    const r = await ctx.pipeline.orders.pay(req.params.id);
    ctx.metrics.requests.inc({ route: "pay", outcome: r.ok ? "ok" : r.reason });
    if (!r.ok) throw refusal(r.reason);
    return { status: "paid" };
  });
}
