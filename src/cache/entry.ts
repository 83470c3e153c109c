// How ReadThroughCache stores one id: an entry string (a kind byte, then the serialized value, optionally
// behind the Redis time at which it turns stale), the scripts that write it only when no invalidation ran
// since the load began (and tell every L1), and the default JSON serializer.
import { UnexpectedReplyError } from "../errors.js";
import { defineScript, replyError, replyInt } from "../internal/scripts.js";
import type { CacheSerializer } from "./read-through-types.js";

/** Kind byte of an entry holding a value: `v<serialized>`. */
export const VALUE = "v";
/** The entry of an id that does not exist. */
export const MISSING = "n";
/** Prefix the scripts put before a value's entry when it has a stale time: `s<Redis ms>|v<serialized>`. */
const STAMPED = "s";

/** Stores a loaded entry: 1 stored, 0 invalidated since the load began (nothing written). */
export const SET = defineScript("cache/cache-set", (reply): 0 | 1 => {
  const n = replyInt("cache/cache-set", reply);
  if (n === 0 || n === 1) return n;
  throw replyError("cache/cache-set", reply, "0 or 1");
});
/** Drops or replaces an entry and bumps its generation; replies the new generation. */
export const INVALIDATE = defineScript("cache/cache-invalidate", (reply) =>
  replyInt("cache/cache-invalidate", reply),
);

/** The default serializer. */
export const jsonSerializer: CacheSerializer<never> = {
  serialize: (value) => JSON.stringify(value),
  deserialize: (text) => JSON.parse(text) as never,
};

/** The entry of a value. */
export function encodeValue<V>(serializer: CacheSerializer<V>, value: V): string {
  return VALUE + serializer.serialize(value);
}

/** A decoded entry: the value (`undefined`: missing) and when it turns stale (Redis ms; none: never). */
export interface Decoded<V> {
  readonly value: V | undefined;
  readonly staleAt: number | undefined;
}

/** What an entry holds; throws {@link UnexpectedReplyError} on entries this cache did not write. */
export function decodeEntry<V>(serializer: CacheSerializer<V>, id: string, raw: string): Decoded<V> {
  let staleAt: number | undefined;
  let body = raw;
  if (raw[0] === STAMPED) {
    const bar = raw.indexOf("|");
    staleAt = bar > 1 ? Number(raw.slice(1, bar)) : Number.NaN;
    if (!Number.isSafeInteger(staleAt)) {
      throw new UnexpectedReplyError(`cache entry of ${id} has no valid stale time`);
    }
    body = raw.slice(bar + 1);
  }
  if (body === MISSING) return { value: undefined, staleAt };
  if (body[0] !== VALUE) throw new UnexpectedReplyError(`cache entry of ${id} is not one this cache wrote`);
  try {
    return { value: serializer.deserialize(body.slice(1)), staleAt };
  } catch (err) {
    throw new UnexpectedReplyError(`cache entry of ${id} could not be deserialized`, { cause: err });
  }
}
