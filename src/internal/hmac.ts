// HMAC-SHA256 (RFC 2104 over FIPS 180-4 SHA-256) of short ASCII strings, computed in JavaScript from the
// key's inner and outer states, hashed once per key. Signing a queue ticket is a MAC of some 60 bytes: three
// compressions. node:crypto's createHmac does the same work natively but pays for a new native object (and
// its garbage collection) per call, which costs more than the hashing itself; here a MAC allocates only its
// 32-byte result. test/internal/hmac.test.ts checks it against createHmac.
import { createHash, createHmac } from "node:crypto";

// The first 32 bits of the fractional parts of the cube roots of the first 64 primes (FIPS 180-4, 4.2.2).
const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);

// The initial hash value (FIPS 180-4, 5.3.3).
const IV = new Int32Array([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);

/** The message schedule; its first 16 words are the block to compress. One process thread: shared. */
const W = new Int32Array(64);
/** The running inner and outer hashes of the message being MACed. */
const H = new Int32Array(8);
const O = new Int32Array(8);

/** Compresses the block in W[0..15] into `h` (FIPS 180-4, 6.2.2). */
function compress(h: Int32Array): void {
  for (let t = 16; t < 64; t++) {
    const x = W[t - 15]!;
    const y = W[t - 2]!;
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    W[t] = (W[t - 16]! + s0 + W[t - 7]! + s1) | 0;
  }
  let a = h[0]!;
  let b = h[1]!;
  let c = h[2]!;
  let d = h[3]!;
  let e = h[4]!;
  let f = h[5]!;
  let g = h[6]!;
  let k = h[7]!;
  for (let t = 0; t < 64; t++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (k + s1 + ((e & f) ^ (~e & g)) + K[t]! + W[t]!) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    k = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  h[0] = (h[0]! + a) | 0;
  h[1] = (h[1]! + b) | 0;
  h[2] = (h[2]! + c) | 0;
  h[3] = (h[3]! + d) | 0;
  h[4] = (h[4]! + e) | 0;
  h[5] = (h[5]! + f) | 0;
  h[6] = (h[6]! + g) | 0;
  h[7] = (h[7]! + k) | 0;
}

/** Messages up to this many characters are MACed here; longer ones by createHmac (native is faster there). */
const MAX_JS_LENGTH = 512;

/** An HMAC-SHA256 key with its inner and outer states hashed in advance. */
export class HmacKey {
  readonly #key: Buffer;
  readonly #inner = new Int32Array(IV);
  readonly #outer = new Int32Array(IV);

  constructor(key: Buffer) {
    this.#key = key;
    // A key longer than the block is hashed first (RFC 2104, section 2); then it is zero-padded to 64 bytes.
    const block = Buffer.alloc(64);
    (key.length > 64 ? createHash("sha256").update(key).digest() : key).copy(block);
    for (const [state, pad] of [
      [this.#inner, 0x36],
      [this.#outer, 0x5c],
    ] as const) {
      for (let i = 0; i < 16; i++) W[i] = block.readInt32BE(4 * i) ^ (pad * 0x01010101);
      compress(state);
    }
  }

  /** HMAC-SHA256 of `message`, as createHmac("sha256", key).update(message).digest() gives it. */
  mac(message: string): Buffer {
    const n = message.length;
    if (n > MAX_JS_LENGTH) return this.#native(message);
    H.set(this.#inner);
    // The inner hash: the key block (done), then the message, 0x80, zeros and the bit length (64 + n bytes).
    let ascii = 0;
    for (let p = 0; ; p += 64) {
      // Whole words of the message, then the rest of the block byte by byte.
      const whole = Math.min(16, (n - p) >> 2);
      let i = 0;
      for (let q = p; i < whole; i++, q += 4) {
        const a = message.charCodeAt(q);
        const b = message.charCodeAt(q + 1);
        const c = message.charCodeAt(q + 2);
        const d = message.charCodeAt(q + 3);
        ascii |= a | b | c | d;
        W[i] = (a << 24) | (b << 16) | (c << 8) | d;
      }
      for (; i < 16; i++) {
        let w = 0;
        for (let j = 0; j < 4; j++) {
          const q = p + 4 * i + j;
          let v = 0;
          if (q < n) {
            v = message.charCodeAt(q);
            ascii |= v;
          } else if (q === n) v = 0x80;
          w |= v << (24 - 8 * j);
        }
        W[i] = w;
      }
      const last = n + 9 <= p + 64;
      if (last) {
        const bits = (64 + n) * 8;
        W[14] = Math.floor(bits / 0x100000000);
        W[15] = bits | 0;
      }
      compress(H);
      if (last) break;
    }
    // createHmac hashes a string's UTF-8 bytes: beyond ASCII they differ from the char codes packed here.
    if (ascii > 0x7f) return this.#native(message);
    // The outer hash: the key block (done), then the inner digest (32 bytes), padded: one block.
    const outer = O;
    outer.set(this.#outer);
    W.set(H, 0);
    W[8] = 0x80000000 | 0;
    W.fill(0, 9, 15);
    W[15] = (64 + 32) * 8;
    compress(outer);
    const out = Buffer.allocUnsafe(32);
    for (let i = 0; i < 8; i++) out.writeInt32BE(outer[i]!, 4 * i);
    return out;
  }

  #native(message: string): Buffer {
    return createHmac("sha256", this.#key).update(message).digest();
  }
}
