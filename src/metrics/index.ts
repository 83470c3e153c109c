// flash-sale-kit/metrics: the library's diagnostics channels (names and payloads), and adapters that turn
// them into prom-client metrics and OpenTelemetry spans (optional peer dependencies, loaded on first use).
export {
  channels,
  events,
  type TraceOutcome,
  type ReserveTrace,
  type ConfirmTrace,
  type ReleaseTrace,
  type AcquireTrace,
  type TakeTrace,
  type CheckTrace,
  type AdmitTrace,
  type PublishTrace,
  type ProcessTrace,
  type CacheLookupEvent,
  type RelayRoundEvent,
} from "./channels.js";
export { prometheusMetrics, type PrometheusMetrics, type PrometheusMetricsOptions } from "./prometheus.js";
export type { AdapterHistogram, HistogramValues } from "./histogram.js";
export { openTelemetryTracing, type OpenTelemetryTracing, type OpenTelemetryTracingOptions } from "./otel.js";
