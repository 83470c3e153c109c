// Publishing on the library's diagnostics channels (names and payloads: src/metrics/channels.ts). When nobody
// subscribes, an operation costs one `hasSubscribers` check and no allocation of its payload.
import { channel, tracingChannel, type Channel, type TracingChannel } from "node:diagnostics_channel";

/** A traced operation: `run(payload, fn)` runs `fn` inside the channel's events when anyone listens. */
export interface Traced<C extends object> {
  readonly channel: TracingChannel<unknown, C>;
  run<R>(payload: () => C, fn: () => Promise<R>): Promise<R>;
}

export function traced<C extends object>(name: string): Traced<C> {
  const ch = tracingChannel<unknown, C>(name);
  return {
    channel: ch,
    run<R>(payload: () => C, fn: () => Promise<R>): Promise<R> {
      if (!ch.hasSubscribers) return fn();
      return ch.tracePromise(fn, payload());
    },
  };
}

/** A plain channel: `publish(message)` builds the message only when anyone listens. */
export interface Published<M> {
  readonly channel: Channel;
  readonly active: boolean;
  publish(message: () => M): void;
}

export function published<M>(name: string): Published<M> {
  const ch = channel(name);
  return {
    channel: ch,
    get active() {
      return ch.hasSubscribers;
    },
    publish(message: () => M): void {
      if (ch.hasSubscribers) ch.publish(message());
    },
  };
}
