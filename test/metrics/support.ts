// Records what the library publishes on its diagnostics channels, for the tests of test/metrics/.
import { subscribe, tracingChannel, unsubscribe } from "node:diagnostics_channel";

export interface Recorded {
  readonly event: "start" | "end" | "asyncStart" | "asyncEnd" | "error";
  /** A copy of the payload's own fields when the event fired, without `startedAt` (see `startedAt`). */
  readonly payload: Record<string, unknown>;
  /** The payload's `startedAt` (the library sets it on every traced call). */
  readonly startedAt: unknown;
}

/** Subscribes to a tracing channel; `stop()` unsubscribes. */
export function recordTrace(name: string): { readonly events: Recorded[]; stop(): void } {
  const events: Recorded[] = [];
  const ch = tracingChannel<unknown, object>(name);
  const on = (event: Recorded["event"]) => (ctx: object) => {
    const { startedAt, ...payload } = ctx as Record<string, unknown>;
    events.push({ event, payload, startedAt });
  };
  const handlers = {
    start: on("start"),
    end: on("end"),
    asyncStart: on("asyncStart"),
    asyncEnd: on("asyncEnd"),
    error: on("error"),
  };
  ch.subscribe(handlers);
  return { events, stop: () => ch.unsubscribe(handlers) };
}

/** Subscribes to a plain channel; `stop()` unsubscribes. */
export function recordEvents<M>(name: string): { readonly messages: M[]; stop(): void } {
  const messages: M[] = [];
  const on = (m: unknown) => messages.push(m as M);
  subscribe(name, on);
  return { messages, stop: () => unsubscribe(name, on) };
}

/** The payloads of one event, in order. */
export const at = (events: readonly Recorded[], event: Recorded["event"]) =>
  events.filter((e) => e.event === event).map((e) => e.payload);

/** One sample of the Prometheus text format. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses the Prometheus text exposition format (what `/metrics` serves). */
export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the sample with exactly these labels (among those given), 0 when absent. */
export function value(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  const s = samples.find(
    (x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v),
  );
  return s?.value ?? 0;
}
