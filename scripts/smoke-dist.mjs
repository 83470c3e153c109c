// After `npm run build`: loads the package by name (ESM import and CJS require) through its exports map and
// checks that every subpath exposes its public names.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const expected = {
  "flash-sale-kit": [
    "Inventory",
    "PostgresInventory",
    "SpinLock",
    "QuorumLock",
    "RedisBloomFilter",
    "TokenBucket",
    "SaleGate",
    "WaitingRoom",
    "PostgresOutbox",
    "FlashSaleError",
    "UNLIMITED",
  ],
  "flash-sale-kit/stock": ["Inventory", "PostgresInventory", "UNLIMITED"],
  "flash-sale-kit/lock": ["SpinLock", "QuorumLock", "LockTimeoutError", "LockLostError"],
  "flash-sale-kit/cache": ["RedisBloomFilter", "PenetrationGuard", "ReadThroughCache"],
  "flash-sale-kit/ratelimit": ["TokenBucket", "RateLimits", "clientIp"],
  "flash-sale-kit/gate": ["SaleGate", "PurchaseTokens", "RedisCaptcha"],
  "flash-sale-kit/queue": ["WaitingRoom"],
  "flash-sale-kit/outbox": [
    "PostgresOutbox",
    "OutboxRelay",
    "PostgresInbox",
    "RedisStreamPublisher",
    "RedisStreamConsumer",
  ],
  "flash-sale-kit/orders": ["PostgresOrders", "readStockEvent"],
  "flash-sale-kit/metrics": ["channels", "events", "prometheusMetrics", "openTelemetryTracing"],
};
let failed = 0;
for (const [spec, names] of Object.entries(expected)) {
  const esm = await import(spec);
  const cjs = require(spec);
  for (const name of names) {
    for (const [kind, mod] of [
      ["esm", esm],
      ["cjs", cjs],
    ]) {
      if (mod[name] === undefined) {
        console.error(`${spec} (${kind}) lacks ${name}`);
        failed++;
      }
    }
  }
}
// Both builds in one process: an error made by one is an instance of the other's classes.
{
  const esm = await import("flash-sale-kit");
  const cjs = require("flash-sale-kit");
  const checks = [
    [new cjs.InvalidArgumentError("sku", "is bad"), esm.InvalidArgumentError, true],
    [new cjs.InvalidArgumentError("sku", "is bad"), esm.FlashSaleError, true],
    [new esm.ConflictError("RESERVATION_CONFLICT", "taken"), cjs.ConflictError, true],
    [new esm.ConflictError("RESERVATION_CONFLICT", "taken"), cjs.InvalidArgumentError, false],
    [new Error("plain"), cjs.FlashSaleError, false],
  ];
  for (const [err, cls, want] of checks) {
    if (err instanceof cls !== want) {
      console.error(`${err.name} instanceof ${cls.name} across builds should be ${want}`);
      failed++;
    }
  }
}
if (failed) process.exit(1);
console.log(`dist exports ok: ${Object.keys(expected).length} entry points, ESM and CJS`);
