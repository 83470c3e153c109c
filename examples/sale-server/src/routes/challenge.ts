// The steps before a buy: GET /api/captcha (a picture, single use) and POST /api/purchase-token (SaleGate:
// window → members only → CAPTCHA → [waiting-room pass, spent] → a signed single-use token). Both have per-user and per-IP limits.
import type { FastifyInstance } from "fastify";
import { clientIp } from "flash-sale-kit/ratelimit";
import { saleOpen, userOf, type SaleContext } from "../context.js";
import { idSchema, refusal, skuQuery } from "../http.js";

interface TokenBody {
  readonly sku: string;
  readonly captchaId: string;
  readonly answer: string;
  /** The waiting room's pass (GET /api/room/status), when the sale has a room. */
  readonly pass?: string;
}

const tokenBody = {
  type: "object",
  required: ["sku", "captchaId", "answer"],
  additionalProperties: false,
  properties: {
    sku: idSchema,
    captchaId: { type: "string", minLength: 1, maxLength: 100 },
    answer: { type: "string", maxLength: 20 },
    pass: { type: "string", minLength: 1, maxLength: 2000 },
  },
} as const;

export function challengeRoutes(app: FastifyInstance, ctx: SaleContext): void {
  app.get<{ Querystring: { sku: string } }>(
    "/api/captcha",
    {
      onRequest: ctx.signedIn,
      schema: { querystring: skuQuery },
      preHandler: [saleOpen(ctx, (req) => (req.query as { sku: string }).sku), ctx.limits.challenge],
    },
    async (req) => {
      const c = await ctx.captcha.create({ userId: userOf(req) });
      ctx.metrics.requests.inc({ route: "captcha", outcome: "ok" });
      // The picture only: the question is not in the page as text.
      return { id: c.id, svg: c.svg, ttlMs: c.ttlMs };
    },
  );

  app.post<{ Body: TokenBody }>(
    "/api/purchase-token",
    {
      onRequest: ctx.signedIn,
      schema: { body: tokenBody },
      preHandler: [saleOpen(ctx, (req) => (req.body as TokenBody).sku), ctx.limits.challenge],
    },
    async (req) => {
      const gate = ctx.sales.gate(req.body.sku)!;
      const a = await gate.admit({
        userId: userOf(req),
        sku: gate.saleId,
        captcha: { id: req.body.captchaId, answer: req.body.answer },
        remoteIp: clientIp(req.raw, { trustedProxies: ctx.trustedProxies }),
        ...(req.body.pass !== undefined && { pass: req.body.pass }),
      });
      ctx.metrics.requests.inc({ route: "purchase-token", outcome: a.ok ? "ok" : a.reason });
      if (!a.ok) {
        const { ok: _ok, reason, ...details } = a;
        throw refusal(reason, details);
      }
      return { token: a.token, expiresAt: a.expiresAt };
    },
  );
}
