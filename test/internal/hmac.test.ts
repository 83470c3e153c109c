import { createHmac, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { HmacKey, writeAsciiBase64url } from "../../src/internal/hmac.js";
import { Signer } from "../../src/queue/signing.js";

const ASCII = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~{}":, \x00\x7f';

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

  it("gives the MAC as base64url as Buffer's toString does, for ASCII and other messages", () => {
    const secret = randomBytes(32);
    const key = new HmacKey(secret);
    for (let n = 0; n <= 200; n++) {
      const m = asciiString(n);
      expect(key.macBase64url(m)).toBe(createHmac("sha256", secret).update(m).digest("base64url"));
    }
    for (const m of ["é", "t1.ü", "a".repeat(600)]) {
      expect(key.macBase64url(m)).toBe(createHmac("sha256", secret).update(m).digest("base64url"));
    }
  });
});

describe("writeAsciiBase64url", () => {
  it("writes Buffer's base64url for ASCII text of every length to 100, and refuses text beyond ASCII", () => {
    const out = Buffer.alloc(200);
    for (let n = 0; n <= 100; n++) {
      const t = asciiString(n);
      const end = writeAsciiBase64url(t, out, 5);
      expect(out.toString("latin1", 5, end)).toBe(Buffer.from(t).toString("base64url"));
    }
    for (const t of ["é", "aé", "abé", "abcé", "\u0080", "x\uffff"])
      expect(writeAsciiBase64url(t, out, 0)).toBe(-1);
    expect(writeAsciiBase64url("x".repeat(151), out, 0)).toBe(-1); // 204 characters: does not fit
  });
});

describe("Signer.ticket", () => {
  it("is the same string as sign('t1', { u }) for rooms of every length modulo 3, ASCII or not, and any user", () => {
    const users = [
      "u",
      "u42",
      "alice@example.com",
      'quote"and\\backslash',
      "ユーザー",
      "mixé",
      "x".repeat(200),
      ...Array.from({ length: 50 }, (_, i) => asciiString(1 + i).replace(/[\s{}]/g, "_")),
    ];
    for (const room of [
      "fsk:r",
      "fsk:ro",
      "fsk:roo",
      "fsk:room",
      "bench1a2b3c4d:join",
      "fsk:salé",
      'fsk:"q"',
    ]) {
      const signer = new Signer([randomBytes(32), randomBytes(40)], room);
      for (const u of users) expect(signer.ticket(u), `${room} ${u}`).toBe(signer.sign("t1", { u }));
    }
  });
});
