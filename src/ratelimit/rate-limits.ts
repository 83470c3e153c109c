// RateLimits: several token buckets (per user, per IP, per API…) checked as one decision, where a request
// refused by any limit consumes nothing from the others.
import { InvalidArgumentError, RedisUnavailableError } from "../errors.js";
import type { RedisClient } from "../internal/scripts.js";
import { checkKnownKeys, validateInt, validateOptions } from "../internal/validate.js";
import { isCluster, slotOf } from "../internal/slot.js";
import { UNITS } from "./local.js";
import {
  outcome,
  refund,
  takeGroup,
  type BucketItem,
  type GroupOutcome,
  type ItemOutcome,
} from "./engine.js";
import { isReady, type TokenBucket } from "./token-bucket.js";
import { traced } from "../internal/trace.js";
import { channels, type CheckTrace } from "../metrics/channels.js";

const CHECK = traced<CheckTrace>(channels.check);

/** One limit of a {@link RateLimits} set. */
export interface RateLimit<Ctx> {
  /**
   * Names the limit in results and in the `RateLimit` / `RateLimit-Policy` headers: letters, digits and
   * `_ . : / -`, at most 64 characters, unique within the set.
   */
  readonly name: string;
  /** The bucket settings (capacity, refill, prefix) and the client this limit lives on. */
  readonly bucket: TokenBucket;
  /**
   * The bucket key for a request: the user id, the client IP (see `clientIp` / `ipKey`), a constant for a
   * whole API. Return `null` or `undefined` to skip this limit for the request (an anonymous user).
   */
  readonly key: (ctx: Ctx) => string | null | undefined;
  /**
   * Tokens the request costs on this limit: a number, or a function of the request.
   * @default 1
   */
  readonly cost?: number | ((ctx: Ctx) => number);
}

/** Options of `new RateLimits()`. */
export interface RateLimitsOptions {
  /**
   * Called when giving tokens back fails on the Cluster path (take-then-refund): the request is still
   * refused, but the limits that had passed keep the tokens it took.
   */
  readonly onRefundError?: (err: unknown) => void;
  /**
   * What `check` does when Redis is unavailable (a client not connected, or a `RedisUnavailableError`):
   * `"throw"` the error, or `"local"` decide on every limit's in-process insurance bucket (each bucket's
   * `localShare` of its capacity and rate), all or nothing as on Redis.
   * @default "throw"
   */
  readonly failMode?: "throw" | "local";
}

/** Where one limit stands after a check. */
export interface LimitState {
  /** The limit's name. */
  readonly name: string;
  /** Whether this limit, on its own, had room for the request. */
  readonly ok: boolean;
  /**
   * Whole tokens left (after the request when it passed; untouched when it was refused). For a refusal
   * answered in process, an upper bound.
   */
  readonly remaining: number;
  /** The bucket's capacity. */
  readonly limit: number;
  /** Ms until this limit's bucket is full again. */
  readonly resetMs: number;
  /** Ms until this limit has room for the request; `0` when it has now. */
  readonly retryAfterMs: number;
}

/**
 * The outcome of `check`. A refused request took nothing from any limit. `limits` lists the limits that
 * applied (those whose key function returned a key), in the order they were declared; for a refusal
 * answered in process (a limit known to be short, or banned) only the limits that refused, since the
 * others were not asked.
 */
export type RateLimitsResult =
  | { readonly ok: true; readonly limits: readonly LimitState[] }
  | {
      readonly ok: false;
      /** The first limit (in declared order) that had no room. */
      readonly rejectedBy: string;
      /** Ms until every limit that refused has room again. */
      readonly retryAfterMs: number;
      readonly limits: readonly LimitState[];
    };

/** A limit's policy, for the `RateLimit-Policy` header. */
export interface LimitPolicy {
  readonly name: string;
  /** Tokens the bucket holds: the quota. */
  readonly capacity: number;
  readonly refillPerSecond: number;
  /** Seconds an empty bucket takes to fill: the window the quota refers to. */
  readonly windowSeconds: number;
}

const NAME = /^[A-Za-z0-9_.:/-]{1,64}$/;

interface Applied<Ctx> {
  readonly limit: RateLimit<Ctx>;
  readonly item: BucketItem;
}

/**
 * Several token buckets checked as one: `check(ctx)` passes only if every limit has room, and a refusal
 * takes nothing from any limit (rate-limiter-flexible's union consumes from the limits that passed).
 *
 * On standalone Redis (or Sentinel) all limits are decided in one Lua call. On a Cluster, the limits whose
 * keys share a slot are decided together and the groups run in parallel; when one refuses, the others give
 * back what they took (take-then-refund). Between the two steps a concurrent request may see those tokens
 * missing, so on a Cluster a request can be refused that a single node would have let through; never the
 * other way round.
 *
 * A limit whose bucket this process knows to be short (see `TokenBucketOptions.localRefusals`) or banned
 * refuses in process: such a request costs no Redis call and takes nothing anywhere.
 *
 * @example
 * ```ts
 * import { RateLimits, TokenBucket, clientIp, ipKey } from "flash-sale-kit/ratelimit";
 *
 * const limits = new RateLimits<{ userId?: string; ip: string }>([
 *   { name: "user", bucket: new TokenBucket(redis, { capacity: 5, refillPerSecond: 1, prefix: "rl:user" }),
 *     key: (c) => c.userId },
 *   { name: "ip", bucket: new TokenBucket(redis, { capacity: 20, refillPerSecond: 5, prefix: "rl:ip" }),
 *     key: (c) => ipKey(c.ip) },
 *   { name: "api", bucket: new TokenBucket(redis, { capacity: 2000, refillPerSecond: 1000, prefix: "rl:api" }),
 *     key: () => "buy" },
 * ]);
 * const r = await limits.check({ userId: "u42", ip: "203.0.113.9" });
 * if (!r.ok) console.log(`refused by ${r.rejectedBy}, retry in ${r.retryAfterMs} ms`);
 * ```
 */
export class RateLimits<Ctx = unknown> {
  readonly #limits: readonly RateLimit<Ctx>[];
  readonly #onRefundError: ((err: unknown) => void) | undefined;
  /** The one standalone client every limit lives on (so one script decides them all), if there is one. */
  readonly #single: { readonly client: RedisClient; readonly batch: boolean } | undefined;
  readonly #insure: boolean;
  readonly #names: readonly string[];

  constructor(limits: readonly RateLimit<Ctx>[], options: RateLimitsOptions = {}) {
    validateOptions("options", options, { known: ["onRefundError", "failMode"] });
    if (options.onRefundError !== undefined && typeof options.onRefundError !== "function") {
      throw new InvalidArgumentError("onRefundError", "must be a function");
    }
    const failMode = options.failMode ?? "throw";
    if (failMode !== "throw" && failMode !== "local") {
      throw new InvalidArgumentError("failMode", 'must be "throw" or "local"');
    }
    if (!Array.isArray(limits) || limits.length === 0) {
      throw new InvalidArgumentError("limits", "must be a non-empty array of { name, bucket, key }");
    }
    // A batched script call carries at most 255 distinct bucket settings (one byte each): 64 limits plus the
    // 31 items a batch may hold besides them stay well inside that.
    if (limits.length > 64) throw new InvalidArgumentError("limits", "must hold at most 64 limits");
    const names = new Set<string>();
    const earlier: TokenBucket[] = [];
    for (const [i, l] of limits.entries()) {
      const at = `limits[${i}]`;
      if (typeof l !== "object" || l === null) throw new InvalidArgumentError(at, "must be an object");
      checkKnownKeys(at, l, ["name", "bucket", "key", "cost"]);
      if (typeof l.name !== "string" || !NAME.test(l.name)) {
        throw new InvalidArgumentError(`${at}.name`, "must be 1 to 64 letters, digits or _ . : / -");
      }
      if (names.has(l.name)) throw new InvalidArgumentError(`${at}.name`, `repeats the name ${l.name}`);
      names.add(l.name);
      const b = l.bucket as TokenBucket | undefined;
      if (typeof b !== "object" || b === null || typeof b.item !== "function") {
        throw new InvalidArgumentError(`${at}.bucket`, "must be a TokenBucket");
      }
      if (typeof l.key !== "function") throw new InvalidArgumentError(`${at}.key`, "must be a function");
      if (l.cost !== undefined && typeof l.cost !== "function") validateInt(`${at}.cost`, l.cost, { min: 1 });
      // Two different buckets under one prefix on one client would share keys, and so tokens; so would
      // "rl" with key "ip:1.2.3.4" and "rl:ip" with key "1.2.3.4" (both {rl:ip:1.2.3.4}).
      for (const other of earlier) {
        if (other === b || other.redis !== b.redis) continue;
        if (other.prefix === b.prefix) {
          throw new InvalidArgumentError(
            `${at}.bucket`,
            `shares the prefix "${b.prefix}" with another bucket`,
          );
        }
        if (other.prefix.startsWith(`${b.prefix}:`) || b.prefix.startsWith(`${other.prefix}:`)) {
          throw new InvalidArgumentError(
            `${at}.bucket`,
            `has the prefix "${b.prefix}", which can make the same keys as another bucket's "${other.prefix}"`,
          );
        }
      }
      earlier.push(b);
    }
    this.#limits = [...limits];
    this.#names = Object.freeze(limits.map((l) => l.name));
    this.#onRefundError = options.onRefundError;
    this.#insure = failMode === "local";
    const client = limits[0]!.bucket.redis;
    this.#single =
      !isCluster(client) && limits.every((l) => l.bucket.redis === client)
        ? { client, batch: limits.every((l) => l.bucket.batch) }
        : undefined;
  }

  /**
   * Each limit's policy, for a `RateLimit-Policy` header.
   *
   * @example
   * ```ts
   * limits.policies(); // [{ name: "user", capacity: 5, refillPerSecond: 1, windowSeconds: 5 }, …]
   * ```
   */
  policies(): LimitPolicy[] {
    return this.#limits.map((l) => ({
      name: l.name,
      capacity: l.bucket.capacity,
      refillPerSecond: l.bucket.refillPerSecond,
      windowSeconds: Math.ceil(l.bucket.capacity / l.bucket.refillPerSecond),
    }));
  }

  /** The limits that apply to `ctx`, with their script items (validates keys and costs first). */
  #applied(ctx: Ctx): Applied<Ctx>[] {
    const out: Applied<Ctx>[] = [];
    for (const limit of this.#limits) {
      const key = limit.key(ctx);
      if (key === null || key === undefined) continue;
      const cost = typeof limit.cost === "function" ? limit.cost(ctx) : (limit.cost ?? 1);
      // A cost function's answer is checked like a fixed cost: 0 (or -0) would turn the limit off.
      validateInt(`${limit.name}.cost`, cost, { min: 1 });
      out.push({ limit, item: limit.bucket.item(key, cost) });
    }
    return out;
  }

  /**
   * Takes one request's tokens from every limit that applies, or from none: the result names the first
   * limit without room and how long to wait. Expected refusals are data; Redis faults throw
   * `RedisUnavailableError` (see the middleware for fail-open / fail-closed).
   *
   * @example
   * ```ts
   * const r = await limits.check(ctx);
   * if (!r.ok) return reply.code(429).send({ limit: r.rejectedBy });
   * ```
   */
  check(ctx: Ctx): Promise<RateLimitsResult> {
    if (!CHECK.active) return this.#check(ctx);
    return CHECK.trace(() => this.#check(ctx), { limits: this.#names });
  }

  async #check(ctx: Ctx): Promise<RateLimitsResult> {
    const applied = this.#applied(ctx);
    if (applied.length === 0) return { ok: true, limits: [] };
    const sentAt = performance.now();
    const known = localRefusal(applied, sentAt);
    if (known !== undefined) return known;
    if (this.#insure && !applied.every((a) => isReady(a.limit.bucket.redis))) return local(applied, sentAt);
    try {
      return await this.#checkRedis(applied, sentAt);
    } catch (err) {
      if (this.#insure && err instanceof RedisUnavailableError) return local(applied, performance.now());
      throw err;
    }
  }

  /**
   * Decides `ctx` on the limits' in-process insurance buckets only (what `failMode: "local"` falls back
   * to), all or nothing. @internal
   */
  checkLocal(ctx: Ctx): RateLimitsResult {
    const applied = this.#applied(ctx);
    if (applied.length === 0) return { ok: true, limits: [] };
    const now = performance.now();
    return localRefusal(applied, now) ?? local(applied, now);
  }

  async #checkRedis(applied: Applied<Ctx>[], sentAt: number): Promise<RateLimitsResult> {
    if (this.#single) {
      const out = await takeGroup(this.#single.client, 0, items(applied), this.#single.batch);
      return result(applied, out, out.ok, sentAt);
    }
    const groups = groupBySlot(applied);
    if (groups.length === 1) {
      const g = groups[0]!;
      const out = await takeGroup(g.client, g.slot, items(g.members), g.batch);
      return result(g.members, out, out.ok, sentAt);
    }
    // Take-then-refund across slots (or clients): every group decides atomically on its own node.
    const settled = await Promise.allSettled(
      groups.map((g) => takeGroup(g.client, g.slot, items(g.members), g.batch)),
    );
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
    const allOk = !failed && settled.every((s) => s.status === "fulfilled" && s.value.ok);
    if (!allOk) {
      const refunds = groups.flatMap((g, i) => {
        const s = settled[i]!;
        return s.status === "fulfilled" && s.value.ok ? [refund(g.client, items(g.members))] : [];
      });
      for (const r of await Promise.allSettled(refunds)) {
        if (r.status === "rejected") this.#onRefundError?.(r.reason);
      }
    }
    if (failed) throw failed.reason;
    const members: Applied<Ctx>[] = [];
    const outcomes: ItemOutcome[] = [];
    for (const [i, g] of groups.entries()) {
      const out = (settled[i] as PromiseFulfilledResult<GroupOutcome>).value;
      for (const [j, m] of g.members.entries()) {
        members.push(m);
        // A group that passed but was refunded because of another: nothing was taken after all.
        const o = out.items[j]!;
        outcomes.push(allOk || !out.ok ? o : undone(m.item, o));
      }
    }
    return result(members, { ok: allOk, items: outcomes }, allOk, sentAt, applied);
  }

  /**
   * Reads every applicable limit for `ctx` without taking anything.
   *
   * @example
   * ```ts
   * const states = await limits.peek(ctx); // [{ name: "user", remaining: 4, … }, …]
   * ```
   */
  async peek(ctx: Ctx): Promise<LimitState[]> {
    const applied = this.#applied(ctx);
    // Read with cost 0 (nothing is written), judge with the request's real cost.
    const reads = applied.map((a) => ({ limit: a.limit, item: { ...a.item, cost: 0 }, real: a.item }));
    const states = await Promise.all(
      groupBySlot(reads).map(async (g) => {
        const out = await takeGroup(g.client, g.slot, items(g.members), g.batch);
        return g.members.map((m, j) => state(m, outcome(m.real, out.items[j]!.have, false)));
      }),
    );
    const byName = new Map(states.flat().map((s) => [s.name, s]));
    return applied.map((a) => byName.get(a.limit.name)!);
  }
}

interface SlotGroup<A> {
  readonly client: RedisClient;
  readonly slot: number;
  readonly batch: boolean;
  readonly members: A[];
}

/** Splits limits into groups that one script can decide: same client, and same slot on a Cluster. */
function groupBySlot<A extends Applied<never>>(applied: readonly A[]): SlotGroup<A>[] {
  const groups: SlotGroup<A>[] = [];
  for (const a of applied) {
    const client = a.limit.bucket.redis;
    const slot = slotOf(client, a.item.key);
    const batch = a.limit.bucket.batch;
    const g = groups.find((x) => x.client === client && x.slot === slot);
    if (g) {
      g.members.push(a);
      if (!batch) (g as { batch: boolean }).batch = false;
    } else groups.push({ client, slot, batch, members: [a] });
  }
  return groups;
}

const items = <Ctx>(members: readonly Applied<Ctx>[]): BucketItem[] => members.map((m) => m.item);

function state<Ctx>(m: Applied<Ctx>, o: ItemOutcome): LimitState {
  return {
    name: m.limit.name,
    ok: o.pass,
    remaining: o.remaining,
    limit: m.limit.bucket.capacity,
    resetMs: o.resetMs,
    retryAfterMs: o.retryAfterMs,
  };
}

/** An item's outcome as it stands once its take was refunded: its tokens are back. */
const undone = (item: BucketItem, o: ItemOutcome): ItemOutcome => outcome(item, o.have, false);

function result<Ctx>(
  members: readonly Applied<Ctx>[],
  out: GroupOutcome,
  ok: boolean,
  sentAt: number,
  order?: readonly Applied<Ctx>[],
): RateLimitsResult {
  const bans = members.map((m, j) => {
    const o = out.items[j]!;
    // Learned per limit: a limit that lacked room is a strike for its key; tokens kept only when all passed.
    return m.limit.bucket.observe(m.item, o, ok, !ok && !o.pass, sentAt);
  });
  let states = members.map((m, j) => {
    const s = state(m, out.items[j]!);
    return bans[j]! > s.retryAfterMs ? { ...s, retryAfterMs: bans[j]! } : s;
  });
  if (order) {
    const byName = new Map(states.map((s) => [s.name, s]));
    states = order.map((a) => byName.get(a.limit.name)!);
  }
  return decision(states, ok);
}

function decision(states: LimitState[], ok: boolean): RateLimitsResult {
  if (ok) return { ok: true, limits: states };
  const refused = states.filter((s) => !s.ok);
  return {
    ok: false,
    rejectedBy: refused[0]?.name ?? states[0]!.name,
    retryAfterMs: Math.max(0, ...refused.map((s) => s.retryAfterMs)),
    limits: states,
  };
}

/** The refusal this process can give without Redis: the limits known to be short or banned, if any. */
function localRefusal<Ctx>(applied: readonly Applied<Ctx>[], now: number): RateLimitsResult | undefined {
  let states: LimitState[] | undefined;
  for (const a of applied) {
    const r = a.limit.bucket.localRefusal(a.item, now);
    if (r === undefined) continue;
    (states ??= []).push({
      name: a.limit.name,
      ok: false,
      remaining: Math.floor(r.units / UNITS),
      limit: a.limit.bucket.capacity,
      resetMs: r.resetMs,
      retryAfterMs: r.retryAfterMs,
    });
  }
  return states && decision(states, false);
}

/** All or nothing on the insurance buckets (Redis unavailable). */
function local<Ctx>(applied: readonly Applied<Ctx>[], now: number): RateLimitsResult {
  const probe = applied.map((a) => a.limit.bucket.insurance(a.item, now, false));
  const ok = probe.every((o) => o.pass);
  const outcomes = ok ? applied.map((a) => a.limit.bucket.insurance(a.item, now, true)) : probe;
  // Taken: the state after the take, as a reply from Redis would say it.
  return decision(
    applied.map((a, j) => {
      const o = outcomes[j]!;
      return ok ? state(a, { ...o, pass: true }) : state(a, o);
    }),
    ok,
  );
}
