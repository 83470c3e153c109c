// Publishing on the library's diagnostics channels (names and payloads: src/metrics/channels.ts). When nobody
// subscribes, an operation costs one `hasSubscribers` check: its payload and closures are never built.
//
//   take(key, o) {
//     return TAKE.active ? TAKE.trace(() => this.#take(key, o), { bucket, key, cost }) : this.#take(key, o);
//   }
import { performance } from "node:perf_hooks";
import { channel, tracingChannel, type Channel, type TracingChannel } from "node:diagnostics_channel";
import type { ReserveTrace } from "../metrics/channels.js";

/** A traced operation. */
export interface Traced<C extends object> {
  readonly channel: TracingChannel<unknown, C>;
  /** Whether anyone subscribes to any of the operation's events. */
  readonly active: boolean;
  /**
   * Runs `fn` inside the operation's events (start, end, asyncStart, asyncEnd, error), as Node's
   * `tracePromise` does, after setting the payload's `startedAt`.
   */
  trace<R>(fn: () => Promise<R>, payload: C): Promise<R>;
}

export function traced<C extends object>(name: string): Traced<C> {
  const ch = tracingChannel<unknown, C>(name);
  const { start, end, asyncStart, asyncEnd, error } = ch;
  return {
    channel: ch,
    get active() {
      return ch.hasSubscribers;
    },
    trace<R>(fn: () => Promise<R>, payload: C): Promise<R> {
      const ctx = payload as C & { startedAt?: number; result?: R; error?: unknown };
      ctx.startedAt = performance.now();
      // A bound store or a subscriber to start needs Node's tracePromise (it runs `fn` inside start's stores).
      if (start.hasSubscribers) return ch.tracePromise(fn, payload);
      // Otherwise (the Prometheus adapter listens to asyncEnd only) the same events, in the same order, without
      // runStores and its closures: a third of tracePromise's cost on the hottest calls (bench/metrics.bench.ts).
      let promise: Promise<R>;
      try {
        const p = fn();
        promise = p instanceof Promise ? p : Promise.resolve(p);
      } catch (err) {
        ctx.error = err;
        error.publish(ctx);
        throw err;
      } finally {
        end.publish(ctx);
      }
      return promise.then(
        (result) => {
          ctx.result = result;
          asyncStart.publish(ctx);
          asyncEnd.publish(ctx);
          return result;
        },
        (err: unknown) => {
          ctx.error = err;
          error.publish(ctx);
          asyncStart.publish(ctx);
          asyncEnd.publish(ctx);
          throw err;
        },
      );
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

/** The reserve payload's caller fields, read without trusting `options` (bad input is refused afterwards). */
export function reservePayload(
  options: unknown,
): Pick<ReserveTrace, "userId" | "quantity" | "reservationId"> {
  const o = (typeof options === "object" && options !== null ? options : {}) as Record<string, unknown>;
  return {
    userId: o.userId as string,
    quantity: (o.quantity as number | undefined) ?? 1,
    reservationId: o.reservationId as string | undefined,
  };
}
