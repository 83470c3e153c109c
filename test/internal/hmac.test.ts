import { createHmac, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { HmacKey } from "../../src/internal/hmac.js";

const ASCII = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~{}\":, \x00\x7f";

function asciiString(length: number): string {
  const bytes = randomBytes(length);
  let s = "";
  for (const b of bytes) s += ASCII[b % ASCII.length];
  return s;
}

describe("HmacKey", () => {
  it("equals createHmac for every message length around the block boundaries and up to 600 characters", () => {
    for (const keyLength of [32, 33, 63, 64, 65, 100, 200]) {
      const secret = randomBytes(keyLength);
      const key = new HmacKey(secret);
      for (let n = 0; n <= 600; n++) {
        const m = asciiString(n);
        expect(key.mac(m).toString("hex"), `key ${keyLength} bytes, message ${n}`).toBe(
          createHmac("sha256", secret).update(m).digest("hex"),
        );
      }
    }
  });

  it("equals createHmac for non-ASCII messages (UTF-8, as createHmac encodes strings)", () => {
    const secret = randomBytes(32);
    const key = new HmacKey(secret);
    for (const m of ["é", "t1.ü", "ユーザー", "😀x", "a".repeat(100) + "ß"]) {
      expect(key.mac(m).equals(createHmac("sha256", secret).update(m).digest())).toBe(true);
    }
  });

  it("matches the RFC 4231 test vectors", () => {
    // Test case 2 (a short key) and 6 (a key longer than the block).
    expect(new HmacKey(Buffer.from("Jefe")).mac("what do ya want for nothing?").toString("hex")).toBe(
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    );
    expect(
      new HmacKey(Buffer.alloc(131, 0xaa))
        .mac("Test Using Larger Than Block-Size Key - Hash Key First")
        .toString("hex"),
    ).toBe("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  });

  it("gives the same MAC again for a key used many times (no state carried between calls)", () => {
    const secret = randomBytes(32);
    const key = new HmacKey(secret);
    const other = new HmacKey(randomBytes(32));
    const m = asciiString(57);
    const first = key.mac(m);
    for (let i = 0; i < 100; i++) {
      other.mac(asciiString(i));
      expect(key.mac(m).equals(first)).toBe(true);
    }
    expect(first.equals(createHmac("sha256", secret).update(m).digest())).toBe(true);
  });
});
