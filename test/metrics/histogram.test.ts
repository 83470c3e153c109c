// The adapter keeps its own histograms (src/metrics/histogram.ts) and its counters take their totals when read.
// Differential: the same observations fed to prom-client's own Histogram and to the adapter's give the same
// text exposition and the same get(); counts reach the counter at every read, and never twice.
import { describe, expect, it } from "vitest";
import { Counter, Histogram, Registry } from "prom-client";
import { LocalHistogram } from "../../src/metrics/histogram.js";
import { channels, prometheusMetrics, type TakeTrace } from "../../src/metrics/index.js";
import { traced } from "../../src/internal/trace.js";

/** A deterministic stream of values, many on or near the bounds (the `<=` edge), some above them all. */
function values(n: number, bounds: readonly number[]): number[] {
  const out: number[] = [];
  let x = 7;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const b = bounds[x % bounds.length]!;
    const pick = x % 5;
    out.push(pick === 0 ? b : pick === 1 ? b * 0.999 : pick === 2 ? b * 1.001 : pick === 3 ? b * 50 : 0);
  }
  return out;
}

describe("the adapter's histogram", () => {
  it("exposes exactly what prom-client's Histogram exposes for the same observations", async () => {
    const bounds = [0.0005, 0.001, 0.0025, 0.01, 0.5, 2.5];
    const theirs = new Registry();
    const ours = new Registry();
    const ref = new Histogram({
      name: "x_seconds",
      help: "h",
      labelNames: ["operation", "outcome"] as const,
      buckets: bounds,
      registers: [theirs],
    });
    const local = new LocalHistogram("x_seconds", "h", ["operation", "outcome"] as const, bounds);
    ours.registerMetric(local as never);
    const series = [
      ["stock.reserve", "ok"],
      ["stock.reserve", "refused"],
      ['we"ird\\name\n', "error"],
    ] as const;
    const vs = values(3000, bounds);
    vs.forEach((v, i) => {
      const [operation, outcome] = series[i % series.length]!;
      ref.observe({ operation, outcome }, v);
      local.observe(local.series(operation, outcome), v);
    });
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await local.get()).toEqual(await ref.get());
    expect(await ours.getMetricsAsJSON()).toEqual(await theirs.getMetricsAsJSON());
    // Series looked up before a reset (the adapter keeps them) still count after it, and only from it.
    const held = series.map(([operation, outcome]) => local.series(operation, outcome));
    ours.resetMetrics();
    theirs.resetMetrics();
    expect(await ours.metrics()).toBe(await theirs.metrics());
    values(500, bounds).forEach((v, i) => {
      const k = i % 2; // two of the three label sets come back
      const [operation, outcome] = series[k]!;
      ref.observe({ operation, outcome }, v);
      local.observe(held[k]!, v);
    });
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await local.get()).toEqual(await ref.get());
  });

  it("counts every operation once, whenever the registry is read", async () => {
    const registry = new Registry();
    const metrics = await prometheusMetrics({ registry, buckets: [1, 0.001, 0.01, 0.01] });
    try {
      expect(metrics.duration.upperBounds).toEqual([0.001, 0.01, 1]);
      const take = traced<TakeTrace>(channels.take);
      const ok = { ok: true, remaining: 1, retryAfterMs: 0, resetAfterMs: 0 };
      const refused = { ok: false, remaining: 0, retryAfterMs: 5, resetAfterMs: 5 };
      const run = (n: number, result: object) =>
        Promise.all(
          Array.from({ length: n }, (_, i) =>
            take.trace(async () => result, { bucket: "b", key: `k${i}`, cost: 1 }),
          ),
        );
      const total = async (outcome: string) =>
        (await metrics.operations.get()).values
          .filter((v) => v.labels.operation === "ratelimit.take" && v.labels.outcome === outcome)
          .reduce((s, v) => s + v.value, 0);
      await run(5, ok);
      await run(2, refused);
      expect(await total("ok")).toBe(5);
      expect(await total("refused")).toBe(2);
      // Read again with nothing new: the totals do not grow.
      expect(await total("ok")).toBe(5);
      await run(3, ok);
      const text = await registry.metrics();
      expect(text).toContain(
        'flash_sale_operations_total{operation="ratelimit.take",outcome="ok",reason=""} 8',
      );
      expect(text).toContain(
        'flash_sale_operations_total{operation="ratelimit.take",outcome="refused",reason="RATE_LIMITED"} 2',
      );
      expect(text).toContain(
        'flash_sale_operation_duration_seconds_count{operation="ratelimit.take",outcome="ok"} 8',
      );
      expect(await total("ok")).toBe(8);
    } finally {
      metrics.close();
    }
  });

  it("keeps the counter a prom-client Counter", async () => {
    const registry = new Registry();
    const metrics = await prometheusMetrics({ registry });
    try {
      expect(metrics.operations).toBeInstanceOf(Counter);
      expect(registry.getSingleMetric("flash_sale_operation_duration_seconds")).toBe(metrics.duration);
    } finally {
      metrics.close();
    }
    expect(registry.getSingleMetric("flash_sale_operation_duration_seconds")).toBeUndefined();
  });
});
