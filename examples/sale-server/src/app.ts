// The sale server: every module of flash-sale-kit wired into one Fastify app. This file builds the shared
// objects and registers the routes (src/routes/, one file per part of the API).
//   buy = what is known in process → RateLimits → SaleGate.verify (the token, in process) → Inventory.reserve
//         under an id made from the token (which spends it) → 202
// Product reads go through ReadThroughCache + PenetrationGuard; orders are created by the order worker
// (worker.ts) from the stock event stream; unpaid orders are cancelled by the delayed outbox message.
import { randomBytes } from "node:crypto";
import Fastify, { type FastifyInstance } from "fastify";
import { InvalidArgumentError } from "flash-sale-kit";
import { PurchaseTokens, RedisCaptcha, type Challenge } from "flash-sale-kit/gate";
import type { WaitingRoom } from "flash-sale-kit/queue";
import { Inventory } from "flash-sale-kit/stock";
import { StaticSite } from "./assets.js";
import { Catalog } from "./catalog.js";
import { sampledRedisClock, type TimeSource } from "./clock.js";
import type { SaleContext } from "./context.js";
import { AJV_OPTIONS, installErrorHandling } from "./http.js";
import type { Infra } from "./infra.js";
import { createLimits, type LimitSettings } from "./limits.js";
import { SaleMetrics } from "./metrics.js";
import { adminRoutes } from "./routes/admin.js";
import { buyRoutes } from "./routes/buy.js";
import { challengeRoutes } from "./routes/challenge.js";
import { orderRoutes } from "./routes/orders.js";
import { pageRoutes } from "./routes/pages.js";
import { productRoutes } from "./routes/products.js";
import { roomRoutes } from "./routes/room.js";
import { statsRoutes } from "./routes/stats.js";
import { timeRoutes } from "./routes/time.js";
import { Sales, type RoomSettings, type SaleInput } from "./sales.js";
import { sessionRoutes } from "./session.js";
import { saleStats, type SaleStats } from "./stats.js";
import { createOrderPipeline, migratePipeline, type OrderPipeline } from "./worker.js";

export type { RoomSettings, SaleInput } from "./sales.js";
export type { SaleStats } from "./stats.js";

export interface SaleAppOptions {
  readonly infra: Infra;
  /** Key prefix of every Redis key the app writes. @default "sale" */
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
  /**
   * Signs the session cookies (at least 32 characters). @default random per process (set it when running
   * several processes: a cookie signed by one must be accepted by the others)
   */
  readonly sessionSecret?: string;
  /** Session cookies get the Secure attribute (the site is served over HTTPS). @default false */
  readonly secureCookies?: boolean;
  /**
   * A waiting room in front of every sale (routes/room.ts): the purchase token then requires the room's pass.
   * `secret` defaults to random per process (set it when running several processes). @default none
   */
  readonly waitingRoom?: Omit<RoomSettings, "secret"> & { readonly secret?: string };
  /** Replaces the CAPTCHA picture generator (the load test uses a fixed answer). */
  readonly captchaGenerate?: () => Challenge;
  /** Buy and CAPTCHA limits, [capacity, refill per second] each. */
  readonly limits?: LimitSettings;
  readonly logger?: boolean;
}

export interface SaleApp {
  readonly app: FastifyInstance;
  /** The key the admin routes require (the option, or a random one made at start). */
  readonly adminKey: string;
  readonly inventory: Inventory;
  readonly pipeline: OrderPipeline;
  readonly catalog: Catalog;
  readonly metrics: SaleMetrics;
  /** The rendered page, dashboard and hashed assets (what `--export` writes). */
  readonly site: StaticSite;
  /** This process's Redis-synced clock (what GET /api/time serves). */
  readonly clock: TimeSource;
  /**
   * The process's own timers that use Redis (hold sweeper, clock resync; not the order worker, see
   * `pipeline`). The load test pauses them while it counts what requests cost Redis.
   */
  readonly background: { pause(): Promise<void>; resume(): Promise<void> };
  createSale(input: SaleInput): Promise<void>;
  /** Whether this process knows the sale (a sale created by another process arrives within 2 s). */
  knowsSale(sku: string): boolean;
  stats(sku: string): Promise<SaleStats>;
  /** The sale's waiting room (with `waitingRoom`): an operator pauses, resumes or drains it. */
  room(sku: string): WaitingRoom | undefined;
  close(): Promise<void>;
}

const EVENTS_KEEP = 1_000_000;

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
  const paymentTimeoutMs = options.paymentTimeoutMs ?? 120_000;
  const redis = infra.redis;
  const app = Fastify({ logger: options.logger ?? false, ajv: AJV_OPTIONS });
  installErrorHandling(app);

  const metrics = await SaleMetrics.create(); // the library's adapter plus the example's own counters
  const inventory = new Inventory(redis, { prefix, subscriber: infra.connect(), eventsMaxLen: EVENTS_KEEP });
  const catalog = new Catalog(infra.db, redis, prefix);
  const site = new StaticSite();
  const clock = sampledRedisClock(redis);
  const tokens = new PurchaseTokens(redis, {
    secret: options.tokenSecret ?? randomBytes(32).toString("hex"),
    ttlMs: 60_000,
    prefix,
  });
  const captcha = new RedisCaptcha(redis, {
    prefix,
    ...(options.captchaGenerate && { generate: options.captchaGenerate }),
  });
  const sales = new Sales({
    redis,
    inventory,
    catalog,
    site,
    tokens,
    captcha,
    clock,
    // Holds outlive the payment window, so the timeout (not the hold) decides; the sweeper is a backstop.
    holdMs: paymentTimeoutMs + 60_000,
    prefix,
    ...(options.waitingRoom && {
      room: { ...options.waitingRoom, secret: options.waitingRoom.secret ?? randomBytes(32).toString("hex") },
    }),
    log: () => app.log,
  });
  const pipeline = createOrderPipeline({
    db: infra.db,
    redis,
    inventory,
    skus: () => sales.skus,
    paymentTimeoutMs,
    now: async () => (await clock.ready()).ms,
    onError: (err) => app.log.error(err),
  });
  await catalog.migrate();
  await migratePipeline(pipeline);
  await clock.ready();

  // Before the routes: the cookie plugin and the sign-in routes; every user route checks the session.
  const sessions = sessionRoutes(app, {
    secret: options.sessionSecret ?? randomBytes(32).toString("hex"),
    clock,
    secure: options.secureCookies ?? false,
  });
  const ctx: SaleContext = {
    redis,
    inventory,
    catalog,
    sales,
    captcha,
    pipeline,
    metrics,
    limits: createLimits(redis, prefix, options.limits ?? {}, options.trustedProxies ?? 0, metrics),
    clock,
    site,
    adminKey,
    trustedProxies: options.trustedProxies ?? 0,
    signedIn: sessions.signedIn,
    stats: async (sku) => {
      const room = await sales.roomStats(sku);
      const s = await saleStats(sku, {
        inventory,
        db: infra.db,
        ordersTable: pipeline.orders.table,
        metrics,
        catalog,
      });
      return room ? { ...s, room } : s;
    },
  };
  for (const routes of [
    pageRoutes,
    timeRoutes,
    productRoutes,
    roomRoutes,
    challengeRoutes,
    buyRoutes,
    orderRoutes,
    adminRoutes,
    statsRoutes,
  ])
    routes(app, ctx);

  await sales.start();
  const startSweeper = () => inventory.startHoldSweeper({ skus: () => sales.skus, intervalMs: 1000 });
  let sweeper: ReturnType<typeof startSweeper> | undefined = startSweeper();
  if (options.worker ?? true) await pipeline.start();
  const background = {
    async pause() {
      clock.pause();
      await sweeper?.stop();
      sweeper = undefined;
    },
    async resume() {
      clock.resume();
      sweeper ??= startSweeper();
    },
  };

  return {
    app,
    adminKey,
    inventory,
    pipeline,
    catalog,
    metrics,
    site,
    clock,
    background,
    createSale: (input) => sales.create(input),
    knowsSale: (sku) => sales.gate(sku) !== undefined,
    stats: ctx.stats,
    room: (sku) => sales.room(sku),
    async close() {
      sales.stop();
      clock.close();
      await app.close();
      await sweeper?.stop();
      await pipeline.stop();
      await inventory.close();
      catalog.filter.close();
      metrics.close();
    },
  };
}
