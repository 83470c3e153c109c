// The script registry: each Lua file becomes an ioredis custom command (defineCommand), registered once per
// client under a versioned name, so EVALSHA with a NOSCRIPT fallback, keyPrefix, pipelines and Cluster
// routing come from ioredis.
import { createHash } from "node:crypto";
import { LUA, LUA_KEYS } from "./embedded.generated.js";
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
export class LuaScript<R = unknown> {
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
    /**
     * Turns the raw reply into the script's typed result, throwing {@link UnexpectedReplyError} (see
     * {@link replyError}) when the reply does not have the declared shape.
     */
    private readonly decode: (reply: unknown) => R = (reply) => reply as R,
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
   * be passed in `keys`; rejections are wrapped by {@link toRedisError}. On a Cluster, a call that a slot
   * migration keeps unserved (TRYAGAIN, ASK/MOVED storms: see {@link isUnserved}) is sent again
   * until it is served or `options.waitMs` (default {@link UNSERVED_WAIT_MS}) has passed.
   */
  async run(
    client: RedisClient,
    keys: readonly string[],
    args: readonly ScriptArg[],
    options: RunOptions = {},
  ): Promise<R> {
    const variadic = this.numberOfKeys === "variadic";
    if (!variadic && keys.length !== this.numberOfKeys) {
      throw new UnexpectedReplyError(
        `script ${this.path} takes ${this.numberOfKeys} keys, got ${keys.length}`,
      );
    }
    let reply: unknown;
    try {
      reply = await untilServed(() => this.send(client, keys, args), options.waitMs);
    } catch (err) {
      throw toRedisError(err);
    }
    return this.decode(reply);
  }

  /** One call: EVALSHA through the custom command, then EVAL if the node had no copy of the script. */
  private async send(
    client: RedisClient,
    keys: readonly string[],
    args: readonly ScriptArg[],
  ): Promise<unknown> {
    try {
      const command = this.commandOf(client);
      return await (this.numberOfKeys === "variadic"
        ? command(keys.length, ...keys, ...args)
        : command(...keys, ...args));
    } catch (err) {
      if (!isNoScript(err)) throw err;
      // ioredis resends a script as EVAL only when no other call of it went out since the cache was
      // emptied (SCRIPT FLUSH, a restart, a failover, a node that joined a cluster); with calls in flight
      // the resend is EVALSHA again and fails for good. NOSCRIPT means nothing ran: EVAL is safe, and it
      // loads the script for the calls that follow.
      return await client.eval(this.lua, keys.length, ...keys, ...args);
    }
  }

  /** Decodes a reply of this script obtained some other way (a pipeline, a MULTI). */
  decodeReply(reply: unknown): R {
    return this.decode(reply);
  }
}

/** Options of {@link LuaScript.run}. */
export interface RunOptions {
  /**
   * How long, from the first send, a call that a slot migration keeps unserved is sent again.
   * @default UNSERVED_WAIT_MS
   */
  readonly waitMs?: number;
}

/**
 * How long a command a Cluster keeps unserved (see {@link isUnserved}) is sent again before the call fails,
 * in ms. A slot migration moving a busy slot's keys in batches keeps the slot open for seconds; ioredis alone
 * gives up after `maxRedirections` (16) redirections, about half a second under TRYAGAIN.
 */
export const UNSERVED_WAIT_MS = 10_000;

// Replies that mean the command did not run because its slot is being migrated: TRYAGAIN (a multi-key
// command naming a key the node does not hold), ASK and MOVED (sent to a node that does not serve the key).
// CLUSTERDOWN is left to ioredis (`retryDelayOnClusterDown`): a cluster that is down is not a migration,
// and callers with a fallback (failMode "local") should get to it without waiting here.
const UNSERVED = /^(?:TRYAGAIN|ASK|MOVED) /;
const GAVE_UP = "Too many Cluster redirections. Last error: ";

/**
 * Whether `err` is a refusal that guarantees the command did not run because its slot is being migrated: a
 * TRYAGAIN, ASK or MOVED reply, or ioredis giving up after too many redirections ("Too many Cluster
 * redirections. Last error: …", the last being one of those). A connection closed mid-call is not one (the
 * command may have run), nor CLUSTERDOWN.
 *
 * @example
 * ```ts
 * if (isUnserved(err)) await retryLater();
 * ```
 */
export function isUnserved(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  let message = err.message;
  if (message.startsWith(GAVE_UP)) {
    message = message.slice(GAVE_UP.length);
    if (!message.startsWith("ReplyError: ")) return false;
    message = message.slice("ReplyError: ".length);
  } else if (err.name !== "ReplyError") {
    return false;
  }
  return UNSERVED.test(message);
}

/**
 * Runs `send` until it does not fail with a refusal {@link isUnserved} recognises, pausing between sends
 * (jittered, growing from 25 ms to 250 ms, on top of ioredis's own redirections), and sends no more once
 * `waitMs` has passed since the first send; then rejects with the last error. A send in flight is not cut
 * short, so the call can take up to one ioredis round of redirections longer (about 0.5–1 s with the default
 * `maxRedirections` 16 and `retryDelayOnTryAgain` 100). Every other outcome passes through at once. For any
 * command the library sends to a Cluster that may land on a migrating slot.
 *
 * @example
 * ```ts
 * const values = await untilServed(() => redis.mget(a, b));
 * ```
 */
export async function untilServed<T>(send: () => Promise<T>, waitMs = UNSERVED_WAIT_MS): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      const left = deadline - Date.now();
      if (left <= 0 || !isUnserved(err)) throw err;
      const pause = Math.min(250, 25 * 2 ** attempt) * (0.5 + Math.random());
      await new Promise((r) => setTimeout(r, Math.min(left, pause)));
    }
  }
}

function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith("NOSCRIPT");
}

/** The name of an embedded script: its path under `lua/` without the extension. */
export type ScriptName = keyof typeof LUA;

/**
 * The embedded script `name` (from `lua/<name>.lua`), with the key count its header declares and a decoder
 * that types its reply. Create it once at module level.
 *
 * @example
 * ```ts
 * const EXTEND = defineScript("lock/extend", (r) => replyInt("lock/extend", r));
 * ```
 */
export function defineScript<R>(name: ScriptName, decode: (reply: unknown) => R): LuaScript<R> {
  return new LuaScript<R>(name, LUA[name], LUA_KEYS[name], decode);
}

/** The error a decoder throws for a reply that does not have the script's declared shape. */
export function replyError(script: string, reply: unknown, expected: string): UnexpectedReplyError {
  let shown: string;
  try {
    shown = JSON.stringify(reply) ?? String(reply);
  } catch {
    shown = String(reply);
  }
  if (shown.length > 200) shown = `${shown.slice(0, 200)}…`;
  return new UnexpectedReplyError(`script ${script} replied ${shown}, expected ${expected}`);
}

/** A reply that must be a safe integer. */
export function replyInt(script: string, reply: unknown): number {
  if (typeof reply === "number" && Number.isSafeInteger(reply)) return reply;
  throw replyError(script, reply, "an integer");
}

/** A reply that must be an array of safe integers (of `length` when given). */
export function replyInts(script: string, reply: unknown, length?: number): number[] {
  if (
    Array.isArray(reply) &&
    (length === undefined || reply.length === length) &&
    reply.every((v) => typeof v === "number" && Number.isSafeInteger(v))
  )
    return reply as number[];
  throw replyError(script, reply, length === undefined ? "an array of integers" : `${length} integers`);
}

/** A reply that must be an array (its items checked by the caller). */
export function replyArray(script: string, reply: unknown): unknown[] {
  if (Array.isArray(reply)) return reply;
  throw replyError(script, reply, "an array");
}
