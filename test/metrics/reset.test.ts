// Review: registry.resetMetrics() with the Prometheus adapter's own histograms and read-time counters.
import { describe, expect, it } from "vitest";
import { Registry } from "prom-client";
import { channels, prometheusMetrics, type TakeTrace } from "../../src/metrics/index.js";
import { traced } from "../../src/internal/trace.js";

const take = traced<TakeTrace>(channels.take);
const ok = { ok: true, remaining: 1, retryAfterMs: 0, resetAfterMs: 0 };
const run = (n: number) =>
  Promise.all(
    Array.from({ length: n }, (_, i) => take.trace(async () => ok, { bucket: "b", key: `k${i}`, cost: 1 })),
  );

describe("prometheusMetrics after registry.resetMetrics()", () => {
  it("keeps timing operations in the duration histogram (observations after the reset are not lost)", async () => {
    const registry = new Registry();
    const metrics = await prometheusMetrics({ registry });
    try {
      await run(3);
      expect(await registry.metrics()).toContain(
        'flash_sale_operation_duration_seconds_count{operation="ratelimit.take",outcome="ok"} 3',
      );
      registry.resetMetrics();
      await run(2);
      const text = await registry.metrics();
      expect(text).toContain(
        'flash_sale_operations_total{operation="ratelimit.take",outcome="ok",reason=""} 2',
      );
      expect(text).toContain(
        'flash_sale_operation_duration_seconds_count{operation="ratelimit.take",outcome="ok"} 2',
      );
    } finally {
      metrics.close();
    }
  });

  it("forgets operations that ended before the reset, as prom-client's own counters do", async () => {
    const registry = new Registry();
    const metrics = await prometheusMetrics({ registry });
    try {
      await run(3); // not read before the reset
      registry.resetMetrics();
      const text = await registry.metrics();
      // The histogram forgets them (its reset); the counter must agree with it.
      expect(text).not.toContain('flash_sale_operation_duration_seconds_count{operation="ratelimit.take"');
      expect(text).not.toContain(
        'flash_sale_operations_total{operation="ratelimit.take",outcome="ok",reason=""} 3',
      );
    } finally {
      metrics.close();
    }
  });
});
