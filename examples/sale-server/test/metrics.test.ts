// GET /metrics after a scripted sale: the library's adapter (flash-sale-kit/metrics) counts reservations,
// refusals by reason and by limit, orders written by the worker and payments; the example's own counters
// count only what the library cannot see (in-process refusals, the purchase token, HTTP requests). The text
// is scraped and parsed, and the counts asserted exactly; the dashboard's /api/stats reads the same numbers.
// Its own file: the diagnostics channels are the process's, so no other app may run in this process.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSaleApp, type SaleApp } from "../src/app.js";
import { reservationIdOf } from "../src/context.js";
import type { ProcessMetrics } from "../src/metrics.js";
import { startInfra, type Infra } from "../src/infra.js";
import { asUsers, randomPrefix } from "./support.js";

let infra: Infra;
let sale: SaleApp;
const SKU = "watch";
beforeAll(async () => {
  infra = await startInfra({});
  sale = await createSaleApp({
    infra,
    prefix: randomPrefix("met"),
    captchaGenerate: () => ({ svg: "<svg/>", answer: "7" }),
    // Two buys per user, no refill within the test: a third buy is refused by the "user" limit.
    limits: { user: [2, 0.001] },
  });
  await sale.createSale({ sku: SKU, name: "Watch", priceCents: 100, stock: 3, startsAt: Date.now() - 1000 });
}, 60_000);
afterAll(async () => {
  await sale?.close();
  await infra?.close();
});

/** One sample of the Prometheus text format: `name{a="x",b="y"} value`. */
interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/**
 * Parses the text exposition format (what Prometheus scrapes). Hand-written in a few lines: the test reads
 * only counter and gauge samples, and prom-client writes one sample per line with quoted label values.
 */
function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`not a sample: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? "").matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g))
      labels[k!] = v!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

async function scrape(): Promise<Sample[]> {
  const res = await sale.app.inject({ method: "GET", url: "/metrics" });
  expect(res.statusCode).toBe(200);
  expect(res.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
  return parse(res.body);
}

/** The sum of the samples named `name` whose labels include `labels` (0 when there are none). */
const value = (samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number =>
  samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);

const ops = (samples: readonly Sample[], labels: Record<string, string>) =>
  value(samples, "flash_sale_operations_total", labels);

const { call } = asUsers(() => sale.app);

async function token(user: string, answer = "7") {
  const c = await call("GET", `/api/captcha?sku=${SKU}`, user);
  expect(c.status).toBe(200);
  return call("POST", "/api/purchase-token", user, { sku: SKU, captchaId: c.body.id, answer });
}

async function buy(user: string, t?: string) {
  const tok = t ?? String((await token(user)).body.token);
  const r = await call("POST", "/api/buy", user, { sku: SKU, token: tok });
  const code = r.status === 202 ? "RESERVED" : (r.body.error as { code: string }).code;
  return { code, reservationId: r.body.reservationId as string | undefined, token: tok };
}

/** Polls `f` until it returns a value that is not undefined, or fails after `ms`. */
async function until<T>(what: string, ms: number, f: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("GET /metrics after a scripted sale", () => {
  it("counts reservations, refusals by reason and by limit, and orders exactly", async () => {
    // 3 units, one per member; the "user" rate limit allows 2 buys.
    const a = await buy("member-a");
    expect(a.code).toBe("RESERVED");
    expect((await buy("member-b")).code).toBe("RESERVED");
    expect((await buy("member-a")).code).toBe("LIMIT_REACHED"); // by Redis: not sold out, so not in process
    expect((await buy("member-a")).code).toBe("RATE_LIMITED"); // the "user" limit: a third buy
    // The gate: a wrong CAPTCHA answer and a guest (members only).
    expect((await token("member-c", "8")).status).toBe(403);
    expect((await token("guest-1")).body).toMatchObject({ error: { code: "NOT_ELIGIBLE" } });
    // A spent token used by someone else: refused by SaleGate.redeem, counted by the example.
    expect((await buy("member-mallory", a.token)).code).toBe("BAD_TOKEN");
    // Tokens for d and e before the sell-out (after it, a CAPTCHA request is refused in process).
    const td = String((await token("member-d")).body.token);
    const te = String((await token("member-e")).body.token);
    expect((await buy("member-c")).code).toBe("RESERVED"); // the last unit
    // d: refused SOLD_OUT by Redis or, if this process already knows, in process.
    expect((await buy("member-d", td)).code).toBe("SOLD_OUT");
    // e: once the process knows the SKU is sold out (and every id it made), refused in process.
    await until("the in-process sold-out answer", 10_000, async () =>
      sale.inventory.knownRefusal(SKU, { userId: "member-e", reservationId: reservationIdOf(te) }) ===
      "SOLD_OUT"
        ? true
        : undefined,
    );
    expect((await buy("member-e", te)).code).toBe("SOLD_OUT");

    // The order worker turns the 3 reservations into 3 orders (PostgresInbox.processOnce, once each).
    let m = await until("3 orders", 20_000, async () => {
      const s = await scrape();
      return ops(s, { operation: "outbox.process", outcome: "ok", reason: "processed" }) >= 3 ? s : undefined;
    });
    expect(ops(m, { operation: "outbox.process", reason: "processed" })).toBe(3);
    expect(ops(m, { operation: "outbox.process", reason: "duplicate" })).toBe(0);
    expect(ops(m, { operation: "outbox.process", outcome: "error" })).toBe(0);
    // Each order's payment timeout waits in the outbox (due in 120 s): the relay's gauges, at its next round.
    m = await until("3 pending outbox messages", 10_000, async () => {
      const s = await scrape();
      return value(s, "flash_sale_outbox_pending_messages") === 3 ? s : undefined;
    });
    expect(value(m, "flash_sale_outbox_dead_messages")).toBe(0);
    // a pays.
    expect((await call("POST", `/api/orders/${a.reservationId}/pay`, "member-a", {})).status).toBe(200);
    m = await scrape();

    // The library's adapter.
    expect(ops(m, { operation: "stock.reserve", outcome: "ok" })).toBe(3);
    expect(ops(m, { operation: "stock.reserve", outcome: "refused", reason: "LIMIT_REACHED" })).toBe(1);
    expect(ops(m, { operation: "stock.reserve", outcome: "error" })).toBe(0);
    expect(ops(m, { operation: "ratelimit.check", outcome: "refused", reason: "user" })).toBe(1);
    expect(ops(m, { operation: "ratelimit.check", outcome: "refused" })).toBe(1);
    expect(ops(m, { operation: "gate.admit", outcome: "refused", reason: "NOT_ELIGIBLE" })).toBe(1);
    expect(ops(m, { operation: "gate.admit", outcome: "refused", reason: "CAPTCHA_FAILED" })).toBe(1);
    expect(ops(m, { operation: "gate.admit", outcome: "refused" })).toBe(2);
    expect(ops(m, { operation: "stock.confirm", outcome: "ok" })).toBe(1);
    // The example's own: refusals the library never saw.
    const soldOutHere = value(m, "sale_refused_total", { step: "in-process", reason: "SOLD_OUT" });
    const soldOutRedis = ops(m, { operation: "stock.reserve", outcome: "refused", reason: "SOLD_OUT" });
    expect(soldOutHere).toBeGreaterThanOrEqual(1); // e's
    expect(soldOutHere + soldOutRedis).toBe(2); // d's and e's, each counted once, wherever it was answered
    expect(value(m, "sale_refused_total", { step: "token", reason: "WRONG_USER" })).toBe(1);
    expect(value(m, "sale_refused_total")).toBe(1 + soldOutHere);
    expect(value(m, "sale_requests_total", { route: "buy", outcome: "RESERVED" })).toBe(3);
    expect(value(m, "sale_requests_total", { route: "buy", outcome: "RATE_LIMITED" })).toBe(1);
    // Latency: one observation per reservation attempt that reached Redis.
    expect(value(m, "flash_sale_operation_duration_seconds_count", { operation: "stock.reserve" })).toBe(
      4 + soldOutRedis,
    );

    // The dashboard reads the same numbers.
    const stats = (await call("GET", `/api/stats?sku=${SKU}`, "x")).body as {
      stock: Record<string, number>;
      orders: Record<string, number>;
      metrics: ProcessMetrics;
    };
    expect(stats.stock).toMatchObject({ initial: 3, available: 0, held: 2, confirmed: 1 });
    expect(stats.orders).toMatchObject({ total: 3, paid: 1, pending: 2 });
    expect(stats.metrics.reservations).toBe(3);
    expect(stats.metrics.orders).toEqual({ written: 3, duplicates: 0 });
    expect(stats.metrics.refused).toEqual({
      "stock: LIMIT_REACHED": 1,
      "rate limit: user": 1,
      "gate: CAPTCHA_FAILED": 1,
      "gate: NOT_ELIGIBLE": 1,
      "token: WRONG_USER": 1,
      "in process: SOLD_OUT": soldOutHere,
      ...(soldOutRedis > 0 && { "stock: SOLD_OUT": soldOutRedis }),
    });
    expect(stats.metrics.confirmed).toBe(1);
    expect(stats.metrics.outbox).toMatchObject({ pending: 3, dead: 0 });
  });
});
