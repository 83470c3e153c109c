// The stream consumer's Lua scripts with their typed replies, the parsing of XREADGROUP replies, and the
// default dead-letter key (in the stream's cluster slot).
import { InvalidArgumentError, UnexpectedReplyError } from "../errors.js";
import { defineScript, replyArray, replyError, replyInt, replyInts } from "../internal/scripts.js";

/** A reclaimed entry as the reclaim script returns it: id, deliveries (this one included), flat fields. */
type ReclaimedEntry = readonly [id: string, deliveries: number, fields: readonly unknown[]];

/** `{nextCursor, entries, deadLettered}`. */
export const RECLAIM = defineScript(
  "outbox/reclaim",
  (reply): { cursor: string; entries: ReclaimedEntry[]; deadLettered: number } => {
    const r = replyArray("outbox/reclaim", reply);
    const entries = r[1];
    const ok =
      r.length === 3 &&
      typeof r[0] === "string" &&
      Array.isArray(entries) &&
      entries.every(
        (e: unknown) =>
          Array.isArray(e) &&
          e.length === 3 &&
          typeof e[0] === "string" &&
          Number.isSafeInteger(e[1]) &&
          Array.isArray(e[2]),
      );
    if (!ok)
      throw replyError("outbox/reclaim", reply, "{cursor, {{id, deliveries, fields}, …}, deadLettered}");
    return {
      cursor: r[0] as string,
      entries: entries as ReclaimedEntry[],
      deadLettered: replyInt("outbox/reclaim", r[2]),
    };
  },
);
/** Whether the entry was moved to the dead-letter stream. */
export const DEAD_LETTER = defineScript(
  "outbox/dead-letter",
  (reply) => replyInt("outbox/dead-letter", reply) === 1,
);
/** Per id: 1 still this consumer's, 0 taken over or gone. */
export const KEEP = defineScript("outbox/keep", (reply) => replyInts("outbox/keep", reply));

/**
 * The dead-letter stream key used by default for a stream: `<stream>:dead` when the key has a hash tag, else
 * `{<stream>}:dead`, so that it always lands in the stream's cluster slot.
 *
 * @example
 * ```ts
 * defaultDeadLetterStream("{fsk:sku-1}:events"); // "{fsk:sku-1}:events:dead"
 * defaultDeadLetterStream("orders");            // "{orders}:dead"
 * ```
 */
export function defaultDeadLetterStream(stream: string): string {
  const open = stream.indexOf("{");
  if (open >= 0) {
    const close = stream.indexOf("}", open + 1);
    if (close > open + 1) return `${stream}:dead`;
  } else if (!stream.includes("}")) {
    return `{${stream}}:dead`;
  }
  throw new InvalidArgumentError(
    "deadLetterStream",
    `cannot derive a dead-letter key in the slot of ${JSON.stringify(stream)}; pass deadLetterStream`,
  );
}

type RawEntry = [id: string, fields: string[] | null];

/** XREADGROUP replies: RESP2 `[[stream, entries]]`, RESP3 as flat `[stream, entries]` or as `{stream: entries}`. */
export function entriesOf(reply: unknown): RawEntry[] {
  if (reply === null || reply === undefined) return [];
  if (Array.isArray(reply)) {
    if (reply.length === 0) return [];
    if (Array.isArray(reply[0])) return (reply[0] as [string, RawEntry[]])[1] ?? [];
    return (reply[1] as RawEntry[]) ?? [];
  }
  if (typeof reply === "object") {
    const values = Object.values(reply as Record<string, RawEntry[]>);
    return values[0] ?? [];
  }
  throw new UnexpectedReplyError("XREADGROUP returned an unexpected reply");
}

export function fieldsOf(flat: readonly unknown[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = String(flat[i + 1]);
  return out;
}

export const isNoGroup = (err: unknown): boolean => err instanceof Error && /NOGROUP/.test(err.message);
