// Tickets and passes of a waiting room: a small JSON payload bound to the room, signed with HMAC-SHA256
// (src/internal/signed.ts, as the gate's purchase tokens).
import { seal, secretsOf, unseal } from "../internal/signed.js";

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
    this.#secrets = secretsOf(secret);
  }

  /** A signed string of `kind` (its version tag, inside the signed body) carrying `claims` and the room. */
  sign(kind: string, claims: Claims): string {
    return seal(kind, { r: this.room, ...claims }, this.#secrets);
  }

  /** The claims of a signed string of `kind` for this room, or why it is refused. */
  open(kind: string, value: unknown): Record<string, unknown> | "INVALID" | "WRONG_ROOM" {
    const claims = unseal(kind, value, this.#secrets, true);
    if (typeof claims !== "object" || claims === null || Array.isArray(claims)) return "INVALID";
    const c = claims as Record<string, unknown>;
    if (typeof c.r !== "string") return "INVALID";
    if (c.r !== this.room) return "WRONG_ROOM";
    return c;
  }
}
