// The miss path of ReadThroughCache: one load per id per process (single-flight), one across processes (the
// loader lock; the others poll the entry), the double check under the lock, the lock kept alive while the
// load runs, and the store that an invalidation since the load began refuses.
import { createHash } from "node:crypto";
import { toRedisError, untilServed, type RedisClient } from "../internal/scripts.js";
import { MAX_ID_LENGTH } from "../internal/validate.js";
import type { SpinLock } from "../lock/spin-lock.js";
import { MISSING, SET } from "./entry.js";
import type { PenetrationGuard } from "./guard.js";
import {
  CacheWaitTimeoutError,
  type CacheKeys,
  type CacheLock,
  type CacheLockHandle,
} from "./read-through-types.js";

/** An entry to store: its text, TTL and (with stale-while-revalidate) how soon it turns stale. */
export interface Encoded {
  readonly entry: string;
  readonly ttlMs: number;
  readonly staleInMs: number | undefined;
}

/** What the loader needs of its cache. */
export interface LoaderConfig<V> {
  readonly redis: RedisClient;
  readonly name: string;
  readonly lock: CacheLock;
  /** The default lock, whose fencing counter goes with each release. */
  readonly ownLock: SpinLock | undefined;
  readonly load: (id: string) => Promise<V | null | undefined>;
  readonly guard: PenetrationGuard | undefined;
  readonly staleWhileRevalidateMs: number;
  readonly waitTimeoutMs: number;
  readonly pollIntervalMs: number;
  readonly onError: (err: unknown) => void;
  entryKey(id: string): string;
  decode(id: string, raw: string): V | undefined;
  /** The channel the scripts publish changed ids on. */
  readonly channel: string;
  /** The entry to store for a loaded value (`undefined`/`null`: missing), its TTL and its stale stamp. */
  encode(value: V | null | undefined): Encoded;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Single-flight loading under the cross-process loader lock. */
export class Loader<V> {
  private readonly flights = new Map<string, Promise<V | undefined>>();
  private readonly refreshing = new Set<string>();

  constructor(private readonly c: LoaderConfig<V>) {}

  /** The keys of an id already validated. */
  keys(id: string): CacheKeys {
    const entry = this.c.entryKey(id);
    const resource = `cache:${this.c.name}:${id}`;
    return {
      entry,
      generation: `${entry}:gen`,
      // Lock resources share the id length cap; a very long id is locked under its digest instead.
      lockResource:
        resource.length <= MAX_ID_LENGTH
          ? resource
          : `cache:${this.c.name}:#${createHash("sha256").update(id).digest("hex")}`,
    };
  }

  /** A miss: joins this process's load of `id`, or starts one. */
  miss(id: string): Promise<V | undefined> {
    let flight = this.flights.get(id);
    if (flight === undefined) {
      const mine: Promise<V | undefined> = this.fill(id).finally(() => {
        if (this.flights.get(id) === mine) this.flights.delete(id);
      });
      flight = mine;
      this.flights.set(id, flight);
    }
    return flight;
  }

  /** After an invalidation: a load of this process already running may have read the old source. */
  forget(id: string): void {
    this.flights.delete(id);
  }

  /** A stale hit: one background refresh per id per process, under the loader lock. */
  refreshInBackground(id: string): void {
    if (this.refreshing.has(id) || this.flights.has(id)) return;
    this.refreshing.add(id);
    const keys = this.keys(id);
    this.c.lock
      .tryAcquire(keys.lockResource)
      .then((handle) => (handle === null ? undefined : this.loadHeld(id, keys, handle, true)))
      .catch(this.c.onError)
      .finally(() => this.refreshing.delete(id));
  }

  /** Load under the lock, or wait for the process that holds it. */
  private async fill(id: string): Promise<V | undefined> {
    const c = this.c;
    if (c.guard !== undefined && (await c.guard.isRememberedMissing(id))) return undefined;
    const keys = this.keys(id);
    const started = Date.now();
    for (;;) {
      const handle = await c.lock.tryAcquire(keys.lockResource);
      if (handle !== null) return this.loadHeld(id, keys, handle, false);
      if (Date.now() - started >= c.waitTimeoutMs) {
        throw new CacheWaitTimeoutError(id, Date.now() - started);
      }
      await sleep(c.pollIntervalMs * (0.5 + Math.random()));
      let raw: string | null;
      try {
        raw = await c.redis.get(keys.entry);
      } catch (err) {
        throw toRedisError(err);
      }
      if (raw !== null) return c.decode(id, raw);
    }
  }

  /**
   * Loads and stores `id` while holding the loader lock. `refresh`: a stale-while-revalidate refresh (skip
   * if another process refreshed meanwhile) rather than a miss (skip if another process filled meanwhile).
   */
  private async loadHeld(
    id: string,
    keys: CacheKeys,
    handle: CacheLockHandle,
    refresh: boolean,
  ): Promise<V | undefined> {
    const c = this.c;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let holding = true;
    const keepAlive = () => {
      const left = handle.expiresAt - Date.now();
      timer = setTimeout(
        () => {
          handle.extend().then(
            (ok) => {
              if (ok && holding) keepAlive();
            },
            (err) => {
              c.onError(err);
              if (holding) keepAlive();
            },
          );
        },
        Math.max(5, Math.floor(left / 3)),
      );
      timer.unref?.();
    };
    try {
      // Kept alive from here: the double check below waits out a slot migration (up to UNSERVED_WAIT_MS, longer
      // than the default lock TTL), and a lock expiring meanwhile would let another process load too.
      keepAlive();
      // Double check, under the lock: the previous holder may have stored it since our read.
      let raw: string | null = null;
      let gen: string | null;
      try {
        // The entry and the generation share a slot, and either may be missing: while the slot migrates,
        // Redis answers TRYAGAIN until both sides agree, which is waited out like a script's.
        if (refresh) {
          const replies = await untilServed(() =>
            c.redis.multi().pttl(keys.entry).get(keys.generation).exec(),
          );
          const pttl = Number(replies?.[0]?.[1] ?? -2);
          gen = (replies?.[1]?.[1] as string | null) ?? null;
          if (pttl > c.staleWhileRevalidateMs) return undefined; // refreshed by someone else
        } else {
          [raw = null, gen = null] = await untilServed(() => c.redis.mget(keys.entry, keys.generation));
        }
      } catch (err) {
        throw toRedisError(err);
      }
      if (raw !== null) return c.decode(id, raw);
      const value = await c.load(id);
      const { entry, ttlMs, staleInMs } = c.encode(value);
      // Stored only if no invalidate ran since we read the generation; the caller gets what was read anyway.
      await SET.run(
        c.redis,
        [keys.entry, keys.generation],
        [gen ?? "", entry, ttlMs, staleInMs ?? "", c.channel, id],
      );
      return entry === MISSING ? undefined : (value as V);
    } finally {
      holding = false;
      if (timer !== undefined) clearTimeout(timer);
      this.release(handle, keys.lockResource);
    }
  }

  private release(handle: CacheLockHandle, resource: string): void {
    const own = this.c.ownLock;
    handle
      .release()
      .then(() => {
        // SpinLock keeps a fencing counter per resource forever; the cache never uses fences, and one counter
        // per id ever loaded would litter Redis, so the default lock's counter goes with the lock.
        if (own !== undefined) return this.c.redis.del(own.keys(resource).fence);
      }, this.c.onError)
      .catch(this.c.onError);
  }
}
