// The stock scripts (lua/stock/*.lua), each with the decoder that types its reply.
import { defineScript, replyError, replyInt, replyInts } from "../internal/scripts.js";
import type { SkuState } from "./sold-out-flags.js";

/**
 * `code` 0 written (`value`: units available), 1 below committed (`value`: held + confirmed), 2 the SKU is
 * split into buckets (`value`: its bucket count; nothing written); `records`: the reservations the SKU has
 * ever made.
 */
export const SET_STOCK = defineScript("stock/set-stock", (r) => {
  const [code, value, records] = replyInts("stock/set-stock", r, 3) as [number, number, number];
  if (code !== 0 && code !== 1 && code !== 2) throw replyError("stock/set-stock", r, "code 0, 1 or 2");
  return { code, value, records };
});

const state = (flat: readonly number[], at: number): SkuState => ({
  records: flat[at]!,
  available: flat[at + 1]!,
  perUserLimit: flat[at + 2]!,
  startsAt: flat[at + 3]!,
  endsAt: flat[at + 4]!,
  now: flat[at + 5]!,
});

/**
 * `codes`: two integers per reservation (code, value), flat; the caller checks the count against its batch.
 * `state`: the SKU as the call left it.
 */
export const RESERVE = defineScript("stock/reserve", (r) => {
  const flat = replyInts("stock/reserve", r);
  if (flat.length < 6 || (flat.length - 6) % 2 !== 0) {
    throw replyError("stock/reserve", r, "pairs of integers and a state of six");
  }
  return { codes: flat.slice(0, flat.length - 6), state: state(flat, flat.length - 6) };
});

/** A SKU's state, read in one step. */
export const STATE = defineScript("stock/state", (r) => state(replyInts("stock/state", r, 6), 0));

/** 0 confirmed, 1 released, 2 unknown reservation. */
export const CONFIRM = defineScript("stock/confirm", (r) => {
  const code = replyInt("stock/confirm", r);
  if (code < 0 || code > 2) throw replyError("stock/confirm", r, "0, 1 or 2");
  return code as 0 | 1 | 2;
});

/** 0 released, 1 confirmed, 2 unknown reservation. */
export const RELEASE = defineScript("stock/release", (r) => {
  const code = replyInt("stock/release", r);
  if (code < 0 || code > 2) throw replyError("stock/release", r, "0, 1 or 2");
  return code as 0 | 1 | 2;
});

/** How many holds were released. */
export const EXPIRE = defineScript("stock/expire-holds", (r) => {
  const n = replyInt("stock/expire-holds", r);
  if (n < 0) throw replyError("stock/expire-holds", r, "a count");
  return n;
});

/** Per reservation id asked: 0 none, 1 held, 2 confirmed, 3 released (see lua/stock/sync.lua). */
export const SYNC = defineScript("stock/sync", (r) => {
  const states = replyInts("stock/sync", r);
  if (states.some((s) => s < 0 || s > 3)) throw replyError("stock/sync", r, "states 0 to 3");
  return states;
});
