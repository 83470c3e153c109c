// Input validation shared by every module: ids that end up inside Redis keys, quantities, durations.
import { InvalidArgumentError } from "../errors.js";

/**
 * The longest id (SKU, user, reservation, lock resource, limiter key) the library accepts.
 *
 * @example
 * ```ts
 * const sku = raw.length <= MAX_ID_LENGTH ? raw : createHash("sha256").update(raw).digest("hex");
 * ```
 */
export const MAX_ID_LENGTH = 200;

// Braces would move a key to another hash slot; whitespace and control characters make ids ambiguous in
// logs, stream fields and the packed records the scripts store.
const FORBIDDEN = /[{}\s\u0000-\u001f\u007f-\u009f\u2028\u2029]/u;

/**
 * Checks that `value` can be used as an id inside a Redis key: a non-empty string of at most 200
 * characters with no `{`, `}`, whitespace or control characters. Throws {@link InvalidArgumentError}.
 *
 * @example
 * ```ts
 * validateId("sku", "iphone-17"); // ok
 * validateId("sku", "a{b}");      // throws InvalidArgumentError
 * ```
 */
export function validateId(name: string, value: unknown): asserts value is string {
  if (typeof value !== "string") throw new InvalidArgumentError(name, "must be a string");
  if (value.length === 0) throw new InvalidArgumentError(name, "must not be empty");
  if (value.length > MAX_ID_LENGTH)
    throw new InvalidArgumentError(name, `must be at most ${MAX_ID_LENGTH} characters`);
  if (!NOT_PLAIN.test(value)) return;
  if (FORBIDDEN.test(value))
    throw new InvalidArgumentError(name, "must not contain '{', '}', whitespace or control characters");
  // A lone surrogate is sent as U+FFFD: "a\ud800" and "a\udc00" would name the same key.
  if (LONE_SURROGATE.test(value)) throw new InvalidArgumentError(name, "must be well-formed Unicode");
}

/** A character other than printable ASCII without `{` `}`: an id without one passes both checks below. */
const NOT_PLAIN = /[^\x21-\x7a\x7c\x7e]/;

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Checks that an options argument is an object, or `undefined` (then the defaults apply) unless it is
 * `required`. Throws
 * {@link InvalidArgumentError} for `null`, numbers, strings and the like, before anything is written.
 *
 * @example
 * ```ts
 * validateOptions("options", options); // in a method taking `options: Opts = {}`
 * ```
 */
export function validateOptions(
  name: string,
  value: unknown,
  { required = false, known }: { readonly required?: boolean; readonly known?: readonly string[] } = {},
): asserts value is object | undefined {
  if (value === undefined && !required) return;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidArgumentError(name, "must be an object");
  }
  if (known !== undefined) checkKnownKeys(name, value, known);
}

/**
 * The keys of an options type, for `validateOptions(…, { known })`, spelled as an object literal so that the
 * compiler checks the list against the type both ways: a key missing from it, or one the type does not
 * have, fails to compile.
 *
 * @example
 * ```ts
 * const KNOWN = optionKeys<{ readonly ttlMs?: number; readonly prefix?: string }>({ ttlMs: 1, prefix: 1 });
 * validateOptions("options", options, { known: KNOWN }); // ["ttlMs", "prefix"]
 * ```
 */
export function optionKeys<T extends object>(keys: {
  readonly [K in keyof T & string]-?: 1;
}): readonly string[] {
  return Object.freeze(Object.keys(keys));
}

/**
 * Refuses keys of an options object that are not in `known`, so that a misspelled option
 * (`perUserLimt: 5`) is an error instead of a silent default. Keys whose value is `undefined` are
 * ignored, as they are when an option is read.
 *
 * @example
 * ```ts
 * checkKnownKeys("options", { perUserLimt: 5 }, ["perUserLimit"]); // throws InvalidArgumentError
 * ```
 */
export function checkKnownKeys(name: string, value: object, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (known.includes(key) || (value as Record<string, unknown>)[key] === undefined) continue;
    const near = known.find((k) => k.toLowerCase() === key.toLowerCase() || similar(k, key));
    throw new InvalidArgumentError(
      `${name}.${key}`,
      `is not a known option${near === undefined ? "" : ` (did you mean ${near}?)`}; known: ${known.join(", ")}`,
    );
  }
}

// Edit distance of at most 2, for the "did you mean" hint.
function similar(a: string, b: string): boolean {
  if (Math.abs(a.length - b.length) > 2) return false;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]! <= 2;
}

/**
 * Checks that `value` is a safe integer within `[min, max]`. Throws {@link InvalidArgumentError}.
 *
 * @example
 * ```ts
 * validateInt("quantity", 2, { min: 1 });
 * ```
 */
export function validateInt(
  name: string,
  value: unknown,
  { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER }: { min?: number; max?: number } = {},
): asserts value is number {
  if (typeof value !== "number" || !Number.isSafeInteger(value))
    throw new InvalidArgumentError(name, "must be an integer");
  if (value < min) throw new InvalidArgumentError(name, `must be at least ${min}`);
  if (value > max) throw new InvalidArgumentError(name, `must be at most ${max}`);
}

/**
 * Checks an optional integer option; `undefined` passes.
 *
 * @example
 * ```ts
 * validateOptionalInt("holdMs", options.holdMs, { min: 1 });
 * ```
 */
export function validateOptionalInt(
  name: string,
  value: unknown,
  range?: { min?: number; max?: number },
): asserts value is number | undefined {
  if (value !== undefined) validateInt(name, value, range);
}
