// The outbox's stored messages: the columns read, the row as the driver returns it, the public record.
import type { OutboxMessage } from "./types.js";

/**
 * Where a message is in its life: `pending` (due, or held by a relay), `sent` (the transport accepted it),
 * `processed` (a consumer's `PostgresInbox` acknowledged it; consumer-acknowledged mode), `dead`
 * (attempts used up).
 */
export type OutboxStatus = "pending" | "sent" | "processed" | "dead";

/** A stored message with its delivery state (from `get` and `listDead`). */
export interface OutboxRecord<P = unknown> extends Omit<OutboxMessage<P>, "attempt"> {
  readonly status: OutboxStatus;
  /** Delivery attempts started so far. */
  readonly attempts: number;
  /** Epoch ms (database time) from which the message is due; while a relay holds it, the end of its lease. */
  readonly availableAt: number;
  /** When the transport accepted it (or, when a consumer acknowledged it first, when it did). */
  readonly sentAt: number | null;
  /** When a consumer's inbox transaction acknowledged it (consumer-acknowledged mode), else `null`. */
  readonly processedAt: number | null;
  readonly deadAt: number | null;
  /** The error of the last failed attempt. */
  readonly lastError: string | null;
}

/** The columns of a stored message, times as epoch ms. @internal */
export const MESSAGE_COLUMNS = `id, topic, key, payload, status, attempts,
  (extract(epoch FROM created_at) * 1000)::float8 AS created_ms,
  (extract(epoch FROM available_at) * 1000)::float8 AS available_ms,
  (extract(epoch FROM sent_at) * 1000)::float8 AS sent_ms,
  (extract(epoch FROM processed_at) * 1000)::float8 AS processed_ms,
  (extract(epoch FROM dead_at) * 1000)::float8 AS dead_ms,
  last_error`;

/** @internal */
export interface MessageRow {
  id: string;
  topic: string;
  key: string | null;
  payload: unknown;
  status: OutboxStatus;
  attempts: number;
  created_ms: number;
  available_ms?: number;
  sent_ms?: number | null;
  processed_ms?: number | null;
  dead_ms?: number | null;
  last_error?: string | null;
  seq?: string | number;
}

const ms = (v: number | null | undefined): number | null =>
  v === null || v === undefined ? null : Math.round(Number(v));

/** A row read with {@link MESSAGE_COLUMNS} as the public record. @internal */
export function toRecord<P>(row: MessageRow): OutboxRecord<P> {
  return {
    id: row.id,
    topic: row.topic,
    key: row.key,
    payload: row.payload as P,
    createdAt: Math.round(Number(row.created_ms)),
    status: row.status,
    attempts: Number(row.attempts),
    availableAt: Math.round(Number(row.available_ms)),
    sentAt: ms(row.sent_ms),
    processedAt: ms(row.processed_ms),
    deadAt: ms(row.dead_ms),
    lastError: row.last_error ?? null,
  };
}
