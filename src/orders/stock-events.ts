// Reading the reservation events that Inventory appends to each SKU's stream.
import { UnexpectedReplyError } from "../errors.js";
import type { StockEvent } from "../stock/inventory.js";
import type { StreamEntry } from "../outbox/redis-stream-consumer.js";

const TYPES = new Set(["reserved", "confirmed", "released"]);

/**
 * Parses an `Inventory` event (`reserved` / `confirmed` / `released`) from a stream entry read by a
 * {@link RedisStreamConsumer}. Throws {@link UnexpectedReplyError} for an entry that is not one.
 *
 * @example
 * ```ts
 * handler: async (entry) => {
 *   const e = readStockEvent(entry); // { type: "reserved", sku, reservationId, userId, quantity, at }
 * }
 * ```
 */
export function readStockEvent(entry: Pick<StreamEntry, "fields">): StockEvent {
  const f = entry.fields;
  const quantity = Number(f.quantity);
  const at = Number(f.at);
  if (
    !TYPES.has(f.type ?? "") ||
    typeof f.sku !== "string" ||
    typeof f.reservationId !== "string" ||
    typeof f.userId !== "string" ||
    !Number.isSafeInteger(quantity) ||
    quantity < 1 ||
    !Number.isFinite(at)
  ) {
    throw new UnexpectedReplyError("stream entry is not an Inventory event");
  }
  return {
    type: f.type as StockEvent["type"],
    sku: f.sku,
    reservationId: f.reservationId,
    userId: f.userId,
    quantity,
    at,
    ...(f.cause === "released" || f.cause === "expired" ? { cause: f.cause } : {}),
  };
}
