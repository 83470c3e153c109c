// The process's Prometheus metrics (GET /metrics) and the numbers the dashboard draws from them.
//
// Everything the library does is counted by the library's own adapter, `prometheusMetrics` from
// `flash-sale-kit/metrics`, which listens on the modules' diagnostics channels: reservations and their
// refusals by reason (`stock.reserve`), rate-limit refusals by limit (`ratelimit.check`), gate refusals
// (`gate.admit`), orders written by the worker (`outbox.process`), latency, lock wait, cache lookups, and the
// outbox relay's lag, pending and dead messages. The example counts by hand only what the library cannot
// know:
//   - `sale_requests_total{route,outcome}` and `sale_buy_duration_seconds`: HTTP requests and the buy route's
//     latency as the client sees it (gate, limits, token and reservation together);
//   - `sale_refused_total{step,reason}`: refusals the routes answer without a traced library call: in
//     process (`step="in-process"`, the window by the process's clock or `Inventory.knownRefusal`, answered
//     before any call to Redis) and the purchase token (`step="token"`, `SaleGate.verify`).
// The channels are the process's: the adapter counts every Inventory, limit and worker in the process.
import { prometheusMetrics, type PrometheusMetrics } from "flash-sale-kit/metrics";
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** A sample of a counter or gauge: its labels and value. */
interface Sample {
  readonly labels: Partial<Record<string, string | number>>;
  readonly value: number;
  readonly metricName?: string;
}

/** What the dashboard shows of this process's metrics (`GET /api/stats`, field `metrics`). */
export interface ProcessMetrics {
  /** `stock.reserve` that reserved. */
  readonly reservations: number;
  /**
   * Refusals by where they happened and why: `stock: SOLD_OUT`, `rate limit: user`, `gate: CAPTCHA_WRONG`
   * (the adapter's), `in process: SOLD_OUT`, `token: EXPIRED` (the example's own counters).
   */
  readonly refused: Record<string, number>;
  /** Orders written by the worker (`outbox.process` processed) and stream entries seen twice (duplicate). */
  readonly orders: { readonly written: number; readonly duplicates: number };
  /** Payments confirmed (`stock.confirm`) and holds given back (`stock.release`). */
  readonly confirmed: number;
  readonly released: number;
  /** Mean latency of `stock.reserve` (ms), and the bucket bound under which 99% fell (ms). */
  readonly reserveMs: { readonly mean: number; readonly p99: number };
  /** Locks acquired after waiting, and their mean wait (ms). */
  readonly lockWait: { readonly count: number; readonly meanMs: number };
  /** The outbox relay at its last round in this process (0 without a worker). */
  readonly outbox: { readonly lagMs: number; readonly pending: number; readonly dead: number };
  /** Product cache lookups by outcome (`l1`, `hit`, `stale`, `miss`, `rejected`), and the share served cached. */
  readonly cache: { readonly lookups: Record<string, number>; readonly hitRatio: number };
}

const REFUSING_OPERATIONS: Record<string, string> = {
  "stock.reserve": "stock",
  "ratelimit.check": "rate limit",
  "gate.admit": "gate",
};

export class SaleMetrics {
  readonly registry: Registry;
  /** The library's metrics (the adapter), in `registry`. */
  readonly library: PrometheusMetrics;
  readonly requests: Counter<"route" | "outcome">;
  readonly refused: Counter<"step" | "reason">;
  readonly buyLatency: Histogram<"outcome">;

  /** Subscribes the library's adapter and registers the example's own counters, in one registry. */
  static async create(): Promise<SaleMetrics> {
    const registry = new Registry();
    return new SaleMetrics(registry, await prometheusMetrics({ registry }));
  }

  private constructor(registry: Registry, library: PrometheusMetrics) {
    this.registry = registry;
    this.library = library;
    collectDefaultMetrics({ register: registry, prefix: "sale_" });
    this.requests = new Counter({
      name: "sale_requests_total",
      help: "API requests by route and outcome",
      labelNames: ["route", "outcome"],
      registers: [registry],
    });
    this.refused = new Counter({
      name: "sale_refused_total",
      help:
        "Refusals the routes answer without a traced library call: in process (window, Inventory.knownRefusal) " +
        "and the purchase token (SaleGate.verify). The library's refusals are in flash_sale_operations_total.",
      labelNames: ["step", "reason"],
      registers: [registry],
    });
    this.buyLatency = new Histogram({
      name: "sale_buy_duration_seconds",
      help: "POST /api/buy latency",
      labelNames: ["outcome"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    });
  }

  /** Counts a refusal the library did not see (see the file's header). */
  refuse(step: "in-process" | "token", reason: string): void {
    this.refused.inc({ step, reason });
  }

  /** The dashboard's numbers, read from the registry (the same numbers GET /metrics serves). */
  async snapshot(): Promise<ProcessMetrics> {
    const l = this.library;
    const ops = (await l.operations.get()).values as Sample[];
    const op = (operation: string, outcome: string, reason?: string) =>
      sum(
        ops.filter(
          (s) =>
            s.labels.operation === operation &&
            s.labels.outcome === outcome &&
            (reason === undefined || s.labels.reason === reason),
        ),
      );
    const refused: Record<string, number> = {};
    const add = (key: string, n: number) => {
      if (n > 0) refused[key] = (refused[key] ?? 0) + n;
    };
    for (const s of ops) {
      const where = REFUSING_OPERATIONS[String(s.labels.operation)];
      if (where !== undefined && s.labels.outcome === "refused") add(`${where}: ${s.labels.reason}`, s.value);
    }
    for (const s of (await this.refused.get()).values as Sample[])
      add(`${s.labels.step === "token" ? "token" : "in process"}: ${s.labels.reason}`, s.value);

    const reserve = ((await l.duration.get()).values as Sample[]).filter(
      (s) => s.labels.operation === "stock.reserve",
    );
    const wait = (await l.lockWait.get()).values as Sample[];
    const lookups: Record<string, number> = {};
    for (const s of (await l.cacheLookups.get()).values as Sample[])
      lookups[String(s.labels.outcome)] = (lookups[String(s.labels.outcome)] ?? 0) + s.value;
    const total = Object.values(lookups).reduce((a, b) => a + b, 0);
    const cached = (lookups.l1 ?? 0) + (lookups.hit ?? 0) + (lookups.stale ?? 0);
    const gauge = async (g: PrometheusMetrics["pending"]) => (await g.get()).values[0]?.value ?? 0;
    return {
      reservations: op("stock.reserve", "ok"),
      refused,
      orders: {
        written: op("outbox.process", "ok", "processed"),
        duplicates: op("outbox.process", "ok", "duplicate"),
      },
      confirmed: op("stock.confirm", "ok"),
      released: op("stock.release", "ok"),
      reserveMs: { mean: mean(reserve) * 1000, p99: quantile(reserve, 0.99) * 1000 },
      lockWait: { count: count(wait), meanMs: mean(wait) * 1000 },
      outbox: {
        lagMs: Math.round((await gauge(l.relayLag)) * 1000),
        pending: await gauge(l.pending),
        dead: await gauge(l.dead),
      },
      cache: { lookups, hitRatio: total === 0 ? 0 : cached / total },
    };
  }

  /** Unsubscribes the adapter (the process's other SaleMetrics, if any, go on counting). */
  close(): void {
    this.library.close();
  }
}

const sum = (samples: readonly Sample[]) => samples.reduce((a, s) => a + s.value, 0);
const part = (samples: readonly Sample[], suffix: string) =>
  samples.filter((s) => s.metricName?.endsWith(suffix));
const count = (h: readonly Sample[]) => sum(part(h, "_count"));
const mean = (h: readonly Sample[]) => {
  const n = count(h);
  return n === 0 ? 0 : sum(part(h, "_sum")) / n;
};

/** The smallest bucket bound under which `q` of the observations fell (all outcomes together). */
function quantile(h: readonly Sample[], q: number): number {
  const n = count(h);
  if (n === 0) return 0;
  const byBound = new Map<number, number>();
  for (const s of part(h, "_bucket")) {
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    byBound.set(le, (byBound.get(le) ?? 0) + s.value);
  }
  const bounds = [...byBound].sort(([a], [b]) => a - b);
  const hit = bounds.find(([, c]) => c >= q * n);
  // Past the last finite bound: report that bound (a histogram knows no more).
  return hit === undefined || hit[0] === Infinity
    ? (bounds.filter(([b]) => b !== Infinity).at(-1)?.[0] ?? 0)
    : hit[0];
}
