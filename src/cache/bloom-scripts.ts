// The Bloom filter's scripts, each with the typed reply its header declares. The bitmap scripts take one key
// per segment, so their key count is variadic: every call passes the filter's own keys.
import { defineScript, replyArray, replyError, replyInt } from "../internal/scripts.js";
import type { ScriptName } from "../internal/scripts.js";

/** The reply of a script that first checks the stored shape: its integers, or the conflicting shape. */
export type ShapeChecked =
  | { readonly ok: true; readonly values: readonly number[] }
  | { readonly ok: false; readonly storedShape: string };

/** `{0, n…}` (with `count` integers) or `{1, storedShape}`. */
function shapeChecked(name: ScriptName, count: number) {
  return (reply: unknown): ShapeChecked => {
    const r = replyArray(name, reply);
    if (r[0] === 0 && r.length === count + 1 && r.slice(1).every((v) => Number.isSafeInteger(v))) {
      return { ok: true, values: r.slice(1) as number[] };
    }
    if (r[0] === 1 && r.length === 2 && typeof r[1] === "string") return { ok: false, storedShape: r[1] };
    throw replyError(name, reply, `{0, ${count} integers} or {1, shape}`);
  };
}

/** 0 or 1. */
function flag(name: ScriptName) {
  return (reply: unknown): 0 | 1 => {
    const n = replyInt(name, reply);
    if (n === 0 || n === 1) return n;
    throw replyError(name, reply, "0 or 1");
  };
}

/** `{0, version, adds}` or `{1, storedShape}`. */
export const INIT = defineScript("cache/bloom-init", shapeChecked("cache/bloom-init", 2));
/** `{0, version}` or `{1, storedShape}`. */
export const BEGIN = defineScript("cache/bloom-begin", shapeChecked("cache/bloom-begin", 1));
/** `{0, changed, adds}` or `{1, storedShape}`. */
export const ADD = defineScript("cache/bloom-add", shapeChecked("cache/bloom-add", 2));
/** `{0, version}` or `{1, storedShape}`. */
export const CLEAR = defineScript("cache/bloom-clear", shapeChecked("cache/bloom-clear", 1));
/** 0 written; 1 superseded. */
export const BUILD = defineScript("cache/bloom-build", flag("cache/bloom-build"));
/** The new version, or `undefined` when the build was superseded. */
export const COMMIT = defineScript("cache/bloom-commit", (reply): number | undefined => {
  const r = replyArray("cache/bloom-commit", reply);
  if (r.length === 2 && Number.isSafeInteger(r[1])) {
    if (r[0] === 0) return r[1] as number;
    if (r[0] === 1) return undefined;
  }
  throw replyError("cache/bloom-commit", reply, "{0, version} or {1, 0}");
});
/** One boolean per item checked. */
export const CHECK = defineScript("cache/bloom-check", (reply): boolean[] => {
  const r = replyArray("cache/bloom-check", reply);
  if (!r.every((v) => v === 0 || v === 1)) throw replyError("cache/bloom-check", reply, "0s and 1s");
  return r.map((v) => v === 1);
});
