// Records what the library publishes on its diagnostics channels, for the tests of test/metrics/.
import { subscribe, tracingChannel, unsubscribe } from "node:diagnostics_channel";

export interface Recorded {
  readonly event: "start" | "end" | "asyncStart" | "asyncEnd" | "error";
  /** A copy of the payload's own fields when the event fired. */
  readonly payload: Record<string, unknown>;
}

/** Subscribes to a tracing channel; `stop()` unsubscribes. */
export function recordTrace(name: string): { readonly events: Recorded[]; stop(): void } {
  const events: Recorded[] = [];
  const ch = tracingChannel<unknown, object>(name);
  const on = (event: Recorded["event"]) => (ctx: object) => events.push({ event, payload: { ...ctx } });
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
