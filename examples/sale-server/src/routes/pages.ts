// The static page and dashboard: CDN-cacheable HTML (short max-age + ETag) and immutable hashed assets.
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { CACHE_HTML, CACHE_IMMUTABLE, type Asset } from "../assets.js";
import type { SaleContext } from "../context.js";
import { HttpError } from "../http.js";

export function pageRoutes(app: FastifyInstance, ctx: SaleContext): void {
  const send = (req: FastifyRequest, reply: FastifyReply, asset: Asset | undefined, cache: string) => {
    if (!asset) throw new HttpError(404, "NOT_FOUND", "No such page or asset.");
    reply.header("cache-control", cache).header("etag", asset.etag).type(asset.type);
    if (req.headers["if-none-match"] === asset.etag) return reply.code(304).send();
    return reply.send(asset.body);
  };
  app.get("/", (req, reply) => send(req, reply, ctx.site.pages.get("/"), CACHE_HTML));
  app.get("/dashboard", (req, reply) => send(req, reply, ctx.site.pages.get("/dashboard"), "no-cache"));
  app.get<{ Params: { file: string } }>(
    "/assets/:file",
    { schema: { params: { type: "object", properties: { file: { type: "string", maxLength: 100 } } } } },
    (req, reply) => send(req, reply, ctx.site.assets.get(`/assets/${req.params.file}`), CACHE_IMMUTABLE),
  );
}
