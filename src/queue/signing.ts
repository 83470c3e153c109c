// Tickets and passes of a waiting room: a small JSON payload bound to the room, signed with HMAC-SHA256
// (src/internal/signed.ts, as the gate's purchase tokens).
import { writeAsciiBase64url } from "../internal/hmac.js";
import { hmacKey, seal, secretsOf, unseal } from "../internal/signed.js";

/** A signing key of a waiting room: at least 32 bytes (a string counts its UTF-8 bytes). */
export type RoomSecret = string | Buffer;

/** A payload's own fields (the room is added and checked by the signer). */
export type Claims = Readonly<Record<string, string | number>>;

/** Signs and opens `<kind>.<payload>.<signature>` strings bound to one room. @internal */
export class Signer {
  readonly #secrets: Buffer[];
  /**
   * A ticket's payload is `{"r":<room>,"u":<user>}`: its start is the same for every user. `t1.` and the
   * base64url of the whole groups of three bytes of that start are written once, at the head of this buffer;
   * a ticket writes the rest of its body, then its MAC, after them. Unset when the room id is not ASCII (then
   * tickets take the general way).
   */
  readonly #ticket: Buffer | undefined;
  readonly #ticketHead: number;
  readonly #ticketRest: string;

  constructor(
    secret: unknown,
    private readonly room: string,
  ) {
    this.#secrets = secretsOf(secret);
    const start = JSON.stringify({ r: room, u: "" }).slice(0, -3); // {"r":<room>,"u":
    const whole = start.length - (start.length % 3);
    const buf = Buffer.alloc(2048);
    buf.write("t1.", 0, "latin1");
    const head = writeAsciiBase64url(start.slice(0, whole), buf, 3);
    this.#ticket = head < 0 ? undefined : buf;
    this.#ticketHead = head;
    this.#ticketRest = start.slice(whole);
  }

  /** The ticket of `userId`: the same string as `sign("t1", { u: userId })`, made with less work. */
  ticket(userId: string): string {
    const buf = this.#ticket;
    if (buf !== undefined) {
      const n = writeAsciiBase64url(`${this.#ticketRest}${JSON.stringify(userId)}}`, buf, this.#ticketHead);
      const end = n < 0 ? -1 : hmacKey(this.#secrets[0]!).signInPlace(buf, n);
      if (end >= 0) return buf.toString("latin1", 0, end);
    }
    return this.sign("t1", { u: userId });
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
