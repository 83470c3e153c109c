// prom-client metrics from the library's diagnostics channels. prom-client is an optional peer dependency,
// loaded when `prometheusMetrics` is called.
import { performance } from "node:perf_hooks";
import { subscribe, tracingChannel, unsubscribe } from "node:diagnostics_channel";
import type { Counter, Gauge, Metric, Registry } from "prom-client";
import { InvalidArgumentError } from "../errors.js";
import { optionKeys, validateOptions } from "../internal/validate.js";
import {
  channels,
  events,
  type AcquireTrace,
  type CacheLookupEvent,
  type RelayRoundEvent,
  type TraceOutcome,
} from "./channels.js";
import { LocalHistogram, type AdapterHistogram, type Series } from "./histogram.js";
import { operationOf, outcomeOf } from "./outcome.js";

/** Options of {@link prometheusMetrics}. */
export interface PrometheusMetricsOptions {
  /**
   * The registry the metrics are registered in.
   * @default prom-client's global `register`
   */
  readonly registry?: Registry;
  /**
   * The prefix of every metric name.
   * @default "flash_sale_"
   */
  readonly prefix?: string;
  /**
   * Histogram buckets (seconds) of operation latency and lock wait, in any order (they are sorted, and a
   * repeated bound counts once).
   * @default [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
   */
  readonly buckets?: readonly number[];
}

const OPTION_KEYS = optionKeys<PrometheusMetricsOptions>({ registry: 1, prefix: 1, buckets: 1 });

/** The metrics {@link prometheusMetrics} registered, and how to stop them. */
export interface PrometheusMetrics {
  /** The registry holding the metrics (`await metrics.registry.metrics()` is the `/metrics` body). */
  readonly registry: Registry;
  /** `<prefix>operations_total{operation, outcome, reason}`. */
  readonly operations: Counter<"operation" | "outcome" | "reason">;
  /**
   * `<prefix>operation_duration_seconds{operation, outcome}`. Kept by the adapter itself and registered in
   * `registry` (prom-client's `Histogram` hashes the labels of every observation, which costs more than the
   * cheapest operations it would time); `get()` returns what prom-client's `Histogram.get()` would.
   */
  readonly duration: AdapterHistogram<"operation" | "outcome">;
  /** `<prefix>lock_wait_seconds{lock}`: how long acquired locks were waited for (kept like `duration`). */
  readonly lockWait: AdapterHistogram<"lock">;
  /** `<prefix>cache_lookups_total{cache, outcome}`. */
  readonly cacheLookups: Counter<"cache" | "outcome">;
  /**
   * `<prefix>outbox_messages_total{outcome}`: `sent`, `retried`, `dead`, and `resent` (consumer-acknowledged
   * mode: sent but not processed within `ackTimeoutMs`), counted per relay round.
   */
  readonly outboxMessages: Counter<"outcome">;
  /** `<prefix>outbox_relay_lag_seconds`: age of the oldest message still due, at the last relay round. */
  readonly relayLag: Gauge;
  /** `<prefix>outbox_pending_messages`: messages waiting to be sent, at the last relay round. */
  readonly pending: Gauge;
  /** `<prefix>outbox_dead_messages`: dead messages, at the last relay round. */
  readonly dead: Gauge;
  /** Unsubscribes from the channels and removes the metrics from the registry. */
  close(): void;
}

const METRIC_NAMES = [
  "operations_total",
  "operation_duration_seconds",
  "lock_wait_seconds",
  "cache_lookups_total",
  "outbox_messages_total",
  "outbox_relay_lag_seconds",
  "outbox_pending_messages",
  "outbox_dead_messages",
];

/** A counter's label set and what it gained since the counter was last read. */
interface Cell {
  readonly labels: Record<string, string>;
  pending: number;
}

const DEFAULT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * Subscribes to every diagnostics channel of the library and keeps prom-client metrics of them: operations
 * by outcome and reason (refusals by reason, and by limit name for `RateLimits.check`), latency, lock wait,
 * cache lookups, and the outbox relay's lag, pending and dead messages. Needs the optional peer dependency
 * `prom-client` (15 or later).
 *
 * @example
 * ```ts
 * import { Registry } from "prom-client";
 * import { prometheusMetrics } from "flash-sale-kit/metrics";
 *
 * const metrics = await prometheusMetrics({ registry: new Registry() });
 * // app.get("/metrics", async () => metrics.registry.metrics());
 * console.log(await metrics.registry.getSingleMetricAsString("flash_sale_operations_total"));
 * metrics.close();
 * ```
 */
export async function prometheusMetrics(options: PrometheusMetricsOptions = {}): Promise<PrometheusMetrics> {
  validateOptions("options", options, { known: OPTION_KEYS });
  const prefix = options.prefix ?? "flash_sale_";
  if (typeof prefix !== "string" || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) {
    throw new InvalidArgumentError("prefix", "must be a valid Prometheus metric name prefix");
  }
  const buckets = options.buckets ?? DEFAULT_BUCKETS;
  if (
    !Array.isArray(buckets) ||
    buckets.length === 0 ||
    buckets.some((b) => !(Number.isFinite(b) && b > 0))
  ) {
    throw new InvalidArgumentError("buckets", "must be a non-empty array of positive numbers");
  }
  const bounds = [...new Set(buckets)].sort((a, b) => a - b);
  const prom = await import("prom-client");
  const registry = options.registry ?? prom.register;
  const registers = [registry];

  const opCells = new Map<string, Cell>();
  const lookupCells = new Map<string, Cell>();
  const flush = (cells: Map<string, Cell>, counter: Counter<string>) => {
    for (const c of cells.values()) {
      if (c.pending === 0) continue;
      counter.inc(c.labels, c.pending);
      c.pending = 0;
    }
  };
  // A counter's reset (registry.resetMetrics()) also forgets the counts it has not taken yet, as prom-client's
  // own counters forget everything counted before it.
  const resetsCells = (counter: Counter<string>, cells: Map<string, Cell>) => {
    const reset = counter.reset.bind(counter);
    counter.reset = () => {
      for (const c of cells.values()) c.pending = 0;
      reset();
    };
  };
  const cellOf = (cells: Map<string, Cell>, key: string, labels: () => Record<string, string>): Cell => {
    let c = cells.get(key);
    if (c === undefined) cells.set(key, (c = { labels: labels(), pending: 0 }));
    return c;
  };
  const operations = new prom.Counter({
    name: `${prefix}operations_total`,
    help: "Library operations by outcome (ok, refused, error) and reason (refusal reason or error name).",
    labelNames: ["operation", "outcome", "reason"] as const,
    registers,
    collect() {
      flush(opCells, this);
    },
  });
  const duration = new LocalHistogram(
    `${prefix}operation_duration_seconds`,
    "Latency of library operations, as seen by the caller.",
    ["operation", "outcome"] as const,
    bounds,
  );
  const lockWait = new LocalHistogram(
    `${prefix}lock_wait_seconds`,
    "How long acquired locks were waited for.",
    ["lock"] as const,
    bounds,
  );
  for (const h of [duration, lockWait]) registry.registerMetric(h as unknown as Metric);
  const cacheLookups = new prom.Counter({
    name: `${prefix}cache_lookups_total`,
    help: "ReadThroughCache lookups by outcome (l1, hit, stale, miss, rejected by the Bloom filter).",
    labelNames: ["cache", "outcome"] as const,
    registers,
    collect() {
      flush(lookupCells, this);
    },
  });
  resetsCells(operations, opCells);
  resetsCells(cacheLookups, lookupCells);
  const outboxMessages = new prom.Counter({
    name: `${prefix}outbox_messages_total`,
    help: "Outbox messages handled by relays, by outcome (sent, retried, dead, resent).",
    labelNames: ["outcome"] as const,
    registers,
  });
  const relayLag = new prom.Gauge({
    name: `${prefix}outbox_relay_lag_seconds`,
    help: "Age of the oldest outbox message still due, at the last relay round.",
    registers,
  });
  const pending = new prom.Gauge({
    name: `${prefix}outbox_pending_messages`,
    help: "Outbox messages waiting to be sent, at the last relay round.",
    registers,
  });
  const dead = new prom.Gauge({
    name: `${prefix}outbox_dead_messages`,
    help: "Dead outbox messages (attempts used up), at the last relay round.",
    registers,
  });

  // The hot path never calls prom-client: each event adds to a cell or a histogram series looked up by
  // its label values, and the counters take the totals when they are read (their `collect`, run by every
  // scrape and every `get()`). The histograms are the adapter's own (./histogram.ts).
  const unsubscribers: (() => void)[] = [];
  for (const name of Object.values(channels)) {
    const operation = operationOf(name);
    const ch = tracingChannel<unknown, TraceOutcome<unknown>>(name);
    // The common case (ok, no reason) skips the key: its cell and series are bound here.
    const okCell = cellOf(opCells, `${operation}\u0000ok\u0000`, () => ({
      operation,
      outcome: "ok",
      reason: "",
    }));
    const series: Partial<Record<string, Series>> = {};
    const isAcquire = name === channels.acquire;
    // Only asyncEnd (which follows error too), timed from the payload's `startedAt`: the other events stay
    // unsubscribed, so the library publishes without Node's tracePromise (src/internal/trace.ts).
    const onEnd = (message: unknown) => {
      const ctx = message as TraceOutcome<unknown>;
      const { outcome, reason } = outcomeOf(operation, ctx);
      if (outcome === "ok" && reason === "") okCell.pending++;
      else
        cellOf(opCells, `${operation}\u0000${outcome}\u0000${reason}`, () => ({ operation, outcome, reason }))
          .pending++;
      const t0 = ctx.startedAt;
      if (t0 === undefined) return;
      const seconds = (performance.now() - t0) / 1000;
      duration.observe((series[outcome] ??= duration.series(operation, outcome)), seconds);
      if (isAcquire && outcome === "ok") {
        const a = ctx as unknown as AcquireTrace;
        if (a.wait) lockWait.observe(lockWait.series(a.lock), seconds);
      }
    };
    ch.asyncEnd.subscribe(onEnd);
    unsubscribers.push(() => ch.asyncEnd.unsubscribe(onEnd));
  }
  const onLookup = (message: unknown) => {
    const e = message as CacheLookupEvent;
    cellOf(lookupCells, `${e.cache}\u0000${e.outcome}`, () => ({ cache: e.cache, outcome: e.outcome }))
      .pending++;
  };
  const onRound = (message: unknown) => {
    const e = message as RelayRoundEvent;
    if (e.sent > 0) outboxMessages.inc({ outcome: "sent" }, e.sent);
    if (e.retried > 0) outboxMessages.inc({ outcome: "retried" }, e.retried);
    if (e.dead > 0) outboxMessages.inc({ outcome: "dead" }, e.dead);
    if (e.resent > 0) outboxMessages.inc({ outcome: "resent" }, e.resent);
    relayLag.set(e.lagMs / 1000);
    pending.set(e.pending);
    dead.set(e.deadTotal);
  };
  subscribe(events.cacheLookup, onLookup);
  subscribe(events.relayRound, onRound);
  unsubscribers.push(
    () => unsubscribe(events.cacheLookup, onLookup),
    () => unsubscribe(events.relayRound, onRound),
  );

  let closed = false;
  return {
    registry,
    operations,
    duration,
    lockWait,
    cacheLookups,
    outboxMessages,
    relayLag,
    pending,
    dead,
    close() {
      if (closed) return;
      closed = true;
      for (const u of unsubscribers) u();
      for (const suffix of METRIC_NAMES) registry.removeSingleMetric(`${prefix}${suffix}`);
    },
  };
}
