// The demo sign-in: POST /api/session sets a signed, HttpOnly session cookie (@fastify/cookie's HMAC signer),
// and every route that acts for a user takes the user from that cookie, never from anything else the client
// sends (an `x-user-id` header is ignored). A real shop checks a password or an identity provider before it
// signs the cookie; the rest (signing, expiry, HttpOnly, SameSite) is what it would do too.
//   POST   /api/session  { name? }  → 200 { userId, expiresAt } + Set-Cookie (a generated member name if none)
//   GET    /api/session             → 200 { userId, expiresAt } | 401 SIGN_IN_REQUIRED
//   DELETE /api/session             → 204, the cookie cleared
// The cookie holds `v1:<userId>:<expiresAt>` and its signature: stateless, so checking it costs Redis nothing
// and every process sharing the secret (SESSION_SECRET) accepts it.
import { createHmac, createSecretKey, randomBytes, timingSafeEqual } from "node:crypto";
import fastifyCookie from "@fastify/cookie";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { InvalidArgumentError } from "flash-sale-kit";
import type { TimeSource } from "./clock.js";
import { HttpError } from "./http.js";

/** The session cookie's name. */
export const SESSION_COOKIE = "fsk_session";
/** How long a sign-in lasts. */
export const SESSION_TTL_MS = 12 * 3_600_000;

declare module "fastify" {
  interface FastifyRequest {
    /** The signed-in user, set by `signedIn` (empty on routes that do not require a session). */
    userId: string;
  }
}

/** A demo user name: letters, digits, `-`, `_`, `.`, 1 to 64 characters (a valid library id). */
const NAME = /^[A-Za-z0-9._-]{1,64}$/;

const signInBody = {
  type: "object",
  additionalProperties: false,
  properties: { name: { type: "string", pattern: NAME.source } },
} as const;

/** The cookie's value before signing. Exported for the benchmark, which signs its users in bulk. */
export const sessionValue = (userId: string, expiresAt: number): string => `v1:${userId}:${expiresAt}`;

/**
 * The session cookie's value in a Cookie header (URL-decoded, as the plugin encodes it), or `undefined`: the
 * first of that name, as browsers send the most specific first.
 */
function sessionCookie(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  for (let at = 0; at < header.length;) {
    const end = header.indexOf(";", at);
    const stop = end === -1 ? header.length : end;
    const eq = header.indexOf("=", at);
    if (eq !== -1 && eq < stop && header.slice(at, eq).trim() === SESSION_COOKIE) {
      let v = header.slice(eq + 1, stop).trim();
      if (v.length > 1 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
      try {
        return v.includes("%") ? decodeURIComponent(v) : v;
      } catch {
        return undefined; // malformed escapes: no session
      }
    }
    at = stop + 1;
  }
  return undefined;
}

export interface Sessions {
  /** An onRequest hook: sets `req.userId` from a valid session cookie, else answers 401 SIGN_IN_REQUIRED. */
  readonly signedIn: (req: FastifyRequest) => Promise<void>;
}

/**
 * Registers the cookie plugin and the session routes. `secret` signs the cookies (at least 32 characters;
 * share it between the processes of one site). `secure` adds the Secure attribute (behind HTTPS).
 */
export function sessionRoutes(
  app: FastifyInstance,
  o: { readonly secret: string; readonly clock: TimeSource; readonly secure?: boolean },
): Sessions {
  if (typeof o.secret !== "string" || o.secret.length < 32) {
    throw new InvalidArgumentError("sessionSecret", "must be at least 32 characters");
  }
  // The plugin signs and sets the cookie (POST /api/session, below); it does not parse every request's cookies
  // (`hook: false`): only the routes that act for a user read one cookie, the session's.
  app.decorateRequest("userId", "");
  // The process's Redis-synced clock, as for every other time decision of the sale.
  const now = () => o.clock.read()?.ms ?? Date.now();
  // The plugin's signature (HMAC-SHA256, base64 without padding, after the last dot), checked with a key
  // prepared once.
  const key = createSecretKey(Buffer.from(o.secret));
  const unsign = (signed: string): string | undefined => {
    const dot = signed.lastIndexOf(".");
    if (dot <= 0) return undefined;
    const value = signed.slice(0, dot);
    const want = Buffer.from(createHmac("sha256", key).update(value).digest("base64").replace(/=+$/, ""));
    const got = Buffer.from(signed.slice(dot + 1));
    return got.length === want.length && timingSafeEqual(got, want) ? value : undefined;
  };

  const read = (req: FastifyRequest): { userId: string; expiresAt: number } | undefined => {
    const raw = sessionCookie(req.headers.cookie);
    if (raw === undefined) return undefined;
    const value = unsign(raw);
    if (value === undefined) return undefined;
    const m = /^v1:([A-Za-z0-9._-]{1,64}):(\d{1,16})$/.exec(value);
    if (!m) return undefined;
    const expiresAt = Number(m[2]);
    return expiresAt > now() ? { userId: m[1]!, expiresAt } : undefined;
  };
  const signedIn = async (req: FastifyRequest): Promise<void> => {
    const s = read(req);
    if (s === undefined) throw new HttpError(401, "SIGN_IN_REQUIRED", "Sign in first.");
    req.userId = s.userId;
  };

  const routes = (app: FastifyInstance): void => {
    app.post<{ Body: { name?: string } }>(
      "/api/session",
      { schema: { body: signInBody } },
      async (req, reply) => {
        const userId = req.body?.name ?? `member-${randomBytes(4).toString("hex")}`;
        const expiresAt = Math.round(now()) + SESSION_TTL_MS;
        reply.setCookie(SESSION_COOKIE, sessionValue(userId, expiresAt), {
          signed: true,
          httpOnly: true,
          // Strict: a page of another site cannot make the browser send it (the API's POSTs are JSON only,
          // which a plain cross-site form cannot send either).
          sameSite: "strict",
          secure: o.secure ?? false,
          path: "/",
          maxAge: SESSION_TTL_MS / 1000,
        });
        return { userId, expiresAt };
      },
    );
    app.get("/api/session", { onRequest: signedIn }, async (req) => ({
      userId: req.userId,
      expiresAt: read(req)!.expiresAt,
    }));
    app.delete("/api/session", async (_req, reply) =>
      reply.clearCookie(SESSION_COOKIE, { path: "/" }).code(204).send(),
    );
  };
  // The cookie plugin is registered for these routes only: its onSend hook (which writes the cookies a
  // route set) would otherwise run on every reply of the app.
  void app.register(async (scope) => {
    await scope.register(fastifyCookie, { secret: o.secret, hook: false });
    routes(scope);
  });
  return { signedIn };
}
