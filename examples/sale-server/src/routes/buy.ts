// POST /api/buy: what is known in process first (unknown SKU, not open yet, sold out for a new id), then the
// rate limits (user, IP, API), then SaleGate.verify (the purchase token, in process) and Inventory.reserve
// under an id made from the token (which makes the token single use): 202 { reservationId }.
import type { FastifyInstance, FastifyRequest } from "fastify";
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

/** Counts a buy's outcome and its latency since `started` (process.hrtime.bigint()). */
function count(ctx: SaleContext, outcome: string, started: bigint): void {
  ctx.metrics.requests.inc({ route: "buy", outcome });
  ctx.metrics.buyLatency.observe({ outcome }, Number(process.hrtime.bigint() - started) / 1e9);
}

export function buyRoutes(app: FastifyInstance, ctx: SaleContext): void {
  // The reservation id is a hash of the token: made once per request, for the in-process check and the buy.
  const ids = new WeakMap<FastifyRequest, string>();
  const idOf = (req: FastifyRequest): string => {
    let id = ids.get(req);
    if (id === undefined) {
      id = reservationIdOf((req.body as BuyBody).token);
      ids.set(req, id);
    }
    return id;
  };
  const open = saleOpen(ctx, (req) => (req.body as BuyBody).sku, idOf);
  const limits = ctx.limits.buy;
  app.post<{ Body: BuyBody }>(
    "/api/buy",
    {
      onRequest: ctx.signedIn,
      schema: { body: buyBody },
      // One hook for both steps (each hook is a turn of Fastify's hook runner): in process, then the limits.
      async preHandler(req, reply) {
        await open(req);
        await limits.call(this, req, reply);
      },
    },
    async (req, reply) => {
      const started = process.hrtime.bigint();
      const userId = userOf(req);
      const { sku, token } = req.body;
      const gate = ctx.sales.gate(sku)!;
      const reservationId = idOf(req);
      // The token is checked in process (signature, user, SKU, expiry, the sale's end); it is spent by the
      // reservation it makes: the reservation id is the token's hash, so a second buy with it replays the
      // first reservation (a retry after a lost reply gets its outcome) and never reserves again, and a buy
      // refused below (sold out, limit reached) leaves it unspent, as a refusal consumes nothing.
      const t = await gate.verify(token, { userId, sku: gate.saleId });
      if (!t.ok) {
        count(ctx, t.reason, started);
        ctx.metrics.refuse("token", t.reason); // SaleGate.verify is not a traced operation
        throw new HttpError(403, "BAD_TOKEN", "The purchase token is not valid: answer a new CAPTCHA.", {
          detail: t.reason,
        });
      }
      const r = await ctx.inventory.reserve(sku, { userId, reservationId });
      if (!r.ok) {
        count(ctx, r.reason, started);
        throw refusal(r.reason);
      }
      count(ctx, "RESERVED", started);
      return reply.code(202).send({ reservationId: r.reservationId, remaining: r.remaining });
    },
  );
}
