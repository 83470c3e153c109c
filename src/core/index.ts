// flash-sale-kit/core: errors, key naming, validation, the script registry, Redis time, the SQL client shape.
export {
  FlashSaleError,
  InvalidArgumentError,
  RedisUnavailableError,
  UnexpectedReplyError,
  ConflictError,
  DatabaseError,
} from "./errors.js";
export { validateId, validateInt, validateOptionalInt, validateOptions, MAX_ID_LENGTH } from "./validate.js";
export { entityKeys, resolvePrefix, DEFAULT_PREFIX, type EntityKeys } from "./keys.js";
export { LuaScript, RedisCommandError, toRedisError, type RedisClient, type ScriptArg } from "./scripts.js";
export { redisTimeMs } from "./time.js";
export { TickBatcher, type Pending } from "./batch.js";
export { keySlot, slotOf, isCluster } from "./slot.js";
export { sqlRows, splitSqlStatements, runSqlScript, type SqlClient } from "./sql.js";
