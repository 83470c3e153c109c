// Prometheus metrics (prom-client) and the counters the dashboard draws.
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export class SaleMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"route" | "outcome">;
  readonly rejected: Counter<"by">;
  readonly buyLatency: Histogram<"outcome">;
  /** Rejections by cause, for the dashboard (a plain copy of the `rejected` counter). */
  readonly rejectedBy: Record<string, number> = {};

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "sale_" });
    this.requests = new Counter({
      name: "sale_requests_total",
      help: "API requests by route and outcome",
      labelNames: ["route", "outcome"],
      registers: [this.registry],
    });
    this.rejected = new Counter({
      name: "sale_rejected_total",
      help: "Buy-path requests refused, by the check that refused them (a rate limit, the gate, the stock)",
      labelNames: ["by"],
      registers: [this.registry],
    });
    this.buyLatency = new Histogram({
      name: "sale_buy_duration_seconds",
      help: "POST /api/buy latency",
      labelNames: ["outcome"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [this.registry],
    });
  }

  reject(by: string): void {
    this.rejected.inc({ by });
    this.rejectedBy[by] = (this.rejectedBy[by] ?? 0) + 1;
  }
}
