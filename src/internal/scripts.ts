// The script registry: each Lua file becomes an ioredis custom command (defineCommand), registered once per
// client under a versioned name, so EVALSHA with a NOSCRIPT fallback, keyPrefix, pipelines and Cluster
// routing come from ioredis.
import { createHash } from "node:crypto";
import type { Cluster, Redis } from "ioredis";
import { FlashSaleError, RedisCommandError, RedisUnavailableError, UnexpectedReplyError } from "../errors.js";

/** An ioredis client: standalone (or Sentinel) `Redis`, or `Cluster`. */
export type RedisClient = Redis | Cluster;

/** An argument a script accepts. */
export type ScriptArg = string | number | Buffer;
type CustomCommand = (...args: ScriptArg[]) => Promise<unknown>;

/**
 * Turns anything ioredis rejects with into a {@link FlashSaleError}: replies from the server become
 * {@link RedisCommandError}, everything else (closed connection, timeout, cluster not ready)
 * {@link RedisUnavailableError}. Errors that already are FlashSaleErrors pass through.
 *
 * @example
 * ```ts
 * try { await redis.get(key); } catch (err) { throw toRedisError(err); }
 * ```
 */
export function toRedisError(err: unknown): FlashSaleError {
  if (err instanceof FlashSaleError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const name = err instanceof Error ? err.name : "";
  if (name === "ReplyError")
    return new RedisCommandError(`Redis replied with an error: ${message}`, { cause: err });
  return new RedisUnavailableError(`Redis is unavailable: ${message}`, { cause: err });
}

/**
 * One Lua script, runnable on any client. Create it once at module level; it registers itself on each client
 * the first time it runs there. `numberOfKeys` is fixed, or `"variadic"` for scripts whose key count each
 * call decides (a batch).
 *
 * @example
 * ```ts
 * const getOrZero = new LuaScript("demo/get", "return redis.call('GET', KEYS[1]) or 0", 1);
 * await getOrZero.run(redis, ["{fsk:a}:n"], []);
 * ```
 */
export class LuaScript {
  /** The ioredis command name: the script's path plus the first 10 hex digits of its SHA-1. */
  readonly command: string;
  /** SHA-1 of the source, as `SCRIPT LOAD` reports it. */
  readonly sha: string;
  private readonly bound = new WeakMap<RedisClient, CustomCommand>();

  constructor(
    /** The script's name, its path under `lua/` without the extension (`"stock/reserve"`). */
    readonly path: string,
    /** The Lua source. */
    readonly lua: string,
    /** How many of a call's arguments are keys, or `"variadic"` when each call says. */
    readonly numberOfKeys: number | "variadic",
  ) {
    this.sha = createHash("sha1").update(lua).digest("hex");
    this.command = `fsk_${path.replace(/[^A-Za-z0-9]/g, "_")}_${this.sha.slice(0, 10)}`;
  }

  /** The bound custom command for `client`, defining it on first use. */
  private commandOf(client: RedisClient): CustomCommand {
    let fn = this.bound.get(client);
    if (fn === undefined) {
      const methods = client as unknown as Record<string, CustomCommand | undefined>;
      if (typeof methods[this.command] !== "function") {
        // Without numberOfKeys, ioredis takes the key count as the command's first argument.
        client.defineCommand(
          this.command,
          this.numberOfKeys === "variadic"
            ? { lua: this.lua }
            : { lua: this.lua, numberOfKeys: this.numberOfKeys },
        );
      }
      const method = methods[this.command];
      if (method === undefined) throw new UnexpectedReplyError(`script ${this.path} could not be registered`);
      fn = method.bind(client);
      this.bound.set(client, fn);
    }
    return fn;
  }

  /**
   * Runs the script (EVALSHA, falling back to EVAL after `SCRIPT FLUSH` or on a new node). Every key must
   * be passed in `keys`; rejections are wrapped by {@link toRedisError}.
   */
  async run(client: RedisClient, keys: readonly string[], args: readonly ScriptArg[]): Promise<unknown> {
    const variadic = this.numberOfKeys === "variadic";
    if (!variadic && keys.length !== this.numberOfKeys) {
      throw new UnexpectedReplyError(
        `script ${this.path} takes ${this.numberOfKeys} keys, got ${keys.length}`,
      );
    }
    try {
      const command = this.commandOf(client);
      return await (variadic ? command(keys.length, ...keys, ...args) : command(...keys, ...args));
    } catch (err) {
      throw toRedisError(err);
    }
  }
}
