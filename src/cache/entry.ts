// How ReadThroughCache stores one id: an entry string (a kind byte, then the serialized value), the scripts
// that write it only when no invalidation ran since the load began, and the default JSON serializer.
import { UnexpectedReplyError } from "../errors.js";
import { defineScript, replyError, replyInt } from "../internal/scripts.js";
import type { CacheSerializer } from "./read-through-types.js";

/** Kind byte of an entry holding a value: `v<serialized>`. */
export const VALUE = "v";
/** The entry of an id that does not exist. */
export const MISSING = "n";

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

/** The value an entry holds, `undefined` for the missing marker; throws on entries this cache did not write. */
export function decodeEntry<V>(serializer: CacheSerializer<V>, id: string, raw: string): V | undefined {
  if (raw === MISSING) return undefined;
  if (raw[0] !== VALUE) throw new UnexpectedReplyError(`cache entry of ${id} is not one this cache wrote`);
  try {
    return serializer.deserialize(raw.slice(1));
  } catch (err) {
    throw new UnexpectedReplyError(`cache entry of ${id} could not be deserialized`, { cause: err });
  }
}
