// Signed strings `<version>.<base64url JSON>.<base64url HMAC-SHA256>`, with key rotation by a list of secrets
// (the first signs, any verifies): the purchase tokens of the gate and the tickets and passes of the queue.
import { timingSafeEqual } from "node:crypto";
import { InvalidArgumentError } from "../errors.js";
import { HmacKey } from "./hmac.js";

/** The keys of a `secret` option (one key or a list, each at least 32 bytes), validated. */
export function secretsOf(secret: unknown): Buffer[] {
  const list: unknown[] = Array.isArray(secret) ? secret : [secret];
  if (list.length === 0) throw new InvalidArgumentError("secret", "must hold at least one key");
  return list.map((s) => {
    if (typeof s !== "string" && !Buffer.isBuffer(s)) {
      throw new InvalidArgumentError("secret", "must be a string or Buffer (or a list of them)");
    }
    const b = typeof s === "string" ? Buffer.from(s, "utf8") : Buffer.from(s);
    if (b.length < 32) throw new InvalidArgumentError("secret", "must be at least 32 bytes");
    return b;
  });
}

/** Each key's HMAC states, hashed once (the keys are the copies secretsOf made: nobody else changes them). */
const keys = new WeakMap<Buffer, HmacKey>();

/** The HMAC key of `secret` (one of the buffers secretsOf returned). */
export function hmacKey(secret: Buffer): HmacKey {
  let key = keys.get(secret);
  if (key === undefined) {
    key = new HmacKey(secret);
    keys.set(secret, key);
  }
  return key;
}

function mac(body: string, secret: Buffer): Buffer {
  return hmacKey(secret).mac(body);
}

/** `payload` signed with the first of `secrets` under `version`. */
export function seal(version: string, payload: unknown, secrets: readonly Buffer[]): string {
  const body = `${version}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}`;
  return `${body}.${hmacKey(secrets[0]!).macBase64url(body)}`;
}

/**
 * The parsed payload of a string sealed under `version` by any of `secrets`, or `undefined` when it is not a
 * string, too long, malformed, of another version, or its signature is wrong. With `canonical`, a signature
 * whose base64url is not the canonical spelling of its bytes is refused too.
 */
export function unseal(
  version: string,
  value: unknown,
  secrets: readonly Buffer[],
  canonical = false,
): unknown {
  if (typeof value !== "string" || value.length > 2048) return undefined;
  const parts = value.split(".");
  if (parts.length !== 3 || parts[0] !== version) return undefined;
  const body = `${parts[0]}.${parts[1]}`;
  const sig = Buffer.from(parts[2]!, "base64url");
  if (sig.length !== 32 || (canonical && sig.toString("base64url") !== parts[2])) return undefined;
  if (!secrets.some((s) => timingSafeEqual(mac(body, s), sig))) return undefined;
  try {
    return JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8")) as unknown;
  } catch {
    return undefined;
  }
}
