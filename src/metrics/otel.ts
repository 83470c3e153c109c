// OpenTelemetry spans from the library's diagnostics channels. @opentelemetry/api is an optional peer
// dependency, loaded when `openTelemetryTracing` is called.
import { AsyncLocalStorage } from "node:async_hooks";
import { tracingChannel } from "node:diagnostics_channel";
import type { Attributes, Span, SpanKind, Tracer } from "@opentelemetry/api";
import { optionKeys, validateOptions } from "../internal/validate.js";
import {
  channels,
  type AcquireTrace,
  type AdmitTrace,
  type CheckTrace,
  type ConfirmTrace,
  type ProcessTrace,
  type PublishTrace,
  type ReserveTrace,
  type TakeTrace,
  type TraceOutcome,
} from "./channels.js";
import { operationOf, outcomeOf } from "./outcome.js";

/** Options of {@link openTelemetryTracing}. */
export interface OpenTelemetryTracingOptions {
  /**
   * The tracer spans are made with.
   * @default `trace.getTracer("flash-sale-kit")` of the global tracer provider
   */
  readonly tracer?: Tracer;
  /**
   * Also make a `CLIENT` span for each Redis command ioredis (6 or later) sends inside one of the library's
   * operations, as a child of that operation's span (from ioredis's `ioredis:command` tracing channel).
   * @default true
   */
  readonly redisCommands?: boolean;
}

const OPTION_KEYS = optionKeys<OpenTelemetryTracingOptions>({ tracer: 1, redisCommands: 1 });

/** The subscription {@link openTelemetryTracing} made. */
export interface OpenTelemetryTracing {
  /** Unsubscribes; spans already started still end. */
  close(): void;
}

/** The ioredis command tracing payload this adapter reads (ioredis 6 `tracing:ioredis:command`). */
interface RedisCommandTrace {
  readonly command: string;
  readonly database?: number;
  readonly serverAddress?: string;
  readonly serverPort?: number;
  error?: unknown;
}

/**
 * Subscribes to every tracing channel of the library and records each operation as an OpenTelemetry span:
 * named after the operation (`stock.reserve`, `lock.acquire`, …; `publish <topic>` and `process <consumer>`
 * for the outbox, as the messaging conventions name them), child of the span active when it was called, with
 * its attributes (`flash_sale.sku`, `user.id`, `messaging.*`, `db.system.name`, …), its outcome
 * (`flash_sale.outcome`, `flash_sale.reason`), and an error status with `error.type` when it throws. Needs the
 * optional peer dependency `@opentelemetry/api` (1.4 or later) and a registered tracer provider.
 *
 * @example
 * ```ts
 * import { openTelemetryTracing } from "flash-sale-kit/metrics";
 *
 * const tracing = await openTelemetryTracing(); // the global tracer provider's "flash-sale-kit" tracer
 * // … the sale runs; every reserve, take, acquire … is a span
 * tracing.close();
 * ```
 */
export async function openTelemetryTracing(
  options: OpenTelemetryTracingOptions = {},
): Promise<OpenTelemetryTracing> {
  validateOptions("options", options, { known: OPTION_KEYS });
  const api = await import("@opentelemetry/api");
  const tracer = options.tracer ?? api.trace.getTracer("flash-sale-kit");
  const current = new AsyncLocalStorage<Span>();
  const spans = new WeakMap<object, Span>();
  const closers: (() => void)[] = [];

  const finish = (ctx: object, span: Span, operation: string | undefined) => {
    spans.delete(ctx);
    const err = (ctx as TraceOutcome<unknown>).error;
    if (operation !== undefined) {
      const { outcome, reason } = outcomeOf(operation, ctx as TraceOutcome<unknown>);
      span.setAttribute("flash_sale.outcome", outcome);
      if (reason !== "") span.setAttribute("flash_sale.reason", reason);
    }
    if (err !== undefined) {
      span.setAttribute("error.type", err instanceof Error ? err.name : "Error");
      if (err instanceof Error) span.recordException(err);
      span.setStatus({
        code: api.SpanStatusCode.ERROR,
        message: err instanceof Error ? err.message : String(err),
      });
    }
    span.end();
  };

  for (const name of Object.values(channels)) {
    const operation = operationOf(name);
    const ch = tracingChannel<unknown, object>(name);
    const start = (ctx: object): Span => {
      const { spanName, kind, attributes } = describe(name, operation, ctx, api.SpanKind);
      const outer = current.getStore();
      const parent =
        outer === undefined ? api.context.active() : api.trace.setSpan(api.context.active(), outer);
      const span = tracer.startSpan(spanName, { kind, attributes }, parent);
      spans.set(ctx, span);
      return span;
    };
    ch.start.bindStore(current, start);
    const onEnd = (ctx: unknown) => {
      const span = spans.get(ctx as object);
      if (span !== undefined) finish(ctx as object, span, operation);
    };
    ch.asyncEnd.subscribe(onEnd);
    closers.push(() => {
      ch.asyncEnd.unsubscribe(onEnd);
      ch.start.unbindStore(current);
    });
  }

  if (options.redisCommands !== false) {
    const redis = tracingChannel<unknown, RedisCommandTrace>("ioredis:command");
    const handlers = {
      start(ctx: RedisCommandTrace) {
        const outer = current.getStore();
        if (outer === undefined) return;
        const attributes: Attributes = {
          "db.system.name": "redis",
          "db.operation.name": ctx.command.toUpperCase(),
        };
        if (ctx.database !== undefined) attributes["db.namespace"] = String(ctx.database);
        if (ctx.serverAddress !== undefined) attributes["server.address"] = ctx.serverAddress;
        if (ctx.serverPort !== undefined) attributes["server.port"] = ctx.serverPort;
        const span = tracer.startSpan(
          ctx.command.toUpperCase(),
          { kind: api.SpanKind.CLIENT, attributes },
          api.trace.setSpan(api.context.active(), outer),
        );
        spans.set(ctx, span);
      },
      end() {},
      asyncStart() {},
      asyncEnd(ctx: RedisCommandTrace) {
        const span = spans.get(ctx);
        if (span !== undefined) finish(ctx, span, undefined);
      },
      error() {},
    };
    redis.subscribe(handlers);
    closers.push(() => redis.unsubscribe(handlers));
  }

  let closed = false;
  return {
    close() {
      if (closed) return;
      closed = true;
      for (const c of closers) c();
    },
  };
}

/** A span's name, kind and attributes from an operation's payload. */
function describe(
  name: string,
  operation: string,
  ctx: object,
  kinds: typeof SpanKind,
): { spanName: string; kind: SpanKind; attributes: Attributes } {
  const attributes: Attributes = { "flash_sale.operation": operation };
  switch (name) {
    case channels.reserve: {
      const c = ctx as ReserveTrace;
      attributes["db.system.name"] = c.store;
      attributes["flash_sale.sku"] = c.sku;
      attributes["user.id"] = c.userId;
      attributes["flash_sale.quantity"] = c.quantity;
      if (c.reservationId !== undefined) attributes["flash_sale.reservation_id"] = c.reservationId;
      break;
    }
    case channels.confirm:
    case channels.release: {
      const c = ctx as ConfirmTrace;
      attributes["db.system.name"] = c.store;
      attributes["flash_sale.sku"] = c.sku;
      attributes["flash_sale.reservation_id"] = c.reservationId;
      break;
    }
    case channels.acquire: {
      const c = ctx as AcquireTrace;
      attributes["db.system.name"] = "redis";
      attributes["flash_sale.lock.kind"] = c.lock;
      attributes["flash_sale.lock.resource"] = c.resource;
      attributes["flash_sale.lock.wait"] = c.wait;
      break;
    }
    case channels.take: {
      const c = ctx as TakeTrace;
      attributes["db.system.name"] = "redis";
      attributes["flash_sale.ratelimit.bucket"] = c.bucket;
      attributes["flash_sale.ratelimit.key"] = c.key;
      attributes["flash_sale.ratelimit.cost"] = c.cost;
      break;
    }
    case channels.check: {
      const c = ctx as CheckTrace;
      attributes["flash_sale.ratelimit.limits"] = [...c.limits];
      break;
    }
    case channels.admit: {
      const c = ctx as AdmitTrace;
      attributes["flash_sale.gate"] = c.gate;
      break;
    }
    case channels.publish: {
      const c = ctx as PublishTrace;
      attributes["messaging.operation.type"] = "send";
      attributes["messaging.operation.name"] = "publish";
      attributes["messaging.destination.name"] = c.topic;
      attributes["messaging.message.id"] = c.messageId;
      attributes["flash_sale.attempt"] = c.attempt;
      return { spanName: `publish ${c.topic}`, kind: kinds.PRODUCER, attributes };
    }
    case channels.process: {
      const c = ctx as ProcessTrace;
      attributes["messaging.operation.type"] = "process";
      attributes["messaging.operation.name"] = "process";
      attributes["messaging.consumer.group.name"] = c.consumer;
      attributes["messaging.message.id"] = c.messageId;
      return { spanName: `process ${c.consumer}`, kind: kinds.CONSUMER, attributes };
    }
  }
  return { spanName: operation, kind: kinds.INTERNAL, attributes };
}
