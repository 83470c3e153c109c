// The error hierarchy: every error the library throws is a FlashSaleError with a stable `code`.
// Expected outcomes (sold out, rate limited) are returned as data and never thrown.

// Every copy of the package (ESM and CJS builds, two versions) shares this registered symbol.
const KINDS = Symbol.for("flash-sale-kit.error-kinds");

/**
 * Base class of every error thrown by flash-sale-kit. `code` is stable across versions; `cause` carries the
 * underlying error (a Redis or PostgreSQL error) when there is one.
 *
 * @example
 * ```ts
 * try {
 *   await inventory.reserve(sku, { userId });
 * } catch (err) {
 *   if (err instanceof FlashSaleError) console.error(err.code, err.message);
 * }
 * ```
 */
export class FlashSaleError extends Error {
  /** A stable, machine-readable code such as `INVALID_ARGUMENT`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
    // The names of this error's classes, so that `instanceof` holds across copies of the package.
    const kinds: string[] = [];
    for (let c: unknown = new.target; typeof c === "function" && c !== Error; c = Object.getPrototypeOf(c)) {
      kinds.push((c as { readonly kind?: string }).kind ?? "");
    }
    Object.defineProperty(this, KINDS, { value: kinds, enumerable: false });
  }

  /**
   * The class's stable name, matched by `instanceof` across copies of the package (a process that loads both
   * the ESM and the CJS build gets two copies of every class).
   */
  static readonly kind: string = "FlashSaleError";

  /**
   * `err instanceof SomeFlashSaleError` holds for an error made by any copy of the package: the ESM and the
   * CJS builds loaded in one process, or two installed versions.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    if (typeof value !== "object" || value === null) return false;
    const kinds = (value as { readonly [KINDS]?: unknown })[KINDS];
    const kind = (this as { readonly kind?: unknown }).kind;
    return Array.isArray(kinds) && typeof kind === "string" && kinds.includes(kind);
  }
}

/**
 * A caller passed a value the library cannot accept (an id with braces, a fractional quantity, a negative
 * duration…). Nothing was written.
 *
 * @example
 * ```ts
 * await inventory.reserve("sku{1}", { userId: "u1" }); // throws InvalidArgumentError
 * ```
 */
export class InvalidArgumentError extends FlashSaleError {
  /** The class's stable name, matched by `instanceof` across copies of the package. */
  static override readonly kind: string = "InvalidArgumentError";

  /** The name of the argument or option that was rejected. */
  readonly argument: string;

  constructor(argument: string, message: string) {
    super("INVALID_ARGUMENT", `${argument} ${message}`);
    this.argument = argument;
  }
}

/**
 * Redis (or the connection to it) failed: a closed connection, a timeout, a script error. The original
 * error is in `cause`. Whether the command ran is unknown; every operation of the library is safe to retry
 * with the same ids.
 *
 * @example
 * ```ts
 * await redis.quit();
 * await inventory.snapshot("sku-1"); // throws RedisUnavailableError
 * ```
 */
export class RedisUnavailableError extends FlashSaleError {
  /** The class's stable name, matched by `instanceof` across copies of the package. */
  static override readonly kind: string = "RedisUnavailableError";

  constructor(message: string, options?: { cause?: unknown }) {
    super("REDIS_UNAVAILABLE", message, options);
  }
}

/**
 * A script or a database routine answered something the library does not understand: a version mismatch
 * between library and stored data, or a key that another program overwrote.
 *
 * @example
 * ```ts
 * // thrown when, say, a SKU's hash was overwritten by hand with a string key
 * ```
 */
export class UnexpectedReplyError extends FlashSaleError {
  /** The class's stable name, matched by `instanceof` across copies of the package. */
  static override readonly kind: string = "UnexpectedReplyError";

  constructor(message: string, options?: { cause?: unknown }) {
    super("UNEXPECTED_REPLY", message, options);
  }
}

/**
 * A conflict with what is already stored: a reservation id reused for another user or quantity
 * (`RESERVATION_CONFLICT`), a stock level set below what is already held and confirmed
 * (`STOCK_BELOW_COMMITTED`), or a Bloom filter opened with another shape than the stored one
 * (`BLOOM_SHAPE_MISMATCH`). Nothing was written.
 *
 * @example
 * ```ts
 * await inventory.setStock("sku-1", 0); // throws ConflictError when units are already held
 * ```
 */
export class ConflictError extends FlashSaleError {
  /** The class's stable name, matched by `instanceof` across copies of the package. */
  static override readonly kind: string = "ConflictError";

  constructor(code: string, message: string) {
    super(code, message);
  }
}

/**
 * The database failed (connection, constraint, syntax). The original error is in `cause`.
 *
 * @example
 * ```ts
 * await sqlInventory.snapshot("sku-1"); // throws DatabaseError when the pool is ended
 * ```
 */
export class DatabaseError extends FlashSaleError {
  /** The class's stable name, matched by `instanceof` across copies of the package. */
  static override readonly kind: string = "DatabaseError";

  constructor(message: string, options?: { cause?: unknown }) {
    super("DATABASE_ERROR", message, options);
  }
}

/**
 * A Redis error that is a reply from the server (a script error, WRONGTYPE, READONLY, OOM…) rather than a
 * lost connection.
 *
 * @example
 * ```ts
 * // thrown when a key the library owns was overwritten with another type
 * ```
 */
export class RedisCommandError extends FlashSaleError {
  /** The class's stable name, matched by `instanceof` across copies of the package. */
  static override readonly kind: string = "RedisCommandError";

  constructor(message: string, options?: { cause?: unknown }) {
    super("REDIS_COMMAND_ERROR", message, options);
  }
}
