// Redis Cluster hash slots (CRC16/XMODEM of the key or of its hash tag, mod 16384), so modules can tell which
// keys may share one script or one MGET on a Cluster without asking the server.
import type { RedisClient } from "./scripts.js";

const TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ b) & 0xff]!;
  return crc;
}

/**
 * The Redis Cluster slot of `key`: only the part inside the first `{…}` counts when it is non-empty.
 *
 * @example
 * ```ts
 * keySlot("{fsk:u1}:tb") === keySlot("{fsk:u1}:other"); // true
 * ```
 */
export function keySlot(key: string): number {
  const open = key.indexOf("{");
  if (open !== -1) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  return crc16(Buffer.from(key, "utf8")) % 16384;
}

/**
 * Whether `client` is an ioredis Cluster (by shape, so two copies of ioredis in one app still agree).
 *
 * @example
 * ```ts
 * if (isCluster(redis)) console.log("keys of one script must share a slot");
 * ```
 */
export function isCluster(client: RedisClient): boolean {
  return (client as { isCluster?: unknown }).isCluster === true;
}

/** The `keyPrefix` ioredis adds to every key of this client (it counts for the slot). */
function keyPrefixOf(client: RedisClient): string {
  const options = (client as { options?: { keyPrefix?: unknown; redisOptions?: { keyPrefix?: unknown } } })
    .options;
  const prefix = options?.keyPrefix ?? options?.redisOptions?.keyPrefix;
  return typeof prefix === "string" ? prefix : "";
}

/**
 * The hash slot a key lands on for this client (its `keyPrefix` included); 0 on standalone Redis, where any
 * keys may share a script.
 *
 * @example
 * ```ts
 * const slot = slotOf(redis, "{fsk:sku-1}:stock");
 * ```
 */
export function slotOf(client: RedisClient, key: string): number {
  return isCluster(client) ? keySlot(keyPrefixOf(client) + key) : 0;
}
