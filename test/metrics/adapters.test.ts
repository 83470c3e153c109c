// The adapters of flash-sale-kit/metrics after a scripted sale: /metrics (served over HTTP, scraped and parsed)
// shows the exact counts of reservations, refusals by reason and by limit, and processed orders; the
// OpenTelemetry spans (in-memory exporter) have the documented names, attributes and parent links.
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { PGlite } from "@electric-sql/pglite";
import { Registry } from "prom-client";
import { context, trace, SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from "@opentelemetry/sdk-trace-base";
import { openTelemetryTracing, prometheusMetrics } from "../../src/metrics/index.js";
import { Inventory } from "../../src/stock/index.js";
import { RateLimits, TokenBucket } from "../../src/ratelimit/index.js";
import { SpinLock, LockTimeoutError } from "../../src/lock/index.js";
import { PostgresInbox, transaction } from "../../src/outbox/index.js";
import { InvalidArgumentError } from "../../src/errors.js";
import type { SqlClient } from "../../src/internal/sql.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";
import { parsePrometheus, value } from "./support.js";

let srv: PrivateRedis;
let redis: Redis;
let lite: PGlite;
let db: SqlClient;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
  lite = new PGlite();
  await lite.waitReady;
  db = lite as unknown as SqlClient;
});
afterAll(async () => {
  await srv?.stop();
  await lite?.close();
});

/** Serves the registry at /metrics on a random port and scrapes it once. */
async function scrape(registry: Registry): Promise<string> {
  const server = http.createServer(async (_req, res) => {
    res.setHeader("content-type", registry.contentType);
    res.end(await registry.metrics());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    const { port } = server.address() as { port: number };
    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(response.status).toBe(200);
    return await response.text();
  } finally {
    await new Promise((r) => server.close(r));
  }
}

/** The sale: 3 units, one per user; rate limits; a lock; three order messages (one delivered twice). */
async function scriptedSale(prefix: string): Promise<void> {
  const inventory = new Inventory(redis, { prefix });
  await inventory.setStock("sku", 3, { perUserLimit: 1 });
  const r1 = await inventory.reserve("sku", { userId: "u1", reservationId: "r1" });
  expect(r1.ok).toBe(true);
  expect((await inventory.reserve("sku", { userId: "u1", reservationId: "r1b" })).ok).toBe(false); // LIMIT
  expect((await inventory.reserve("sku", { userId: "u2", reservationId: "r2" })).ok).toBe(true);
  expect((await inventory.reserve("sku", { userId: "u3", reservationId: "r3" })).ok).toBe(true);
  expect((await inventory.reserve("sku", { userId: "u4" })).ok).toBe(false); // SOLD_OUT
  expect((await inventory.reserve("sku", { userId: "u5" })).ok).toBe(false); // SOLD_OUT
  await expect(inventory.reserve("sku", { userId: "" })).rejects.toBeInstanceOf(InvalidArgumentError);
  expect(await inventory.confirm("sku", "r1")).toEqual({ ok: true });
  expect(await inventory.release("sku", "r2")).toEqual({ ok: true });
  expect(await inventory.confirm("sku", "r2")).toEqual({ ok: false, reason: "RELEASED" });
  await inventory.close();

  const ip = new TokenBucket(redis, { capacity: 2, refillPerSecond: 0.001, prefix: `${prefix}ip` });
  const user = new TokenBucket(redis, { capacity: 10, refillPerSecond: 0.001, prefix: `${prefix}us` });
  const limits = new RateLimits<string>([
    { name: "ip", bucket: ip, key: () => "1.2.3.4" },
    { name: "user", bucket: user, key: (u) => u },
  ]);
  for (const u of ["a", "b", "c"]) await limits.check(u); // the third is refused by "ip"

  const lock = new SpinLock(redis, { prefix: `${prefix}lk`, ttlMs: 10_000, acquireTimeoutMs: 0 });
  const held = await lock.acquire("job");
  await expect(lock.acquire("job")).rejects.toBeInstanceOf(LockTimeoutError);
  await held.release();

  const inbox = new PostgresInbox(db, { table: `ib_${prefix.toLowerCase()}` });
  await inbox.migrate();
  for (const id of ["m1", "m2", "m1", "m3"]) {
    await transaction(db, (tx) =>
      inbox.processOnce(tx, { consumer: "orders", messageId: id }, async () => {}),
    );
  }
}

describe("prometheusMetrics", () => {
  it("counts a scripted sale exactly: reservations, refusals by reason and by limit, orders", async () => {
    const registry = new Registry();
    const metrics = await prometheusMetrics({ registry });
    const prefix = randomPrefix();
    try {
      await scriptedSale(prefix);
      const samples = parsePrometheus(await scrape(registry));
      const ops = (operation: string, outcome: string, reason = "") =>
        value(samples, "flash_sale_operations_total", { operation, outcome, reason });
      expect(ops("stock.reserve", "ok")).toBe(3);
      expect(ops("stock.reserve", "refused", "LIMIT_REACHED")).toBe(1);
      expect(ops("stock.reserve", "refused", "SOLD_OUT")).toBe(2);
      expect(ops("stock.reserve", "error", "InvalidArgumentError")).toBe(1);
      expect(ops("stock.confirm", "ok")).toBe(1);
      expect(ops("stock.confirm", "refused", "RELEASED")).toBe(1);
      expect(ops("stock.release", "ok")).toBe(1);
      expect(ops("ratelimit.check", "ok")).toBe(2);
      expect(ops("ratelimit.check", "refused", "ip")).toBe(1);
      expect(ops("lock.acquire", "ok")).toBe(1);
      expect(ops("lock.acquire", "error", "LockTimeoutError")).toBe(1);
      expect(ops("outbox.process", "ok", "processed")).toBe(3);
      expect(ops("outbox.process", "ok", "duplicate")).toBe(1);
      // Latency histograms: one observation per operation, by outcome.
      const count = (operation: string, outcome: string) =>
        value(samples, "flash_sale_operation_duration_seconds_count", { operation, outcome });
      expect(count("stock.reserve", "ok")).toBe(3);
      expect(count("stock.reserve", "refused")).toBe(3);
      expect(value(samples, "flash_sale_lock_wait_seconds_count", { lock: "spin" })).toBe(1);
    } finally {
      metrics.close();
      await redis.eval(
        "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end",
        0,
        `${prefix}*`,
      );
    }
    // Closed: the registry no longer holds the metrics and nothing more is counted.
    expect((await registry.metrics()).trim()).toBe("");
  });

  it("refuses bad options with InvalidArgumentError", async () => {
    await expect(prometheusMetrics({ prefix: "9bad" })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(prometheusMetrics({ buckets: [] })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(prometheusMetrics({ registy: new Registry() } as never)).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
  });
});

describe("openTelemetryTracing", () => {
  it("records spans with the documented names, attributes and parent links", async () => {
    const manager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(manager);
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const tracer = provider.getTracer("test");
    const tracing = await openTelemetryTracing({ tracer });
    const prefix = randomPrefix();
    try {
      const inventory = new Inventory(redis, { prefix, batch: false });
      await inventory.setStock("sku", 1);
      const bucket = new TokenBucket(redis, {
        capacity: 5,
        refillPerSecond: 1,
        prefix: `${prefix}tb`,
        batch: false,
      });
      await tracer.startActiveSpan("POST /buy", async (request) => {
        await bucket.take("u1");
        await inventory.reserve("sku", { userId: "u1", reservationId: "r1" });
        await inventory.reserve("sku", { userId: "u2" });
        request.end();
      });
      await expect(inventory.reserve("sku", { userId: "u3", quantity: -1 })).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
      await inventory.close();
    } finally {
      tracing.close();
      context.disable();
      await redis.eval(
        "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end",
        0,
        `${prefix}*`,
      );
    }
    const spans = exporter.getFinishedSpans();
    const byName = (n: string) => spans.filter((s) => s.name === n);
    const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
    const [request] = byName("POST /buy");
    const [take] = byName("ratelimit.take");
    const reserves = byName("stock.reserve");
    expect(request).toBeDefined();
    expect(take).toBeDefined();
    expect(reserves).toHaveLength(3);
    // Our operations are children of the span active when they were called.
    expect(parentOf(take!)).toBe(request!.spanContext().spanId);
    expect(parentOf(reserves[0]!)).toBe(request!.spanContext().spanId);
    expect(parentOf(reserves[1]!)).toBe(request!.spanContext().spanId);
    expect(parentOf(reserves[2]!)).toBeUndefined();
    expect(take!.kind).toBe(SpanKind.INTERNAL);
    expect(take!.attributes).toMatchObject({
      "flash_sale.operation": "ratelimit.take",
      "db.system.name": "redis",
      "flash_sale.ratelimit.key": "u1",
      "flash_sale.ratelimit.cost": 1,
      "flash_sale.outcome": "ok",
    });
    expect(reserves[0]!.attributes).toMatchObject({
      "flash_sale.operation": "stock.reserve",
      "db.system.name": "redis",
      "flash_sale.sku": "sku",
      "user.id": "u1",
      "flash_sale.quantity": 1,
      "flash_sale.reservation_id": "r1",
      "flash_sale.outcome": "ok",
    });
    expect(reserves[1]!.attributes).toMatchObject({
      "flash_sale.outcome": "refused",
      "flash_sale.reason": "SOLD_OUT",
    });
    expect(reserves[2]!.status.code).toBe(SpanStatusCode.ERROR);
    expect(reserves[2]!.attributes["error.type"]).toBe("InvalidArgumentError");
    // The Redis commands an operation sends (unbatched) are its children.
    const commands = spans.filter(
      (s) => s.kind === SpanKind.CLIENT && s.attributes["db.system.name"] === "redis",
    );
    const underTake = commands.filter((s) => parentOf(s) === take!.spanContext().spanId);
    const underReserve = commands.filter((s) => parentOf(s) === reserves[0]!.spanContext().spanId);
    expect(underTake.length).toBeGreaterThanOrEqual(1);
    expect(underReserve.length).toBeGreaterThanOrEqual(1);
    expect(underReserve.some((s) => /^EVAL(SHA)?$/.test(s.name))).toBe(true);
    // Nothing more is recorded once closed.
    const before = exporter.getFinishedSpans().length;
    await bucket_take_after_close(redis, prefix);
    expect(exporter.getFinishedSpans().length).toBe(before);
    trace.disable();
  });
});

async function bucket_take_after_close(client: Redis, prefix: string): Promise<void> {
  const b = new TokenBucket(client, { capacity: 5, refillPerSecond: 1, prefix: `${prefix}after` });
  await b.take("u1");
  await client.del(b.keys("u1").bucket);
}
