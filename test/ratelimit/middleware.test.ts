// The Fastify plugin and the Express middleware over real HTTP: headers, the JSON 429, and fail-open /
// fail-closed when a private redis-server is paused (slower than the timeout) or stopped.
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import express, { type Request } from "express";
import Fastify, { type FastifyRequest } from "fastify";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  RateLimits,
  RateLimitTimeoutError,
  TokenBucket,
  expressRateLimit,
  fastifyRateLimit,
  fastifyRateLimitHook,
  type RateLimitMiddlewareOptions,
} from "../../src/ratelimit/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

interface Server {
  readonly url: string;
  close(): Promise<void>;
}

type Headers = { readonly headers: { readonly [name: string]: string | readonly string[] | undefined } };
type Options = Omit<RateLimitMiddlewareOptions<Headers>, "limits">;

/** The same limits in both frameworks: per user (x-user header, 2, refilling 0.5/s) and per API (100). */
function makeLimits<Req extends Headers>(redis: Redis): RateLimits<Req> {
  const tag = randomPrefix();
  return new RateLimits<Req>([
    {
      name: "user",
      bucket: new TokenBucket(redis, { capacity: 2, refillPerSecond: 0.5, prefix: `${tag}u` }),
      key: (r) => r.headers["x-user"] as string | undefined,
    },
    {
      name: "api",
      bucket: new TokenBucket(redis, { capacity: 100, refillPerSecond: 0.01, prefix: `${tag}a` }),
      key: () => "api",
    },
  ]);
}

async function fastifyServer(redis: Redis, options: Options): Promise<Server> {
  const app = Fastify();
  const limits = makeLimits<FastifyRequest>(redis);
  await app.register(fastifyRateLimit({ ...options, limits }));
  app.get("/", async () => ({ ok: true }));
  await app.listen({ port: 0, host: "127.0.0.1" });
  const { port } = app.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, close: () => app.close() };
}

async function expressServer(redis: Redis, options: Options): Promise<Server> {
  const app = express();
  const limits = makeLimits<Request>(redis);
  app.use(expressRateLimit({ ...options, limits }));
  app.get("/", (_req, res) => {
    res.json({ ok: true });
  });
  const server = app.listen(0, "127.0.0.1");
  await new Promise<void>((r) => server.once("listening", () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const frameworks = [
  ["Fastify plugin", fastifyServer],
  ["Express middleware", expressServer],
] as const;

async function get(url: string, user?: string) {
  const t0 = performance.now();
  const res = await fetch(url, { headers: user ? { "x-user": user } : {} });
  const body = (await res.json()) as Record<string, unknown>;
  return { status: res.status, headers: res.headers, body, ms: performance.now() - t0 };
}

describe.each(frameworks)("%s", (_name, serve) => {
  let srv: PrivateRedis;
  let redis: Redis;
  beforeAll(async () => {
    srv = await startRedis();
    redis = srv.client();
  });
  afterAll(async () => srv?.stop());

  it("passes with RateLimit-Policy and RateLimit headers, then answers a JSON 429 with Retry-After", async () => {
    const server = await serve(redis, {});
    try {
      const a = await get(server.url, "u1");
      expect(a.status).toBe(200);
      expect(a.body).toEqual({ ok: true });
      expect(a.headers.get("ratelimit-policy")).toBe('"user";q=2;w=4, "api";q=100;w=10000');
      expect(a.headers.get("ratelimit")).toMatch(/^"user";r=1;t=[12], "api";r=99;t=100$/);
      expect((await get(server.url, "u1")).status).toBe(200);
      const c = await get(server.url, "u1");
      expect(c.status).toBe(429);
      expect(c.headers.get("content-type")).toMatch(/^application\/json/);
      expect(c.body).toMatchObject({ error: "Too Many Requests", limit: "user" });
      expect(c.body.retryAfterMs).toBeGreaterThan(1000);
      expect(c.body.retryAfterMs).toBeLessThanOrEqual(2000);
      expect(c.headers.get("retry-after")).toBe("2");
      // Refused in process (the second reply showed the user's bucket empty): only that limit is known.
      expect(c.headers.get("ratelimit")).toMatch(/^"user";r=0;t=\d$/);
      // The refused request took nothing from the API limit; another user still passes.
      const d = await get(server.url, "u2");
      expect(d.status).toBe(200);
      expect(d.headers.get("ratelimit")).toMatch(/"api";r=97;/);
      // No user header: the user limit is skipped, the API limit applies.
      const e = await get(server.url);
      expect(e.status).toBe(200);
      expect(e.headers.get("ratelimit")).toMatch(/^"api";r=96;t=400$/);
    } finally {
      await server.close();
    }
  });

  it("headers can be turned off and the 429 body replaced", async () => {
    const server = await serve(redis, {
      headers: false,
      body: (r) => ({ code: "SLOW_DOWN", by: r.rejectedBy }),
    });
    try {
      const a = await get(server.url, "quiet");
      expect(a.headers.get("ratelimit")).toBeNull();
      await get(server.url, "quiet");
      const c = await get(server.url, "quiet");
      expect(c.status).toBe(429);
      expect(c.body).toEqual({ code: "SLOW_DOWN", by: "user" });
      expect(c.headers.get("retry-after")).toBe("2");
    } finally {
      await server.close();
    }
  });

  describe.each([
    ["open", 200],
    ["closed", 503],
  ] as const)("fail-%s", (mode, status) => {
    it(`Redis slower than the timeout: ${status} within the timeout`, async () => {
      const errors: unknown[] = [];
      const server = await serve(redis, { failMode: mode, timeoutMs: 150, onError: (e) => errors.push(e) });
      const admin = srv.client();
      try {
        expect((await get(server.url, "slow")).status).toBe(200); // connected and scripts loaded
        await admin.client("PAUSE", 1500, "ALL");
        const r = await get(server.url, "slow");
        expect(r.status).toBe(status);
        expect(r.ms).toBeGreaterThanOrEqual(140);
        expect(r.ms).toBeLessThan(150 + 400);
        expect(r.headers.get("ratelimit")).toBeNull();
        if (mode === "closed") {
          expect(r.body).toMatchObject({ error: "Service Unavailable" });
          expect(r.headers.get("retry-after")).toBe("1");
        }
        expect(errors[0]).toBeInstanceOf(RateLimitTimeoutError);
      } finally {
        await admin.client("UNPAUSE");
        await server.close();
      }
    });
  });
});

describe.each(frameworks)("%s with Redis stopped", (_name, serve) => {
  let srv: PrivateRedis;
  beforeAll(async () => {
    srv = await startRedis();
  });
  afterAll(async () => srv?.stop());

  it("fail-open lets requests through and fail-closed answers 503, each within the timeout", async () => {
    // One client as an ops team would configure it (fail fast while down), one with ioredis defaults
    // (commands wait in the offline queue): both must answer within the timeout.
    const clients = [srv.client({ enableOfflineQueue: false, maxRetriesPerRequest: 0 }), srv.client()];
    for (const c of clients) c.on("error", () => {}); // reconnect noise while the server is down
    // Without an offline queue, commands sent before the connection is up fail at once: wait for it.
    await Promise.all(clients.map((c) => (c.status === "ready" ? undefined : once(c, "ready"))));
    const servers: Server[] = [];
    for (const c of clients) {
      servers.push(await serve(c, { failMode: "open", timeoutMs: 200 }));
      servers.push(await serve(c, { failMode: "closed", timeoutMs: 200 }));
    }
    try {
      for (const s of servers) expect((await get(s.url, "u")).status).toBe(200);
      await srv.server.stop();
      for (let round = 0; round < 3; round++) {
        for (const [i, s] of servers.entries()) {
          const r = await get(s.url, "u");
          expect(r.status).toBe(i % 2 === 0 ? 200 : 503);
          expect(r.ms).toBeLessThan(200 + 400);
        }
      }
    } finally {
      for (const s of servers) await s.close();
    }
  });
});

describe("Fastify hook", () => {
  let srv: PrivateRedis;
  beforeAll(async () => {
    srv = await startRedis();
  });
  afterAll(async () => srv?.stop());

  it("limits one route through its onRequest option and leaves the others alone", async () => {
    const redis = srv.client();
    const app = Fastify();
    const limits = makeLimits<FastifyRequest>(redis);
    app.get("/limited", { onRequest: fastifyRateLimitHook({ limits }) }, async () => ({ ok: true }));
    app.get("/free", async () => ({ ok: true }));
    await app.listen({ port: 0, host: "127.0.0.1" });
    const { port } = app.server.address() as AddressInfo;
    try {
      const base = `http://127.0.0.1:${port}`;
      const codes = [];
      for (let i = 0; i < 3; i++) codes.push((await get(`${base}/limited`, "h")).status);
      expect(codes).toEqual([200, 200, 429]);
      expect((await get(`${base}/free`, "h")).status).toBe(200);
      expect((await get(`${base}/free`, "h")).headers.get("ratelimit")).toBeNull();
    } finally {
      await app.close();
    }
  });

  it("surfaces misuse instead of failing open", async () => {
    const redis = srv.client();
    const app = Fastify();
    const b = new TokenBucket(redis, { capacity: 2, refillPerSecond: 1, prefix: randomPrefix() });
    const limits = new RateLimits<FastifyRequest>([{ name: "bad", bucket: b, key: () => "has space" }]);
    await app.register(fastifyRateLimit({ limits, failMode: "open" }));
    app.get("/", async () => ({ ok: true }));
    const res = await app.inject({ method: "GET", url: "/" });
    expect(res.statusCode).toBe(500);
    await app.close();
  });

  it("a key function that throws is an error of the app, not an outage: fail-open does not let it through", async () => {
    const redis = srv.client();
    const b = new TokenBucket(redis, { capacity: 2, refillPerSecond: 1, prefix: randomPrefix() });
    const limits = new RateLimits<{ user?: { id: string } }>([
      { name: "user", bucket: b, key: (req) => req.user!.id }, // an anonymous request: TypeError
    ]);
    const fastify = Fastify();
    await fastify.register(fastifyRateLimit({ limits: limits as never, failMode: "open" }));
    let reached = false;
    fastify.get("/", async () => ((reached = true), { ok: true }));
    expect((await fastify.inject({ method: "GET", url: "/" })).statusCode).toBe(500);
    expect(reached).toBe(false);
    await fastify.close();

    const app = express();
    const errors: unknown[] = [];
    app.use(expressRateLimit({ limits: limits as never, failMode: "open" }));
    app.get("/", (_req, res) => void ((reached = true), res.json({ ok: true })));
    app.use((err: unknown, _req: Request, res: express.Response, _next: express.NextFunction) => {
      errors.push(err);
      res.status(500).json({ error: String(err) });
    });
    const server = app.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    try {
      expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(500);
      expect(reached).toBe(false);
      expect(errors[0]).toBeInstanceOf(TypeError);
    } finally {
      server.close();
    }
  });

  it("express: a 429 body that throws goes to the error handler instead of crashing the process", async () => {
    const redis = srv.client();
    const b = new TokenBucket(redis, { capacity: 1, refillPerSecond: 0.001, prefix: randomPrefix() });
    const limits = new RateLimits<Request>([{ name: "api", bucket: b, key: () => "all" }]);
    const app = express();
    const errors: unknown[] = [];
    app.use(
      expressRateLimit({
        limits,
        body: () => {
          throw new Error("body template broke");
        },
      }),
    );
    app.get("/", (_req, res) => void res.json({ ok: true }));
    app.use((err: unknown, _req: Request, res: express.Response, _next: express.NextFunction) => {
      errors.push(err);
      res.status(500).end();
    });
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => void unhandled.push(e);
    process.on("unhandledRejection", onUnhandled);
    const server = app.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    try {
      expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(500);
      expect(String(errors[0])).toMatch(/body template broke/);
      expect(unhandled).toEqual([]);
    } finally {
      server.close();
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("refuses bad options", () => {
    const redis = srv.client();
    const limits = makeLimits<FastifyRequest>(redis);
    expect(() => fastifyRateLimit({ limits, failMode: "maybe" as "open" })).toThrow(/failMode/);
    expect(() => expressRateLimit({ limits, timeoutMs: 0 })).toThrow(/timeoutMs/);
    expect(() => expressRateLimit({ limits: {} as RateLimits<Request> })).toThrow(/limits/);
  });
});
