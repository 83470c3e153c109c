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

/** The block to compress. One process thread: shared. */
const W = new Int32Array(16);
/** The running inner and outer hashes of the message being MACed. */
const H = new Int32Array(8);
const O = new Int32Array(8);

/**
 * Compresses the block in W[0..15] into `h` (FIPS 180-4, 6.2.2). The rounds are written out sixteen at a
 * time, so that the message schedule lives in sixteen local variables (w0…w15, each replaced by the word 16
 * rounds later) and the working variables rotate by name rather than by assignment; the functions of 4.1.2
 * are written inline (as calls, they are not inlined in a function this long, and cost three times more).
 */
function compress(h: Int32Array): void {
  let w0 = W[0]!;
  let w1 = W[1]!;
  let w2 = W[2]!;
  let w3 = W[3]!;
  let w4 = W[4]!;
  let w5 = W[5]!;
  let w6 = W[6]!;
  let w7 = W[7]!;
  let w8 = W[8]!;
  let w9 = W[9]!;
  let w10 = W[10]!;
  let w11 = W[11]!;
  let w12 = W[12]!;
  let w13 = W[13]!;
  let w14 = W[14]!;
  let w15 = W[15]!;
  let a = h[0]!;
  let b = h[1]!;
  let c = h[2]!;
  let d = h[3]!;
  let e = h[4]!;
  let f = h[5]!;
  let g = h[6]!;
  let k = h[7]!;
  let x = 0;
  let y = 0;
  let t1 = 0;
  for (let t = 0; t < 64; t += 16) {
    if (t > 0) {
      // W[t] = σ1(W[t - 2]) + W[t - 7] + σ0(W[t - 15]) + W[t - 16]
      x = w1;
      y = w14;
      x = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      y = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w0 = (y + w9 + x + w0) | 0;
      x = w2;
      y = w15;
      x = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      y = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w1 = (y + w10 + x + w1) | 0;
      x = w3;
      y = w0;
      x = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      y = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w2 = (y + w11 + x + w2) | 0;
      x = w4;
      y = w1;
      x = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      y = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w3 = (y + w12 + x + w3) | 0;
      x = w5;
      y = w2;
      x = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      y = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w4 = (y + w13 + x + w4) | 0;
      x = w6;
      y = w3;
      x = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      y = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w5 = (y + w14 + x + w5) | 0;
      x = w7;
      y = w4;
      x = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      y = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w6 = (y + w15 + x + w6) | 0;
      x = w8;
      y = w5;
      x = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      y = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w7 = (y + w0 + x + w7) | 0;
      x = w9;
      y = w6;
      x = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      y = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w8 = (y + w1 + x + w8) | 0;
      x = w10;
      y = w7;
      x = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      y = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w9 = (y + w2 + x + w9) | 0;
      x = w11;
      y = w8;
      x = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      y = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w10 = (y + w3 + x + w10) | 0;
      x = w12;
      y = w9;
      x = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      y = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w11 = (y + w4 + x + w11) | 0;
      x = w13;
      y = w10;
      x = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      y = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w12 = (y + w5 + x + w12) | 0;
      x = w14;
      y = w11;
      x = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      y = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w13 = (y + w6 + x + w13) | 0;
      x = w15;
      y = w12;
      x = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      y = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w14 = (y + w7 + x + w14) | 0;
      x = w0;
      y = w13;
      x = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      y = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w15 = (y + w8 + x + w15) | 0;
    }
    // T1 = h + Σ1(e) + Ch(e, f, g) + K[t] + W[t]; d += T1; h = T1 + Σ0(a) + Maj(a, b, c)
    x = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    t1 = (k + x + (g ^ (e & (f ^ g))) + K[t + 0]! + w0) | 0;
    x = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    d = (d + t1) | 0;
    k = (t1 + x + ((a & b) | (c & (a | b)))) | 0;
    x = ((d >>> 6) | (d << 26)) ^ ((d >>> 11) | (d << 21)) ^ ((d >>> 25) | (d << 7));
    t1 = (g + x + (f ^ (d & (e ^ f))) + K[t + 1]! + w1) | 0;
    x = ((k >>> 2) | (k << 30)) ^ ((k >>> 13) | (k << 19)) ^ ((k >>> 22) | (k << 10));
    c = (c + t1) | 0;
    g = (t1 + x + ((k & a) | (b & (k | a)))) | 0;
    x = ((c >>> 6) | (c << 26)) ^ ((c >>> 11) | (c << 21)) ^ ((c >>> 25) | (c << 7));
    t1 = (f + x + (e ^ (c & (d ^ e))) + K[t + 2]! + w2) | 0;
    x = ((g >>> 2) | (g << 30)) ^ ((g >>> 13) | (g << 19)) ^ ((g >>> 22) | (g << 10));
    b = (b + t1) | 0;
    f = (t1 + x + ((g & k) | (a & (g | k)))) | 0;
    x = ((b >>> 6) | (b << 26)) ^ ((b >>> 11) | (b << 21)) ^ ((b >>> 25) | (b << 7));
    t1 = (e + x + (d ^ (b & (c ^ d))) + K[t + 3]! + w3) | 0;
    x = ((f >>> 2) | (f << 30)) ^ ((f >>> 13) | (f << 19)) ^ ((f >>> 22) | (f << 10));
    a = (a + t1) | 0;
    e = (t1 + x + ((f & g) | (k & (f | g)))) | 0;
    x = ((a >>> 6) | (a << 26)) ^ ((a >>> 11) | (a << 21)) ^ ((a >>> 25) | (a << 7));
    t1 = (d + x + (c ^ (a & (b ^ c))) + K[t + 4]! + w4) | 0;
    x = ((e >>> 2) | (e << 30)) ^ ((e >>> 13) | (e << 19)) ^ ((e >>> 22) | (e << 10));
    k = (k + t1) | 0;
    d = (t1 + x + ((e & f) | (g & (e | f)))) | 0;
    x = ((k >>> 6) | (k << 26)) ^ ((k >>> 11) | (k << 21)) ^ ((k >>> 25) | (k << 7));
    t1 = (c + x + (b ^ (k & (a ^ b))) + K[t + 5]! + w5) | 0;
    x = ((d >>> 2) | (d << 30)) ^ ((d >>> 13) | (d << 19)) ^ ((d >>> 22) | (d << 10));
    g = (g + t1) | 0;
    c = (t1 + x + ((d & e) | (f & (d | e)))) | 0;
    x = ((g >>> 6) | (g << 26)) ^ ((g >>> 11) | (g << 21)) ^ ((g >>> 25) | (g << 7));
    t1 = (b + x + (a ^ (g & (k ^ a))) + K[t + 6]! + w6) | 0;
    x = ((c >>> 2) | (c << 30)) ^ ((c >>> 13) | (c << 19)) ^ ((c >>> 22) | (c << 10));
    f = (f + t1) | 0;
    b = (t1 + x + ((c & d) | (e & (c | d)))) | 0;
    x = ((f >>> 6) | (f << 26)) ^ ((f >>> 11) | (f << 21)) ^ ((f >>> 25) | (f << 7));
    t1 = (a + x + (k ^ (f & (g ^ k))) + K[t + 7]! + w7) | 0;
    x = ((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10));
    e = (e + t1) | 0;
    a = (t1 + x + ((b & c) | (d & (b | c)))) | 0;
    x = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    t1 = (k + x + (g ^ (e & (f ^ g))) + K[t + 8]! + w8) | 0;
    x = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    d = (d + t1) | 0;
    k = (t1 + x + ((a & b) | (c & (a | b)))) | 0;
    x = ((d >>> 6) | (d << 26)) ^ ((d >>> 11) | (d << 21)) ^ ((d >>> 25) | (d << 7));
    t1 = (g + x + (f ^ (d & (e ^ f))) + K[t + 9]! + w9) | 0;
    x = ((k >>> 2) | (k << 30)) ^ ((k >>> 13) | (k << 19)) ^ ((k >>> 22) | (k << 10));
    c = (c + t1) | 0;
    g = (t1 + x + ((k & a) | (b & (k | a)))) | 0;
    x = ((c >>> 6) | (c << 26)) ^ ((c >>> 11) | (c << 21)) ^ ((c >>> 25) | (c << 7));
    t1 = (f + x + (e ^ (c & (d ^ e))) + K[t + 10]! + w10) | 0;
    x = ((g >>> 2) | (g << 30)) ^ ((g >>> 13) | (g << 19)) ^ ((g >>> 22) | (g << 10));
    b = (b + t1) | 0;
    f = (t1 + x + ((g & k) | (a & (g | k)))) | 0;
    x = ((b >>> 6) | (b << 26)) ^ ((b >>> 11) | (b << 21)) ^ ((b >>> 25) | (b << 7));
    t1 = (e + x + (d ^ (b & (c ^ d))) + K[t + 11]! + w11) | 0;
    x = ((f >>> 2) | (f << 30)) ^ ((f >>> 13) | (f << 19)) ^ ((f >>> 22) | (f << 10));
    a = (a + t1) | 0;
    e = (t1 + x + ((f & g) | (k & (f | g)))) | 0;
    x = ((a >>> 6) | (a << 26)) ^ ((a >>> 11) | (a << 21)) ^ ((a >>> 25) | (a << 7));
    t1 = (d + x + (c ^ (a & (b ^ c))) + K[t + 12]! + w12) | 0;
    x = ((e >>> 2) | (e << 30)) ^ ((e >>> 13) | (e << 19)) ^ ((e >>> 22) | (e << 10));
    k = (k + t1) | 0;
    d = (t1 + x + ((e & f) | (g & (e | f)))) | 0;
    x = ((k >>> 6) | (k << 26)) ^ ((k >>> 11) | (k << 21)) ^ ((k >>> 25) | (k << 7));
    t1 = (c + x + (b ^ (k & (a ^ b))) + K[t + 13]! + w13) | 0;
    x = ((d >>> 2) | (d << 30)) ^ ((d >>> 13) | (d << 19)) ^ ((d >>> 22) | (d << 10));
    g = (g + t1) | 0;
    c = (t1 + x + ((d & e) | (f & (d | e)))) | 0;
    x = ((g >>> 6) | (g << 26)) ^ ((g >>> 11) | (g << 21)) ^ ((g >>> 25) | (g << 7));
    t1 = (b + x + (a ^ (g & (k ^ a))) + K[t + 14]! + w14) | 0;
    x = ((c >>> 2) | (c << 30)) ^ ((c >>> 13) | (c << 19)) ^ ((c >>> 22) | (c << 10));
    f = (f + t1) | 0;
    b = (t1 + x + ((c & d) | (e & (c | d)))) | 0;
    x = ((f >>> 6) | (f << 26)) ^ ((f >>> 11) | (f << 21)) ^ ((f >>> 25) | (f << 7));
    t1 = (a + x + (k ^ (f & (g ^ k))) + K[t + 15]! + w15) | 0;
    x = ((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10));
    e = (e + t1) | 0;
    a = (t1 + x + ((b & c) | (d & (b | c)))) | 0;
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

/** The base64url alphabet (RFC 4648, section 5), as character codes. */
const B64 = Uint8Array.from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", (c) =>
  c.charCodeAt(0),
);

/**
 * Writes `text` as base64url (no padding) of its bytes into `out` from `at`, as
 * `Buffer.from(text).toString("base64url")` spells it; returns where it ends, or -1 when `text` is not all
 * ASCII or does not fit.
 */
export function writeAsciiBase64url(text: string, out: Uint8Array, at: number): number {
  const n = text.length;
  if (at + Math.ceil(n / 3) * 4 > out.length) return -1;
  let o = at;
  let i = 0;
  for (; i + 3 <= n; i += 3) {
    const a = text.charCodeAt(i);
    const b = text.charCodeAt(i + 1);
    const c = text.charCodeAt(i + 2);
    if ((a | b | c) > 0x7f) return -1;
    const v = (a << 16) | (b << 8) | c;
    out[o++] = B64[v >>> 18]!;
    out[o++] = B64[(v >>> 12) & 63]!;
    out[o++] = B64[(v >>> 6) & 63]!;
    out[o++] = B64[v & 63]!;
  }
  if (i < n) {
    const a = text.charCodeAt(i);
    const b = i + 1 < n ? text.charCodeAt(i + 1) : 0;
    if ((a | b) > 0x7f) return -1;
    const v = (a << 16) | (b << 8);
    out[o++] = B64[v >>> 18]!;
    out[o++] = B64[(v >>> 12) & 63]!;
    if (i + 1 < n) out[o++] = B64[(v >>> 6) & 63]!;
  }
  return o;
}

/** Messages up to this many bytes are MACed here; longer ones by createHmac (native is faster there). */
const MAX_JS_LENGTH = 512;

/** A message given as a string, copied here as bytes. */
const SCRATCH = Buffer.allocUnsafe(MAX_JS_LENGTH);

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
    if (!this.#digestString(message)) return this.#native(message);
    const out = Buffer.allocUnsafe(32);
    for (let i = 0; i < 8; i++) out.writeInt32BE(O[i]!, 4 * i);
    return out;
  }

  /** The same MAC as base64url (no padding), as `mac(message).toString("base64url")` gives it. */
  macBase64url(message: string): string {
    if (!this.#digestString(message)) return this.#native(message).toString("base64url");
    return SCRATCH.toString("latin1", 0, writeDigestBase64url(SCRATCH, 0));
  }

  /**
   * Writes the MAC of the bytes `buf[0..n)` into `buf` from `n + 1`, as base64url after a "."; returns where
   * it ends, or -1 when it does not fit or the message is too long for here. `buf` may be a shared buffer:
   * it is read in full before it is written.
   */
  signInPlace(buf: Uint8Array, n: number): number {
    if (n > MAX_JS_LENGTH || n + 1 + 43 > buf.length) return -1;
    this.#digest(buf, n);
    buf[n] = 0x2e; // "."
    return writeDigestBase64url(buf, n + 1);
  }

  /** Computes the MAC of `message` into O; false when it is too long or not ASCII (bytes ≠ char codes). */
  #digestString(message: string): boolean {
    const n = message.length;
    if (n > MAX_JS_LENGTH || Buffer.byteLength(message, "utf8") !== n) return false;
    SCRATCH.write(message, 0, n, "latin1");
    this.#digest(SCRATCH, n);
    return true;
  }

  /** Computes the MAC of the bytes `m[0..n)` into O. */
  #digest(m: Uint8Array, n: number): void {
    const inner = this.#inner;
    for (let i = 0; i < 8; i++) H[i] = inner[i]!;
    // The inner hash: the key block (done), then the message, 0x80, zeros and the bit length (64 + n bytes).
    for (let p = 0; ; p += 64) {
      // Whole words of the message, then the rest of the block byte by byte.
      const whole = Math.max(0, Math.min(16, (n - p) >> 2));
      let i = 0;
      for (let q = p; i < whole; i++, q += 4)
        W[i] = (m[q]! << 24) | (m[q + 1]! << 16) | (m[q + 2]! << 8) | m[q + 3]!;
      for (; i < 16; i++) {
        let w = 0;
        for (let j = 0; j < 4; j++) {
          const q = p + 4 * i + j;
          const v = q < n ? m[q]! : q === n ? 0x80 : 0;
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
    // The outer hash: the key block (done), then the inner digest (32 bytes), padded: one block.
    const outer = this.#outer;
    for (let i = 0; i < 8; i++) {
      O[i] = outer[i]!;
      W[i] = H[i]!;
      W[i + 8] = 0;
    }
    W[8] = 0x80000000 | 0;
    W[15] = (64 + 32) * 8;
    compress(O);
  }

  #native(message: string): Buffer {
    return createHmac("sha256", this.#key).update(message).digest();
  }
}

/** Byte `j` (big-endian) of the digest in O. */
const byteOf = (j: number): number => (O[j >> 2]! >>> (24 - 8 * (j & 3))) & 0xff;

/** Writes the digest in O as base64url (43 characters) into `out` from `at`; returns where it ends. */
function writeDigestBase64url(out: Uint8Array, at: number): number {
  let o = at;
  // 32 bytes: ten groups of three, then two bytes (three characters).
  for (let j = 0; j < 30; j += 3) {
    const v = (byteOf(j) << 16) | (byteOf(j + 1) << 8) | byteOf(j + 2);
    out[o++] = B64[v >>> 18]!;
    out[o++] = B64[(v >>> 12) & 63]!;
    out[o++] = B64[(v >>> 6) & 63]!;
    out[o++] = B64[v & 63]!;
  }
  const v = (byteOf(30) << 16) | (byteOf(31) << 8);
  out[o++] = B64[v >>> 18]!;
  out[o++] = B64[(v >>> 12) & 63]!;
  out[o++] = B64[(v >>> 6) & 63]!;
  return o;
}
