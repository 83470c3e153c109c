// `npm run example`: starts the sale server with a demo sale that opens shortly after launch.
//   REDIS_URL     the Redis to use (default: a private redis-server started here)
//   DATABASE_URL  the PostgreSQL to use (default: PGlite in memory)
//   PORT          HTTP port (default 3000); HOST (default 127.0.0.1)
//   SALE_DELAY_MS how long after launch the demo sale opens (default 30000)
//   STOCK         demo units (default 100); PAYMENT_TIMEOUT_MS (default 120000)
//   ADMIN_KEY     the x-admin-key the admin routes require (default: random, printed at start)
//   TOKEN_SECRET  the purchase tokens' HMAC secret; share it between processes
//   TRUST_PROXY   hop count or comma-separated CIDRs of trusted reverse proxies (default none)
//   --worker-only run only the order worker (stream consumer + outbox relay), no HTTP
//   --export DIR  write the static page, the dashboard and the hashed assets of the featured sale to DIR (for
//                 a CDN origin; the API stays on this server) and exit
import { exportSite } from "./assets.js";
import { createSaleApp } from "./app.js";
import { startInfra } from "./infra.js";

const env = process.env;
const workerOnly = process.argv.includes("--worker-only");
const exportAt = process.argv.indexOf("--export");
const exportDir = exportAt >= 0 ? process.argv[exportAt + 1] : undefined;
if (exportAt >= 0 && !exportDir) {
  console.error("--export needs a directory: npm run example -- --export DIR");
  process.exit(1);
}
if (workerOnly && (!env.REDIS_URL || !env.DATABASE_URL)) {
  // A worker on private servers of its own would see no sale and write no order: refuse instead.
  console.error("--worker-only needs REDIS_URL and DATABASE_URL, the servers the sale server uses");
  process.exit(1);
}
const infra = await startInfra(env);
const trust = env.TRUST_PROXY;
const sale = await createSaleApp({
  infra,
  paymentTimeoutMs: Number(env.PAYMENT_TIMEOUT_MS ?? 120_000),
  ...(env.ADMIN_KEY && { adminKey: env.ADMIN_KEY }),
  ...(env.TOKEN_SECRET && { tokenSecret: env.TOKEN_SECRET }),
  ...(trust && {
    trustedProxies: /^\d+$/.test(trust) ? Number(trust) : trust.split(",").map((s) => s.trim()),
  }),
  logger: env.LOG === "1",
  worker: !exportDir,
});

const shutdown = async () => {
  try {
    await sale.close();
  } finally {
    await infra.close();
  }
  process.exit(0);
};
process.once("SIGINT", shutdown);
process.once("SIGTERM", shutdown);

if (workerOnly) {
  console.log(`order worker running (Redis ${infra.redisUrl}, database ${infra.databaseLabel})`);
} else {
  // The demo sale is created once: a second server process, or a restart mid-sale, must not move a sale
  // that is already set up (SEED=1 re-creates it, opening SALE_DELAY_MS from now).
  const sku = env.SKU ?? "demo-phone";
  const existing = await sale.inventory.snapshot(sku);
  let startsAt = existing?.startsAt ?? Date.now();
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
  if (exportDir) {
    const files = exportSite(sale.site, exportDir);
    console.log(`exported ${files.length} files to ${exportDir}: ${files.join(", ")}`);
    await shutdown();
  }
  const port = Number(env.PORT ?? 3000);
  const host = env.HOST ?? "127.0.0.1";
  await sale.app.listen({ port, host });
  console.log(`flash sale at http://${host}:${port}/ (opens ${new Date(startsAt).toISOString()})`);
  console.log(`dashboard  http://${host}:${port}/dashboard   metrics http://${host}:${port}/metrics`);
  console.log(`Redis ${infra.redisUrl}, database ${infra.databaseLabel}`);
  if (!env.ADMIN_KEY)
    console.log(`admin routes: header x-admin-key: ${sale.adminKey} (set ADMIN_KEY to choose it)`);
}
