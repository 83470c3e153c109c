// Redis Cluster hash slots (CRC16/XMODEM of the key or of its hash tag, mod 16384), so RateLimits can tell
// which limits may share one script on a Cluster without asking the server.

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
