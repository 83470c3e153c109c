// The stock scripts (lua/stock/*.lua), each with the decoder that types its reply.
import { defineScript, replyError, replyInt, replyInts } from "../internal/scripts.js";

/** `{code, value}`: 0 written (value: the SKU's reservation count), 1 below committed (value: held + confirmed). */
export const SET_STOCK = defineScript("stock/set-stock", (r) => {
  const [code, value] = replyInts("stock/set-stock", r, 2) as [number, number];
  return { code, value };
});

/** Two integers per reservation (code, value), flat. The caller checks the count against its batch. */
export const RESERVE = defineScript("stock/reserve", (r) => {
  const flat = replyInts("stock/reserve", r);
  if (flat.length % 2 !== 0) throw replyError("stock/reserve", r, "pairs of integers");
  return flat;
});

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
