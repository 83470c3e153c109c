// The one check that an argument is an ioredis client, shared by every module that takes one.
import { InvalidArgumentError } from "../errors.js";
import type { RedisClient } from "./scripts.js";

/**
 * Checks that `value` is an ioredis `Redis` (standalone or Sentinel) or `Cluster` client, by the one method
 * the library cannot work without (`defineCommand`, which registers its scripts), so that clients from
 * another copy of ioredis pass too. Throws {@link InvalidArgumentError} naming the argument.
 *
 * @example
 * ```ts
 * constructor(redis: RedisClient, options: Options) {
 *   validateRedisClient("redis", redis);
 * }
 * ```
 */
export function validateRedisClient(name: string, value: unknown): asserts value is RedisClient {
  if (
    value === null ||
    typeof value !== "object" ||
    typeof (value as { defineCommand?: unknown }).defineCommand !== "function"
  ) {
    throw new InvalidArgumentError(name, "must be an ioredis Redis or Cluster client");
  }
}
