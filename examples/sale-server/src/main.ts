// `npm run example`: starts the sale server with a demo sale that opens shortly after launch.
//   REDIS_URL     the Redis to use (default: a private redis-server started here)
//   REDIS_AUTO_PIPELINING=0  the command connection without ioredis auto-pipelining (on by default: the
//                 commands of one event-loop turn leave in one write)
//   DATABASE_URL  the PostgreSQL to use (default: PGlite in memory; one process only)
//   PORT          HTTP port (default 3000; 0 picks a free one); HOST (default 127.0.0.1)
//   SALE_DELAY_MS how long after launch the demo sale opens (default 30000)
//   STOCK         demo units (default 100); PAYMENT_TIMEOUT_MS (default 120000)
//   DEMO_SALE=0   create no demo sale; SEED=1 re-creates it; PREFIX key prefix of the app (default "sale")
//   ADMIN_KEY     the x-admin-key the admin routes require (default: random, printed at start)
//   TOKEN_SECRET  the purchase tokens' HMAC secret; SESSION_SECRET the session cookies' (share both between
//                 the processes of one site; --processes shares its own random ones)
//   SECURE_COOKIES=1  session cookies only over HTTPS (behind a TLS-terminating proxy)
//   TRUST_PROXY   hop count or comma-separated CIDRs of trusted reverse proxies (default none)
//   LIMITS        JSON of the rate limits, e.g. {"api":[5000,2000]} (see src/limits.ts)
//   ORDER_WORKER=0  no order worker in the HTTP processes (run one with --worker-only)
//   ROOM_RATE     the waiting room's admissions per second (default 20); ROOM_BURST (default the rate),
//                 ROOM_MAX_ACTIVE (default no cap), ROOM_PASS_TTL_MS (default 120000), ROOM_SECRET (shared
//                 like TOKEN_SECRET); ROOM=off: no waiting room (the purchase token needs no pass)
//   CAPTCHA_ANSWER  load tests only: every CAPTCHA is a blank picture whose answer is this
//   --processes N run N server processes on one port (node:cluster; needs DATABASE_URL when N > 1)
//   --worker-only run only the order worker (stream consumer + outbox relay), no HTTP
//   --export DIR  write the static page, the dashboard and the hashed assets of the featured sale to DIR (for
//                 a CDN origin; the API stays on this server) and exit
//   --control     (for the load test and the benchmark, which start this file as a child process) report
//                 the URL over the IPC channel and take pause / resume / start-worker / knows-sale commands
import cluster from "node:cluster";
import { randomBytes } from "node:crypto";
import { exportSite } from "./assets.js";
import { createSaleApp, type SaleApp } from "./app.js";
import { controlChild, controlPrimary, type ControlReady } from "./control.js";
import { startInfra, startRedis } from "./infra.js";
import type { LimitSettings } from "./limits.js";

const env = process.env;
const argv = process.argv;
const flag = (name: string) => {
  const at = argv.indexOf(name);
  return at >= 0 ? (argv[at + 1] ?? "") : undefined;
};
const fail = (message: string): never => {
  console.error(message);
  process.exit(1);
};
const workerOnly = argv.includes("--worker-only");
const control = argv.includes("--control") && typeof process.send === "function";
const exportDir = flag("--export");
if (exportDir === "") fail("--export needs a directory: npm run example -- --export DIR");
const processes = Number(flag("--processes") ?? 1);
if (!Number.isInteger(processes) || processes < 1 || processes > 64)
  fail("--processes needs a whole number from 1 to 64: npm run example -- --processes 2");
if (workerOnly && (!env.REDIS_URL || !env.DATABASE_URL)) {
  // A worker on private servers of its own would see no sale and write no order: refuse instead.
  fail("--worker-only needs REDIS_URL and DATABASE_URL, the servers the sale server uses");
}

if (processes > 1 && cluster.isPrimary) await runPrimary();
else await runServer();

/**
 * The primary of `--processes N`: shares one Redis, one database, the secrets and the port with N server
 * processes (node:cluster hands the port's connections to them in turn), restarts one that dies, and relays
 * the control commands to all of them.
 */
async function runPrimary(): Promise<void> {
  if (!env.DATABASE_URL) {
    fail("--processes N (N > 1) needs DATABASE_URL: PGlite lives inside one process and cannot be shared");
  }
  if (workerOnly || exportDir !== undefined) fail("--processes goes with neither --worker-only nor --export");
  const redis = env.REDIS_URL ? undefined : await startRedis(env);
  const shared = {
    REDIS_URL: env.REDIS_URL ?? redis!.url,
    TOKEN_SECRET: env.TOKEN_SECRET ?? randomBytes(32).toString("hex"),
    SESSION_SECRET: env.SESSION_SECRET ?? randomBytes(32).toString("hex"),
    ROOM_SECRET: env.ROOM_SECRET ?? randomBytes(32).toString("hex"),
    ADMIN_KEY: env.ADMIN_KEY ?? randomBytes(16).toString("hex"),
  };
  let stopping = false;
  // Each slot's first "ready", from its process or from the one started in its place if it died first.
  const readyOf: ((m: ControlReady) => void)[] = [];
  const fork = (index: number) => {
    // Only the first process creates the demo sale; the others learn of it from the products table.
    const w = cluster.fork({ ...shared, FSK_PROCESS_INDEX: String(index) });
    w.on("message", (m: { type?: string } & ControlReady) => {
      if (m.type === "ready") readyOf[index]?.(m);
    });
    w.on("exit", (code, signal) => {
      if (stopping) return;
      console.error(`server process ${w.process.pid} exited (${signal ?? code}); starting another`);
      fork(index);
    });
    return w;
  };
  const ready = await Promise.all(
    Array.from(
      { length: processes },
      (_, i) =>
        new Promise<ControlReady>((resolve) => {
          readyOf[i] = resolve;
          fork(i);
        }),
    ),
  );
  const first = ready[0]!;
  if (control) controlPrimary(() => Object.values(cluster.workers ?? {}).filter((w) => w !== undefined));
  if (control) process.send!({ ...first, processes });
  else {
    console.log(
      `${processes} server processes on one port (node:cluster), pids ${ready.map((r) => r.pid).join(", ")}`,
    );
    printUrls(first.url, first.adminKey, !env.ADMIN_KEY);
  }
  const shutdown = async () => {
    stopping = true;
    const exits = Object.values(cluster.workers ?? {}).map(
      (w) => new Promise<void>((resolve) => (w!.isDead() ? resolve() : w!.once("exit", () => resolve()))),
    );
    for (const w of Object.values(cluster.workers ?? {})) w!.process.kill("SIGTERM");
    await Promise.all(exits);
    await redis?.stop();
    process.exit(0);
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
  if (control) process.once("disconnect", shutdown); // the load test went away
}

/** One server process: the whole app (alone, or one of the primary's N). */
async function runServer(): Promise<void> {
  const infra = await startInfra(env);
  const trust = env.TRUST_PROXY;
  const answer = env.CAPTCHA_ANSWER;
  if (answer && !control)
    console.warn(`CAPTCHA_ANSWER is set: every CAPTCHA's answer is "${answer}" (load tests only)`);
  const sale: SaleApp = await createSaleApp({
    infra,
    ...(env.PREFIX && { prefix: env.PREFIX }),
    paymentTimeoutMs: Number(env.PAYMENT_TIMEOUT_MS ?? 120_000),
    ...(env.ADMIN_KEY && { adminKey: env.ADMIN_KEY }),
    ...(env.TOKEN_SECRET && { tokenSecret: env.TOKEN_SECRET }),
    ...(env.SESSION_SECRET && { sessionSecret: env.SESSION_SECRET }),
    secureCookies: env.SECURE_COOKIES === "1",
    // On unless ROOM=off: an empty room admits at once, so only a busy sale makes visitors wait.
    ...(env.ROOM !== "off" && {
      waitingRoom: {
        admitPerSecond: Number(env.ROOM_RATE ?? 20),
        ...(env.ROOM_BURST && { burst: Number(env.ROOM_BURST) }),
        ...(env.ROOM_MAX_ACTIVE && { maxActive: Number(env.ROOM_MAX_ACTIVE) }),
        ...(env.ROOM_PASS_TTL_MS && { passTtlMs: Number(env.ROOM_PASS_TTL_MS) }),
        ...(env.ROOM_SECRET && { secret: env.ROOM_SECRET }),
      },
    }),
    ...(trust && {
      trustedProxies: /^\d+$/.test(trust) ? Number(trust) : trust.split(",").map((s) => s.trim()),
    }),
    ...(env.LIMITS && { limits: JSON.parse(env.LIMITS) as LimitSettings }),
    ...(answer && { captchaGenerate: () => ({ svg: "<svg xmlns='http://www.w3.org/2000/svg'/>", answer }) }),
    logger: env.LOG === "1",
    worker: exportDir === undefined && env.ORDER_WORKER !== "0",
  });

  const shutdown = async () => {
    try {
      await sale.close();
    } finally {
      await infra.close();
    }
    process.exit(0);
  };
  process.once("SIGINT", () => void shutdown());
  process.once("SIGTERM", () => void shutdown());
  // The parent went away (the load test, or the primary of --processes): stop too.
  if (control || cluster.isWorker) process.once("disconnect", () => void shutdown());

  if (workerOnly) {
    console.log(`order worker running (Redis ${infra.redisUrl}, database ${infra.databaseLabel})`);
    return;
  }
  // The demo sale is created once: a second server process, or a restart mid-sale, must not move a sale
  // that is already set up (SEED=1 re-creates it, opening SALE_DELAY_MS from now).
  const sku = env.SKU ?? "demo-phone";
  let startsAt: number | undefined;
  if (env.DEMO_SALE !== "0" && (env.FSK_PROCESS_INDEX ?? "0") === "0") {
    const existing = await sale.inventory.snapshot(sku);
    startsAt = existing?.startsAt ?? Date.now();
    if (existing === null || env.SEED === "1") {
      startsAt = Date.now() + Number(env.SALE_DELAY_MS ?? 30_000);
      await sale.createSale({
        sku,
        name: "Flash Phone 17 Pro",
        priceCents: 19_900,
        stock: Number(env.STOCK ?? 100),
        startsAt,
      });
    }
  }
  if (exportDir !== undefined) {
    const files = exportSite(sale.site, exportDir);
    console.log(`exported ${files.length} files to ${exportDir}: ${files.join(", ")}`);
    await shutdown();
  }
  const url = await sale.app.listen({ port: Number(env.PORT ?? 3000), host: env.HOST ?? "127.0.0.1" });
  if (control || cluster.isWorker) controlChild(sale, { url, adminKey: sale.adminKey, pid: process.pid });
  else printUrls(url, sale.adminKey, !env.ADMIN_KEY);
  if (!control && startsAt !== undefined) {
    console.log(`demo sale ${sku} opens ${new Date(startsAt).toISOString()}`);
    console.log(`Redis ${infra.redisUrl}, database ${infra.databaseLabel}`);
  }
}

function printUrls(url: string, adminKey: string, showKey: boolean): void {
  console.log(`flash sale at ${url}/`);
  console.log(`dashboard  ${url}/dashboard   metrics ${url}/metrics`);
  if (showKey) console.log(`admin routes: header x-admin-key: ${adminKey} (set ADMIN_KEY to choose it)`);
}
