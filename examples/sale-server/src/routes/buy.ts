// POST /api/buy: what is known in process first (unknown SKU, not open yet, sold out for a new id), then the
// rate limits (user, IP, API), then SaleGate.redeem (the single-use purchase token) and Inventory.reserve:
// 202 { reservationId }.
import type { FastifyInstance } from "fastify";
import { reservationIdOf, saleOpen, userOf, type SaleContext } from "../context.js";
import { HttpError, idSchema, refusal } from "../http.js";

interface BuyBody {
  readonly sku: string;
  readonly token: string;
}

const buyBody = {
  type: "object",
  required: ["sku", "token"],
  additionalProperties: false,
  properties: { sku: idSchema, token: { type: "string", minLength: 1, maxLength: 2000 } },
} as const;

export function buyRoutes(app: FastifyInstance, ctx: SaleContext): void {
  app.post<{ Body: BuyBody }>(
    "/api/buy",
    {
      onRequest: ctx.signedIn,
      schema: { body: buyBody },
      preHandler: [
        saleOpen(
          ctx,
          (req) => (req.body as BuyBody).sku,
          (req) => reservationIdOf((req.body as BuyBody).token),
        ),
        ctx.limits.buy,
      ],
    },
    async (req, reply) => {
      const started = process.hrtime.bigint();
      const outcome = (o: string) => {
        ctx.metrics.requests.inc({ route: "buy", outcome: o });
        ctx.metrics.buyLatency.observe({ outcome: o }, Number(process.hrtime.bigint() - started) / 1e9);
      };
      const userId = userOf(req);
      const { sku, token } = req.body;
      const gate = ctx.sales.gate(sku)!;
      const reservationId = reservationIdOf(token);
      const t = await gate.redeem(token, { userId, sku: gate.saleId });
      if (!t.ok) {
        // A spent token only replays a reservation it made; it never buys a new attempt without a CAPTCHA.
        const prior = t.reason === "USED" ? await ctx.inventory.reservation(sku, reservationId) : null;
        if (prior !== null && prior.userId === userId) {
          outcome("REPLAYED");
          return reply.code(202).send({ reservationId, remaining: prior.remaining });
        }
        outcome(t.reason);
        ctx.metrics.refuse("token", t.reason); // SaleGate.redeem is not a traced operation
        throw new HttpError(403, "BAD_TOKEN", "The purchase token is not valid: answer a new CAPTCHA.", {
          detail: t.reason,
        });
      }
      const r = await ctx.inventory.reserve(sku, { userId, reservationId });
      if (!r.ok) {
        outcome(r.reason);
        throw refusal(r.reason);
      }
      outcome("RESERVED");
      return reply.code(202).send({ reservationId: r.reservationId, remaining: r.remaining });
    },
  );
}
