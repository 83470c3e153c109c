// The waiting room in front of a sale (flash-sale-kit/queue): the page joins, keeps the ticket, polls its
// place, and gets a signed single-use pass once admitted at the rate the buy path can take; POST
// /api/purchase-token spends the pass (SaleGate with `waitingRoom`). The user is the session's, never a header.
//   POST /api/room/join   { sku }          → 200 { state: "WAITING", ticket, position, waiting, estimatedWaitMs }
//                                             | { state: "ADMITTED", ticket, pass, expiresAt, admission }
//                                             | { state: "CLOSED" } | { state: "NO_ROOM" } (no room: go on)
//   GET  /api/room/status ?sku=&ticket=    → 200 the same states, or { state: "NOT_QUEUED" } (join again),
//                                             or { state: "REFUSED", reason } (a forged or another user's ticket)
// Both answer what is known in process first (unknown SKU 404, not started or ended 409, sold out 409), so the
// crowd that comes after the sell-out costs Redis nothing. A join is then rate limited per user and per IP
// (429 with Retry-After, `room-user` / `room-ip`); a status poll reads only the caller's own ticket.
import type { FastifyInstance } from "fastify";
import { saleOpen, userOf, type SaleContext } from "../context.js";
import { idSchema } from "../http.js";

interface JoinBody {
  readonly sku: string;
}

const joinBody = {
  type: "object",
  required: ["sku"],
  additionalProperties: false,
  properties: { sku: idSchema },
} as const;

interface StatusQuery {
  readonly sku: string;
  readonly ticket: string;
}

const statusQuery = {
  type: "object",
  required: ["sku", "ticket"],
  additionalProperties: false,
  properties: { sku: idSchema, ticket: { type: "string", minLength: 1, maxLength: 2000 } },
} as const;

export function roomRoutes(app: FastifyInstance, ctx: SaleContext): void {
  app.post<{ Body: JoinBody }>(
    "/api/room/join",
    {
      onRequest: ctx.signedIn,
      schema: { body: joinBody },
      // What is known in process first, then the room limits (per user, per IP).
      preHandler: [saleOpen(ctx, (req) => (req.body as JoinBody).sku), ctx.limits.room],
    },
    async (req) => {
      const room = ctx.sales.room(req.body.sku);
      if (room === undefined) return { state: "NO_ROOM" };
      // Idempotent per user: a second join (another tab, a reload) keeps the place, or the pass.
      return room.join(userOf(req));
    },
  );

  app.get<{ Querystring: StatusQuery }>(
    "/api/room/status",
    {
      onRequest: ctx.signedIn,
      schema: { querystring: statusQuery },
      preHandler: saleOpen(ctx, (req) => (req.query as StatusQuery).sku),
    },
    async (req) => {
      const room = ctx.sales.room(req.query.sku);
      if (room === undefined) return { state: "NO_ROOM" };
      // The ticket must be the session user's: another user's ticket is refused as data.
      return room.status(req.query.ticket, { userId: userOf(req) });
    },
  );
}
