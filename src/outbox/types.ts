// Shapes shared by the outbox module: the message a relay hands to a transport, and input validation.
import { InvalidArgumentError } from "../errors.js";
import { validateId } from "../internal/validate.js";

/**
 * The longest outbox message id (and inbox message id) accepted.
 *
 * @example
 * ```ts
 * const id = `payment-timeout:${orderId}`.slice(0, MAX_MESSAGE_ID_LENGTH);
 * ```
 */
export const MAX_MESSAGE_ID_LENGTH = 256;

/**
 * One outbox message as the relay hands it to `publish`. Transports must carry `id`: it is what consumers
 * deduplicate on (the relay delivers at least once).
 */
export interface OutboxMessage<P = unknown> {
  /** Unique id: given to `enqueue`, or a random UUID. */
  readonly id: string;
  readonly topic: string;
  /** Optional partition / routing key. */
  readonly key: string | null;
  /** The JSON payload, as stored (jsonb: key order and number formatting may differ from what was given). */
  readonly payload: P;
  /** Which attempt this is: 1 the first time, 2 on the first retry, … */
  readonly attempt: number;
  /** Database time (epoch ms) of the enqueueing transaction. */
  readonly createdAt: number;
}

/** Checks a message id: 1 to 256 characters, no control characters (braces and spaces are fine). @internal */
export function validateMessageId(name: string, value: unknown): asserts value is string {
  if (typeof value !== "string") throw new InvalidArgumentError(name, "must be a string");
  if (value.length === 0) throw new InvalidArgumentError(name, "must not be empty");
  if (value.length > MAX_MESSAGE_ID_LENGTH) {
    throw new InvalidArgumentError(name, `must be at most ${MAX_MESSAGE_ID_LENGTH} characters`);
  }
  if (/[\u0000-\u001f\u007f-\u009f]/u.test(value)) {
    throw new InvalidArgumentError(name, "must not contain control characters");
  }
}

/** Checks a topic (it may become part of a Redis key or a routing key): the rules of ids. @internal */
export function validateTopic(name: string, value: unknown): asserts value is string {
  validateId(name, value);
}

/** Serialises a payload to JSON text, or throws InvalidArgumentError. @internal */
export function payloadJson(payload: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(payload);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new InvalidArgumentError("payload", `must be JSON-serialisable: ${message}`);
  }
  if (text === undefined)
    throw new InvalidArgumentError("payload", "must be JSON-serialisable (got undefined)");
  return text;
}

/** Turns anything thrown into a short text for a `last_error` column or a dead letter. @internal */
export function errorText(err: unknown, max = 2000): string {
  let text: string;
  if (err instanceof Error) text = err.message ? `${err.name}: ${err.message}` : err.name;
  else {
    try {
      text = typeof err === "string" ? err : (JSON.stringify(err) ?? String(err));
    } catch {
      text = String(err);
    }
  }
  // PostgreSQL text cannot hold NUL: an error message with one would make the failure itself fail to record.
  text = text.replace(/\u0000/g, "\ufffd");
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
