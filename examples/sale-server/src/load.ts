// `npm run load`: N buyers against M units through the whole buy path (CAPTCHA → purchase token → buy), then
// pays some orders, waits for the payment timeout to cancel the rest, and checks the books: exactly M orders,
// nothing oversold, no user with two orders, and available + held + confirmed = initial. Writes an HTML report.
//   REQUESTS (5000) USERS (2000) UNITS (100) CONCURRENCY (100) PAY_FRACTION (0.3) PAYMENT_TIMEOUT_MS (20000: longer than the buy phase, so no unit is sold twice)
//   REDIS_URL / DATABASE_URL as for the server (default: private redis-server and PGlite)
//   REPORT (examples/sale-server/load-report.html)
import { writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { createSaleApp, type SaleApp, type SaleStats } from "./app.js";
import { startInfra, type Infra } from "./infra.js";

export interface LoadOptions {
  readonly requests: number;
  readonly users: number;
  readonly units: number;
  readonly concurrency: number;
  readonly payFraction: number;
  readonly paymentTimeoutMs: number;
  readonly env?: NodeJS.ProcessEnv;
  readonly prefix?: string;
}

export interface LoadResult {
  readonly options: LoadOptions;
  readonly durationMs: number;
  readonly throughput: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly outcomes: Record<string, number>;
  readonly reserved: number;
  readonly paid: number;
  readonly before: SaleStats;
  readonly after: SaleStats;
  readonly oversold: number;
  readonly conservation: boolean;
  /** [ms since start, latency ms] of every buy request. */
  readonly samples: [number, number][];
  readonly ok: boolean;
}

const ANSWER = "42";
const SKU_BASE = "load-phone";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const infra: Infra = await startInfra(o.env ?? process.env);
  let sale: SaleApp | undefined;
  try {
    sale = await createSaleApp({
      infra,
      prefix: o.prefix ?? `load${Date.now().toString(36)}`,
      paymentTimeoutMs: o.paymentTimeoutMs,
      // The load comes through a (simulated) proxy on loopback that sets X-Forwarded-For per buyer.
      trustedProxies: ["127.0.0.1/32", "::1/128"],
      // A fixed CAPTCHA answer stands in for humans solving pictures.
      captchaGenerate: () => ({ svg: "<svg xmlns='http://www.w3.org/2000/svg'/>", answer: ANSWER }),
    });
    const app = sale;
    // A SKU of its own per run: orders of an earlier run on the same database must not enter the books.
    const SKU = `${SKU_BASE}-${Date.now().toString(36)}`;
    const base = await app.app.listen({ port: 0, host: "127.0.0.1" });
    const startsAt = Date.now() + 1000;
    await app.createSale({ sku: SKU, name: "Load Phone", priceCents: 100, stock: o.units, startsAt });
    await sleep(Math.max(0, startsAt - Date.now()) + 200);

    // node:http with keep-alive: the global fetch costs several times more CPU per request, and the load
    // generator shares the machine with the server.
    const agent = new Agent({ keepAlive: true, maxSockets: o.concurrency });
    const url = new URL(base);
    const call = (user: number, path: string, body?: object) =>
      new Promise<{ status: number; body: Record<string, string> }>((resolve, reject) => {
        const payload = body ? JSON.stringify(body) : undefined;
        const req = request(
          {
            agent,
            host: url.hostname,
            port: url.port,
            path,
            method: payload ? "POST" : "GET",
            headers: {
              "x-user-id": `member-${user}`,
              "x-forwarded-for": `10.${(user >> 8) & 255}.${user & 255}.7`,
              ...(payload && {
                "content-type": "application/json",
                "content-length": Buffer.byteLength(payload),
              }),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => {
              try {
                resolve({
                  status: res.statusCode ?? 0,
                  body: JSON.parse(Buffer.concat(chunks).toString() || "{}"),
                });
              } catch (err) {
                reject(err);
              }
            });
          },
        );
        req.on("error", reject);
        req.end(payload);
      });

    const outcomes: Record<string, number> = {};
    const samples: [number, number][] = [];
    const reservations = new Map<string, number>(); // reservationId → user
    const t0 = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < o.requests) {
        const i = next++;
        const user = i % o.users;
        const started = performance.now();
        let outcome: string;
        const c = await call(user, `/api/captcha`);
        const t = await call(user, "/api/purchase-token", { sku: SKU, captchaId: c.body.id, answer: ANSWER });
        if (t.status !== 200) outcome = `token ${t.body.reason}`;
        else {
          const b = await call(user, "/api/buy", { sku: SKU, token: t.body.token });
          outcome =
            b.status === 202
              ? "RESERVED"
              : `${b.status} ${b.body.rejectedBy ?? b.body.detail ?? b.body.reason ?? b.body.error}`;
          if (b.status === 202) reservations.set(String(b.body.reservationId), user);
        }
        const ended = performance.now();
        samples.push([ended - t0, ended - started]);
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: o.concurrency }, worker));
    const durationMs = performance.now() - t0;

    // The worker turns every reservation into an order.
    const before = await until("every order", 60_000, async () => {
      const s = await app.stats(SKU);
      return s.orders.total >= reservations.size ? s : undefined;
    });
    // Some buyers pay; the payment timeout cancels the others and returns their units.
    const toPay = [...reservations].slice(0, Math.round(reservations.size * o.payFraction));
    let paid = 0;
    for (const [id, user] of toPay)
      if ((await call(user, `/api/orders/${id}/pay`, {})).status === 200) paid++;
    const after = await until("the payment timeout", o.paymentTimeoutMs + 60_000, async () => {
      const s = await app.stats(SKU);
      return s.orders.pending === 0 && s.stock.held === 0 ? s : undefined;
    });

    agent.destroy();
    const lat = samples.map(([, l]) => l).sort((a, b) => a - b);
    const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? 0;
    const oversold = Math.max(0, before.orders.total - o.units, after.stock.confirmed - o.units);
    const { initial, available, held, confirmed } = after.stock;
    const conservation = available >= 0 && available + held + confirmed === initial;
    // A buy phase longer than the payment timeout lets cancelled units be sold again: the run proves nothing.
    const ok =
      durationMs < o.paymentTimeoutMs &&
      before.orders.total === Math.min(o.units, reservations.size) &&
      reservations.size === o.units &&
      oversold === 0 &&
      after.duplicateUsers === 0 &&
      conservation &&
      after.orders.paid === paid &&
      after.stock.confirmed === paid &&
      after.orders.cancelled === reservations.size - paid;
    return {
      options: o,
      durationMs,
      throughput: (o.requests / durationMs) * 1000,
      p50Ms: pct(0.5),
      p99Ms: pct(0.99),
      outcomes,
      reserved: reservations.size,
      paid,
      before,
      after,
      oversold,
      conservation,
      samples,
      ok,
    };
  } finally {
    await sale?.close();
    await infra.close();
  }
}

export function summary(r: LoadResult): string {
  const o = r.options;
  return [
    `${o.requests} buy attempts from ${o.users} users against ${o.units} units, ${o.concurrency} at a time`,
    `  ${r.throughput.toFixed(0)} attempts/s (captcha + token + buy each), p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms`,
    `  outcomes: ${Object.entries(r.outcomes)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}`,
    `  orders: ${r.before.orders.total} created, ${r.paid} paid, ${r.after.orders.cancelled} cancelled by the payment timeout`,
    `  oversold: ${r.oversold}; users with two orders: ${r.after.duplicateUsers}`,
    `  stock after: initial ${r.after.stock.initial} = available ${r.after.stock.available} + held ${r.after.stock.held} + confirmed ${r.after.stock.confirmed}: ${r.conservation ? "holds" : "BROKEN"}`,
    ...(r.durationMs >= o.paymentTimeoutMs
      ? [
          `  the buy phase (${(r.durationMs / 1000).toFixed(1)} s) outlasted the payment timeout: raise PAYMENT_TIMEOUT_MS`,
        ]
      : []),
    `  verdict: ${r.ok ? "OK" : "FAILED"}`,
  ].join("\n");
}

/** A self-contained HTML report: latency over time (SVG scatter) and outcome counts. */
export function htmlReport(r: LoadResult): string {
  const w = 900;
  const h = 300;
  const maxT = Math.max(1, ...r.samples.map(([t]) => t));
  const maxL = Math.max(1, r.p99Ms * 1.5);
  const dots = r.samples
    .map(
      ([t, l]) =>
        `<circle cx="${(40 + (t / maxT) * (w - 50)).toFixed(1)}" cy="${(h - 20 - (Math.min(l, maxL) / maxL) * (h - 40)).toFixed(1)}" r="1.2"/>`,
    )
    .join("");
  const axis = [0, 0.25, 0.5, 0.75, 1]
    .map(
      (f) => `<text x="2" y="${(h - 20 - f * (h - 40) + 4).toFixed(0)}">${(f * maxL).toFixed(0)} ms</text>`,
    )
    .join("");
  const rows = Object.entries(r.outcomes)
    .map(([k, v]) => `<tr><td>${k.replace(/</g, "&lt;")}</td><td>${v}</td></tr>`)
    .join("");
  return `<!doctype html><meta charset="utf-8"><title>flash-sale-kit load report</title>
<style>body{font:15px system-ui;margin:2rem;max-width:60rem}svg{background:#fbfaf8;border-radius:8px}circle{fill:#d7263d;opacity:.5}text{font-size:11px;fill:#888}td{padding:2px 12px}pre{background:#f4f1ec;padding:1rem}</style>
<h1>Load report</h1><pre>${summary(r)}</pre>
<h2>Latency of each buy attempt over the run</h2>
<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">${axis}${dots}<text x="${w - 120}" y="${h - 4}">${(maxT / 1000).toFixed(1)} s</text></svg>
<h2>Outcomes</h2><table>${rows}</table>`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const env = process.env;
  const r = await runLoad({
    requests: Number(env.REQUESTS ?? 5000),
    users: Number(env.USERS ?? 2000),
    units: Number(env.UNITS ?? 100),
    concurrency: Number(env.CONCURRENCY ?? 100),
    payFraction: Number(env.PAY_FRACTION ?? 0.3),
    paymentTimeoutMs: Number(env.PAYMENT_TIMEOUT_MS ?? 20_000),
  });
  console.log(summary(r));
  const file = env.REPORT ?? new URL("../load-report.html", import.meta.url).pathname;
  writeFileSync(file, htmlReport(r));
  console.log(`report: ${file}`);
  process.exit(r.ok ? 0 : 1);
}
