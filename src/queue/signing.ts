// Tickets and passes of a waiting room: a small JSON payload bound to the room, signed with HMAC-SHA256
// (the approach of gate/purchase-tokens: a versioned body, a base64url signature, key rotation by a list).
import { createHmac, timingSafeEqual } from "node:crypto";
import { InvalidArgumentError } from "../errors.js";

/** A signing key of a waiting room: at least 32 bytes (a string counts its UTF-8 bytes). */
export type RoomSecret = string | Buffer;

/** A payload's own fields (the room is added and checked by the signer). */
export type Claims = Readonly<Record<string, string | number>>;

/** Signs and opens `<kind>.<payload>.<signature>` strings bound to one room. @internal */
export class Signer {
  readonly #secrets: Buffer[];

  constructor(
    secret: unknown,
    private readonly room: string,
  ) {
    const list: unknown[] = Array.isArray(secret) ? secret : [secret];
    if (list.length === 0) throw new InvalidArgumentError("secret", "must hold at least one key");
    this.#secrets = list.map((s) => {
      if (typeof s !== "string" && !Buffer.isBuffer(s)) {
        throw new InvalidArgumentError("secret", "must be a string or Buffer (or a list of them)");
      }
      const b = typeof s === "string" ? Buffer.from(s, "utf8") : Buffer.from(s);
      if (b.length < 32) throw new InvalidArgumentError("secret", "must be at least 32 bytes");
      return b;
    });
  }

  #mac(body: string, secret: Buffer): Buffer {
    return createHmac("sha256", secret).update(body).digest();
  }

  /** A signed string of `kind` (its version tag, inside the signed body) carrying `claims` and the room. */
  sign(kind: string, claims: Claims): string {
    const body = `${kind}.${Buffer.from(JSON.stringify({ r: this.room, ...claims })).toString("base64url")}`;
    return `${body}.${this.#mac(body, this.#secrets[0]!).toString("base64url")}`;
  }

  /** The claims of a signed string of `kind` for this room, or why it is refused. */
  open(kind: string, value: unknown): Record<string, unknown> | "INVALID" | "WRONG_ROOM" {
    if (typeof value !== "string" || value.length > 2048) return "INVALID";
    const parts = value.split(".");
    if (parts.length !== 3 || parts[0] !== kind) return "INVALID";
    const body = `${parts[0]}.${parts[1]}`;
    const sig = Buffer.from(parts[2]!, "base64url");
    if (sig.length !== 32 || sig.toString("base64url") !== parts[2]) return "INVALID";
    if (!this.#secrets.some((s) => timingSafeEqual(this.#mac(body, s), sig))) return "INVALID";
    let claims: unknown;
    try {
      claims = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"));
    } catch {
      return "INVALID";
    }
    if (typeof claims !== "object" || claims === null || Array.isArray(claims)) return "INVALID";
    const c = claims as Record<string, unknown>;
    if (typeof c.r !== "string") return "INVALID";
    if (c.r !== this.room) return "WRONG_ROOM";
    return c;
  }
}
