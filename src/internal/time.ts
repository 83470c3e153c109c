// Redis TIME as epoch milliseconds: the one clock every time decision of the library uses.
import type { RedisClient } from "./scripts.js";
import { toRedisError } from "./scripts.js";
import { UnexpectedReplyError } from "../errors.js";

/**
 * The Redis server's clock in epoch milliseconds (`TIME`). On a Cluster the first master answers; sale
 * windows, refills and hold expiry are decided inside scripts on the key's own node, so this is for display
 * (a countdown synced to the server) rather than for decisions.
 *
 * @example
 * ```ts
 * const now = await redisTimeMs(redis);
 * ```
 */
export async function redisTimeMs(client: RedisClient): Promise<number> {
  let reply: unknown;
  try {
    reply = await client.time();
  } catch (err) {
    throw toRedisError(err);
  }
  if (!Array.isArray(reply) || reply.length !== 2) throw new UnexpectedReplyError("TIME returned no pair");
  const [seconds, micros] = reply.map(Number) as [number, number];
  return seconds * 1000 + Math.floor(micros / 1000);
}
