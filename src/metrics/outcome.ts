// How a traced operation's payload reads as an outcome: ok, refused (with the reason returned as data) or
// error (with the error's name). Shared by the Prometheus and OpenTelemetry adapters.
import type { TraceOutcome } from "./channels.js";

/** How an operation ended. */
export interface Outcome {
  readonly outcome: "ok" | "refused" | "error";
  /** The refusal's reason, the error's name, or `""` when ok. */
  readonly reason: string;
}

const OK: Outcome = { outcome: "ok", reason: "" };

export function outcomeOf(operation: string, ctx: TraceOutcome<unknown>): Outcome {
  if (ctx.error !== undefined) {
    const e = ctx.error;
    const name = e instanceof Error ? e.name : "Error";
    return { outcome: "error", reason: name };
  }
  const r = ctx.result;
  if (r === null) return { outcome: "refused", reason: "HELD" };
  if (typeof r === "string") return { outcome: "ok", reason: r };
  if (typeof r !== "object" || r === undefined) return OK;
  const o = r as { ok?: unknown; reason?: unknown; rejectedBy?: unknown };
  if (o.ok === false) {
    if (typeof o.rejectedBy === "string") return { outcome: "refused", reason: o.rejectedBy };
    if (typeof o.reason === "string") return { outcome: "refused", reason: o.reason };
    return { outcome: "refused", reason: operation === "ratelimit.take" ? "RATE_LIMITED" : "REFUSED" };
  }
  return OK;
}

/** The operation's short name (`stock.reserve`) from its channel name. */
export function operationOf(channelName: string): string {
  return channelName.slice(channelName.indexOf(":") + 1);
}
