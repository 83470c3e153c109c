// The sale server: every module of flash-sale-kit wired into one Fastify app.
//   buy = RateLimits (user, IP, API) → SaleGate.redeem (single-use purchase token) → Inventory.reserve → 202
// Product reads go through ReadThroughCache + PenetrationGuard; orders are created by the order worker
// (worker.ts) from the stock event stream; unpaid orders are cancelled by the delayed outbox message.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { ConflictError, FlashSaleError, InvalidArgumentError } from "flash-sale-kit";
// TEMPORARY: library internals, to be replaced by Fastify schemas (issue 11).
import { redisTimeMs } from "../../../src/internal/time.js";
import { sqlRows } from "../../../src/internal/sql.js";
import { validateId, validateInt, validateOptionalInt } from "../../../src/internal/validate.js";
import { PurchaseTokens, RedisCaptcha, SaleGate, type Challenge } from "flash-sale-kit/gate";
import { clientIp, fastifyRateLimitHook, ipKey, RateLimits, TokenBucket } from "flash-sale-kit/ratelimit";
import { Inventory, MAX_QUANTITY, UNLIMITED } from "flash-sale-kit/stock";
import { CACHE_HTML, CACHE_IMMUTABLE, StaticSite, type Asset } from "./assets.js";
import { Catalog, type Product } from "./catalog.js";
import type { Infra } from "./infra.js";
import { SaleMetrics } from "./metrics.js";
import { createOrderPipeline, migratePipeline, type OrderPipeline } from "./worker.js";

export interface SaleAppOptions {
  readonly infra: Infra;
  /** Key prefix of every Redis key the app writes. */
  readonly prefix?: string;
  /** How long an order waits for payment. @default 120000 */
  readonly paymentTimeoutMs?: number;
  /** Run the order worker in this process. @default true */
  readonly worker?: boolean;
  /** Trusted reverse proxies in front of the app (hop count or CIDRs) for the client IP. @default 0 */
  readonly trustedProxies?: number | readonly string[];
  /** Required in the `x-admin-key` header of the admin routes. @default random, see `SaleApp.adminKey` */
  readonly adminKey?: string;
  /** Secret of the purchase tokens. @default random per process (set it when running several processes) */
  readonly tokenSecret?: string;
  /** Replaces the CAPTCHA picture generator (the load test uses a fixed answer). */
  readonly captchaGenerate?: () => Challenge;
  /** Per-user, per-IP and whole-API buy limits (capacity, refill per second). */
  readonly limits?: {
    readonly user?: readonly [number, number];
    readonly ip?: readonly [number, number];
    readonly api?: readonly [number, number];
    /** CAPTCHA and purchase-token requests per user and per IP: [capacity, refill per second] each. */
    readonly challengeUser?: readonly [number, number];
    readonly challengeIp?: readonly [number, number];
  };
  readonly logger?: boolean;
}

export interface SaleInput {
  readonly sku: string;
  readonly name: string;
  readonly priceCents: number;
  readonly stock: number;
  readonly startsAt: number;
  readonly endsAt?: number;
  readonly perUserLimit?: number;
}

export interface SaleApp {
  readonly app: FastifyInstance;
  /** The key the admin routes require (the option, or a random one made at start). */
  readonly adminKey: string;
  readonly inventory: Inventory;
  readonly pipeline: OrderPipeline;
  readonly catalog: Catalog;
  readonly metrics: SaleMetrics;
  createSale(input: SaleInput): Promise<void>;
  stats(sku: string): Promise<SaleStats>;
  close(): Promise<void>;
}

export interface SaleStats {
  readonly sku: string;
  readonly stock: { initial: number; available: number; held: number; confirmed: number };
  readonly orders: { total: number; pending: number; paid: number; cancelled: number };
  readonly duplicateUsers: number;
  readonly rejected: Record<string, number>;
  readonly productLoads: number;
}

const EVENTS_KEEP = 1_000_000;
/** The largest epoch ms a JavaScript Date holds. */
const MAX_DATE_MS = 8.64e15;

export async function createSaleApp(options: SaleAppOptions): Promise<SaleApp> {
  const { infra } = options;
  if (
    options.adminKey !== undefined &&
    (typeof options.adminKey !== "string" || options.adminKey.length < 16)
  ) {
    // An empty key would match a request that sends none.
    throw new InvalidArgumentError("adminKey", "must be at least 16 characters");
  }
  const adminKey = options.adminKey ?? randomBytes(16).toString("hex");
  const prefix = options.prefix ?? "sale";
  const redis = infra.redis;
  const metrics = new SaleMetrics();
  const subscriber = infra.connect();
  const inventory = new Inventory(redis, { prefix, subscriber, eventsMaxLen: EVENTS_KEEP });
  const catalog = new Catalog(infra.db, redis, prefix);
  const site = new StaticSite();
  const gates = new Map<string, SaleGate<undefined>>();
  /** What each registered sale was registered with, to notice a sale re-created elsewhere. */
  const registered = new Map<string, string>();
  const sales = new Map<string, Omit<SaleInput, "endsAt"> & { readonly endsAt?: number | undefined }>();
  const settingsOf = (s: Omit<SaleInput, "endsAt"> & { readonly endsAt?: number | undefined }): string =>
    JSON.stringify([s.startsAt, s.endsAt ?? null, s.name, s.priceCents, s.stock]);
  const skus: string[] = [];
  const tokens = new PurchaseTokens(redis, {
    secret: options.tokenSecret ?? randomBytes(32).toString("hex"),
    ttlMs: 60_000,
    prefix,
  });
  const captcha = new RedisCaptcha(redis, {
    prefix,
    ...(options.captchaGenerate && { generate: options.captchaGenerate }),
  });
  const pipeline = createOrderPipeline({
    db: infra.db,
    redis,
    inventory,
    skus: () => skus,
    paymentTimeoutMs: options.paymentTimeoutMs ?? 120_000,
    onError: (err) => app.log.error(err),
  });

  await catalog.migrate();
  await migratePipeline(pipeline);

  // Three limits checked as one: a request refused by one consumes nothing from the others.
  const [userCap, userRate] = options.limits?.user ?? [3, 0.2];
  const [ipCap, ipRate] = options.limits?.ip ?? [20, 5];
  const [apiCap, apiRate] = options.limits?.api ?? [5000, 2000];
  const trust = { trustedProxies: options.trustedProxies ?? 0 };
  const bucket = (name: string, capacity: number, refillPerSecond: number) =>
    new TokenBucket(redis, { capacity, refillPerSecond, prefix: `${prefix}-${name}` });
  const limits = new RateLimits<FastifyRequest>([
    { name: "user", bucket: bucket("user", userCap, userRate), key: (req) => userOf(req) ?? "anonymous" },
    { name: "ip", bucket: bucket("ip", ipCap, ipRate), key: (req) => ipKey(clientIp(req.raw, trust)) },
    { name: "api", bucket: bucket("api", apiCap, apiRate), key: () => "buy" },
  ]);

  // The CAPTCHA steps have limits of their own: without them a bot skips the picture and guesses blindly
  // (a short sum has few answers), one fresh challenge after another, each one a Redis key.
  const [chUserCap, chUserRate] = options.limits?.challengeUser ?? [10, 0.5];
  const [chIpCap, chIpRate] = options.limits?.challengeIp ?? [60, 10];
  const challengeLimits = new RateLimits<FastifyRequest>([
    {
      name: "user",
      bucket: bucket("challenge-user", chUserCap, chUserRate),
      key: (req) => userOf(req) ?? "anonymous",
    },
    {
      name: "ip",
      bucket: bucket("challenge-ip", chIpCap, chIpRate),
      key: (req) => ipKey(clientIp(req.raw, trust)),
    },
  ]);
  const challengeLimit = fastifyRateLimitHook<FastifyRequest>({
    limits: challengeLimits,
    failMode: "closed",
    timeoutMs: 500,
    body: (result) => {
      metrics.reject(`rate limit: challenge ${result.rejectedBy}`);
      return { reason: "RATE_LIMITED", rejectedBy: result.rejectedBy, retryAfterMs: result.retryAfterMs };
    },
  });

  const app = Fastify({ logger: options.logger ?? false });

  // ---- errors: bad input is a 400 with the library's code; faults a 503 -------------------------------
  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof FlashSaleError) {
      const status = err.code === "INVALID_ARGUMENT" ? 400 : err instanceof ConflictError ? 409 : 503;
      return reply.code(status).send({ reason: err.code, message: err.message });
    }
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    if (status >= 500) app.log.error(err);
    return reply.code(status).send({ reason: "ERROR", message: (err as Error).message });
  });

  // ---- static page: CDN-cacheable HTML (short max-age + ETag), immutable hashed assets -----------------
  const sendStatic = (req: FastifyRequest, reply: FastifyReply, asset: Asset | undefined, cache: string) => {
    if (!asset) return reply.code(404).send({ reason: "NOT_FOUND" });
    reply.header("cache-control", cache).header("etag", asset.etag).type(asset.type);
    if (req.headers["if-none-match"] === asset.etag) return reply.code(304).send();
    return reply.send(asset.body);
  };
  app.get("/", (req, reply) => sendStatic(req, reply, site.pages.get("/"), CACHE_HTML));
  app.get("/dashboard", (req, reply) => sendStatic(req, reply, site.pages.get("/dashboard"), "no-cache"));
  app.get("/assets/:file", (req, reply) =>
    sendStatic(
      req,
      reply,
      site.assets.get(`/assets/${(req.params as { file: string }).file}`),
      CACHE_IMMUTABLE,
    ),
  );

  // ---- API -------------------------------------------------------------------------------------------
  app.get("/api/time", async () => ({ now: await redisTimeMs(redis) }));

  app.get("/api/products/:sku", async (req, reply) => {
    const sku = (req.params as { sku: string }).sku;
    const product = await catalog.get(sku);
    if (!product) return reply.code(404).send({ reason: "UNKNOWN_SKU" });
    const snap = await inventory.snapshot(sku);
    return { ...product, available: snap?.available ?? 0 };
  });

  app.get("/api/captcha", { preHandler: challengeLimit }, async (req, reply) => {
    const userId = requireUser(req);
    const c = await captcha.create({ userId });
    metrics.requests.inc({ route: "captcha", outcome: "ok" });
    // The picture only: the question is not in the page as text.
    return reply.send({ id: c.id, svg: c.svg, ttlMs: c.ttlMs });
  });

  app.post("/api/purchase-token", { preHandler: challengeLimit }, async (req, reply) => {
    const userId = requireUser(req);
    const body = (req.body ?? {}) as { sku?: unknown; captchaId?: unknown; answer?: unknown };
    const gate = gateOf(text(body.sku));
    if (!gate) return reply.code(404).send({ reason: "UNKNOWN_SKU" });
    const a = await gate.admit({
      userId,
      sku: gate.saleId,
      captcha: { id: text(body.captchaId), answer: text(body.answer) },
      remoteIp: clientIp(req.raw, trust),
    });
    metrics.requests.inc({ route: "purchase-token", outcome: a.ok ? "ok" : a.reason });
    if (!a.ok) {
      metrics.reject(a.reason);
      return reply.code(a.reason === "NOT_STARTED" || a.reason === "ENDED" ? 409 : 403).send(a);
    }
    return { token: a.token, expiresAt: a.expiresAt };
  });

  app.post(
    "/api/buy",
    {
      preHandler: fastifyRateLimitHook<FastifyRequest>({
        limits,
        failMode: "closed",
        timeoutMs: 500,
        body: (result) => {
          metrics.reject(`rate limit: ${result.rejectedBy}`);
          metrics.requests.inc({ route: "buy", outcome: "RATE_LIMITED" });
          return { reason: "RATE_LIMITED", rejectedBy: result.rejectedBy, retryAfterMs: result.retryAfterMs };
        },
      }),
    },
    async (req, reply) => {
      const started = process.hrtime.bigint();
      const userId = requireUser(req);
      const body = (req.body ?? {}) as { sku?: unknown; token?: unknown };
      const gate = gateOf(text(body.sku));
      if (!gate) return reply.code(404).send({ reason: "UNKNOWN_SKU" });
      const done = (status: number, outcome: string, payload: object) => {
        metrics.requests.inc({ route: "buy", outcome });
        metrics.buyLatency.observe({ outcome }, Number(process.hrtime.bigint() - started) / 1e9);
        return reply.code(status).send(payload);
      };
      const token = text(body.token);
      const t = await gate.redeem(token, { userId, sku: gate.saleId });
      // The reservation id is derived from the token: a buy retried after a lost reply (its token already
      // spent) is answered with the first outcome instead of a refusal, and can never reserve twice.
      const reservationId = `t-${createHash("sha256").update(token).digest("hex").slice(0, 40)}`;
      if (!t.ok) {
        // A spent token only replays a reservation it made; it never buys a new attempt without a CAPTCHA.
        const prior = t.reason === "USED" ? await inventory.reservation(gate.saleId, reservationId) : null;
        if (prior !== null && prior.userId === userId) {
          return done(202, "REPLAYED", { reservationId, remaining: prior.remaining });
        }
        metrics.reject(`token: ${t.reason}`);
        return done(403, t.reason, { reason: "BAD_TOKEN", detail: t.reason });
      }
      const r = await inventory.reserve(gate.saleId, { userId, reservationId });
      if (!r.ok) {
        metrics.reject(r.reason);
        return done(409, r.reason, { reason: r.reason });
      }
      return done(202, "RESERVED", { reservationId: r.reservationId, remaining: r.remaining });
    },
  );

  app.get("/api/orders/:id", async (req, reply) => {
    const id = (req.params as { id: string }).id;
    validateId("orderId", id);
    const order = await pipeline.orders.get(id);
    if (!order || order.userId !== userOf(req)) return reply.code(404).send({ reason: "UNKNOWN_ORDER" });
    return { id: order.id, sku: order.sku, status: order.status, paymentDueAt: order.paymentDueAt };
  });

  app.post("/api/orders/:id/pay", async (req, reply) => {
    const id = (req.params as { id: string }).id;
    validateId("orderId", id);
    const order = await pipeline.orders.get(id);
    if (!order || order.userId !== userOf(req)) return reply.code(404).send({ reason: "UNKNOWN_ORDER" });
    // A real shop charges the card here; the demo's payment always succeeds.
    const r = await pipeline.orders.pay(id);
    metrics.requests.inc({ route: "pay", outcome: r.ok ? "ok" : r.reason });
    return r.ok ? { status: "paid" } : reply.code(409).send(r);
  });

  // ---- admin -----------------------------------------------------------------------------------------
  const admin = async (req: FastifyRequest, reply: FastifyReply) => {
    const given = Buffer.from(text(req.headers["x-admin-key"]));
    const want = Buffer.from(adminKey);
    if (given.length !== want.length || !timingSafeEqual(given, want)) {
      return reply.code(401).send({ reason: "ADMIN_KEY_REQUIRED" });
    }
  };
  app.post("/api/admin/sales", { preHandler: admin }, async (req, reply) => {
    await createSale(req.body as SaleInput);
    return reply.code(201).send({ ok: true });
  });
  app.post("/api/admin/prewarm", { preHandler: admin }, async () => {
    const products = await Promise.all(skus.map((s) => catalog.get(s)));
    const entries = products.filter((p): p is Product => p !== undefined).map((p) => [p.sku, p] as const);
    return { prewarmed: await catalog.cache.prewarm(entries) };
  });
  // Read-only counters for the dashboard (no admin key: they reveal nothing a buyer could abuse).
  app.get("/api/stats", async (req, reply) => {
    const sku = text((req.query as { sku?: unknown }).sku) || (skus[0] ?? "");
    if (!gates.has(sku)) return reply.code(404).send({ reason: "UNKNOWN_SKU" });
    return stats(sku);
  });
  app.get("/metrics", async (_req, reply) =>
    reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
  );

  // ---- helpers ---------------------------------------------------------------------------------------
  /** A request field as text: anything but a string (an object, a number) is treated as missing. */
  function text(v: unknown): string {
    return typeof v === "string" ? v : "";
  }
  function userOf(req: FastifyRequest): string | undefined {
    const u = req.headers["x-user-id"];
    return typeof u === "string" && u.length > 0 ? u : undefined;
  }
  function requireUser(req: FastifyRequest): string {
    const u = userOf(req);
    validateId("x-user-id", u);
    return u;
  }
  function gateOf(sku: string): SaleGate<undefined> | undefined {
    return gates.get(sku);
  }

  async function createSale(input: SaleInput): Promise<void> {
    validateId("sku", input?.sku);
    if (typeof input.name !== "string" || input.name.length === 0 || input.name.length > 200) {
      throw new InvalidArgumentError("name", "must be a string of 1 to 200 characters");
    }
    if (/[\u0000-\u001f\u007f]/.test(input.name)) {
      throw new InvalidArgumentError("name", "must not contain control characters");
    }
    if (!Number.isSafeInteger(input.priceCents) || input.priceCents < 0 || input.priceCents > 2_147_483_647) {
      throw new InvalidArgumentError("priceCents", "must be an integer from 0 to 2147483647");
    }
    // The stock settings too are checked before anything is written.
    validateInt("stock", input.stock, { min: UNLIMITED, max: MAX_QUANTITY });
    validateOptionalInt("perUserLimit", input.perUserLimit, { min: 1, max: MAX_QUANTITY });
    // Within JavaScript's Date range (the page renders them as dates).
    validateInt("startsAt", input.startsAt, { min: 0, max: MAX_DATE_MS - 1 });
    validateOptionalInt("endsAt", input.endsAt, { min: input.startsAt + 1, max: MAX_DATE_MS });
    await catalog.upsert({ ...input, endsAt: input.endsAt ?? null });
    await inventory.setStock(input.sku, input.stock, {
      perUserLimit: input.perUserLimit ?? 1,
      startsAt: input.startsAt,
      ...(input.endsAt !== undefined && { endsAt: input.endsAt }),
      // Holds outlive the payment window, so the timeout (not the hold) decides; the sweeper is a backstop.
      holdMs: (options.paymentTimeoutMs ?? 120_000) + 60_000,
    });
    register(input);
  }

  /** Makes a sale known to this process: its gate, its event stream for the worker, its page. */
  function register(input: Omit<SaleInput, "endsAt"> & { readonly endsAt?: number | undefined }): void {
    gates.set(
      input.sku,
      new SaleGate(redis, {
        saleId: input.sku,
        startsAt: input.startsAt,
        ...(input.endsAt !== undefined && { endsAt: input.endsAt }),
        tokens,
        captcha,
        // Business gating: members only (the demo calls everyone whose id starts with "guest" a guest).
        eligible: ({ userId }) => !userId.startsWith("guest") || "MEMBERS_ONLY",
      }),
    );
    if (!skus.includes(input.sku)) skus.push(input.sku);
    registered.set(input.sku, settingsOf(input));
    sales.set(input.sku, input);
    renderFeatured();
  }

  /**
   * The page at `/` shows one sale, the same in every process whatever order they learned of the sales in:
   * the one that starts last (then the greatest SKU), the newest sale of a demo.
   */
  function renderFeatured(): void {
    let featured: (typeof sales extends Map<string, infer S> ? S : never) | undefined;
    for (const s of sales.values()) {
      if (
        !featured ||
        s.startsAt > featured.startsAt ||
        (s.startsAt === featured.startsAt && s.sku > featured.sku)
      )
        featured = s;
    }
    if (featured)
      site.render({ ...featured, ...(featured.endsAt !== undefined && { endsAt: featured.endsAt }) });
  }

  /**
   * Picks up sales created or changed by other processes (the products table is the list of sales): a sale
   * re-created with another window or name is registered again, so its page and gate follow. One bad row is
   * reported and skipped, never blocking the others (or the start of a process).
   */
  async function syncSales(): Promise<void> {
    for (const p of await catalog.all()) {
      try {
        const input = { ...p, endsAt: p.endsAt ?? undefined };
        if (registered.get(p.sku) !== settingsOf(input)) register(input);
      } catch (err) {
        app.log.error(err);
      }
    }
  }
  await syncSales();
  // The catalog's Bloom filter lives in Redis only: after a Redis restart it is empty while the products
  // table is not. Every process adds the known products once at start (adds are idempotent).
  await catalog.cache.prewarm((await catalog.all()).map((p) => [p.sku, p] as const));
  const syncTimer = setInterval(() => void syncSales().catch((err: unknown) => app.log.error(err)), 2000);
  syncTimer.unref();

  async function stats(sku: string): Promise<SaleStats> {
    const snap = await inventory.snapshot(sku);
    const [o] = await sqlRows<Record<string, number>>(
      infra.db,
      `SELECT count(*)::int AS total,
         count(*) FILTER (WHERE status = 'pending')::int AS pending,
         count(*) FILTER (WHERE status = 'paid')::int AS paid,
         count(*) FILTER (WHERE status = 'cancelled')::int AS cancelled,
         (SELECT count(*)::int FROM (SELECT user_id FROM ${pipeline.orders.table} WHERE sku = $1
            GROUP BY user_id HAVING count(*) > 1) d) AS dup
       FROM ${pipeline.orders.table} WHERE sku = $1`,
      [sku],
    );
    return {
      sku,
      stock: {
        initial: snap?.initial ?? 0,
        available: snap?.available ?? 0,
        held: snap?.held ?? 0,
        confirmed: snap?.confirmed ?? 0,
      },
      orders: {
        total: Number(o?.total ?? 0),
        pending: Number(o?.pending ?? 0),
        paid: Number(o?.paid ?? 0),
        cancelled: Number(o?.cancelled ?? 0),
      },
      duplicateUsers: Number(o?.dup ?? 0),
      rejected: { ...metrics.rejectedBy },
      productLoads: catalog.loads,
    };
  }

  const sweeper = inventory.startHoldSweeper({ skus: () => skus, intervalMs: 1000 });
  if (options.worker ?? true) await pipeline.start();

  return {
    app,
    adminKey,
    inventory,
    pipeline,
    catalog,
    metrics,
    createSale,
    stats,
    async close() {
      clearInterval(syncTimer);
      await app.close();
      await sweeper.stop();
      await pipeline.stop();
      await inventory.close();
      catalog.filter.close();
    },
  };
}
