// GET /api/time: Redis time from this process's synced clock (no Redis call per request), cacheable for a
// second so a CDN in front absorbs the crowd's page loads.
import type { FastifyInstance } from "fastify";
import type { SaleContext } from "../context.js";
import { HttpError } from "../http.js";

export function timeRoutes(app: FastifyInstance, ctx: SaleContext): void {
  app.get("/api/time", async (_req, reply) => {
    const r = ctx.clock.read();
    if (r === undefined) {
      reply.header("retry-after", "1").header("cache-control", "no-store");
      throw new HttpError(503, "CLOCK_NOT_SYNCED", "The server has not read Redis's clock yet: try again.");
    }
    // A cached copy is at most a second old; the page adds the Age header a cache sends.
    reply.header("cache-control", "public, max-age=1");
    return { now: Math.round(r.ms), errorMs: Math.ceil(r.errorMs) };
  });
}
