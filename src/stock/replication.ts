// Replicated acknowledgement: an answer that reports a write is given only once `WAIT` says N replicas have
// it. WAIT blocks its connection and counts only the writes of its own connection, so it runs on a
// connection of its own (a duplicate of the Inventory's), after stock/sync: that script reads the
// reservations the answers are about and makes one write, so the WAIT covers everything the master holds,
// those reservations included, whichever connection wrote them and whichever master answers. Calls that
// finish while a WAIT is out share the next one (group commit): at most one WAIT per batch, fewer under load.
import { InvalidArgumentError } from "../errors.js";
import { toRedisError, type RedisClient } from "../internal/scripts.js";
import type { Cluster, Redis } from "ioredis";
import { isCluster } from "../internal/slot.js";
import { optionKeys, validateInt, validateOptions } from "../internal/validate.js";
import { SYNC } from "./scripts.js";

/** `InventoryOptions.replicated`. */
export interface ReplicatedOptions {
  /** Replicas that must have a write before it is acknowledged (`WAIT <replicas> …`). */
  readonly replicas: number;
  /**
   * How long (ms) one `WAIT` may block. A shorter count than `replicas` within it makes the answer
   * `IN_DOUBT` (or another attempt, within `settleMs`).
   */
  readonly timeoutMs: number;
}

const KNOWN = optionKeys<ReplicatedOptions>({ replicas: 1, timeoutMs: 1 });

/** Validates `InventoryOptions.replicated`. @internal */
export function checkReplicated(value: unknown): ReplicatedOptions | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "object" || value === null) {
    throw new InvalidArgumentError("replicated", "must be an object { replicas, timeoutMs }");
  }
  validateOptions("replicated", value, { known: KNOWN });
  const o = value as ReplicatedOptions;
  validateInt("replicated.replicas", o.replicas, { min: 1, max: 100 });
  // WAIT 0 would block for ever: a bound is required.
  validateInt("replicated.timeoutMs", o.timeoutMs, { min: 1, max: 60_000 });
  return { replicas: o.replicas, timeoutMs: o.timeoutMs };
}

/** Record states as stock/sync reports them. @internal */
export const RecordState = Object.freeze({ NONE: 0, HELD: 1, CONFIRMED: 2, RELEASED: 3 } as const);

/** What one WAIT found: the replicas that have everything, and each asked reservation's state. @internal */
export interface Acknowledgement {
  readonly replicas: number;
  readonly states: readonly number[];
}

interface Waiter {
  readonly ids: readonly string[];
  readonly resolve: (ack: Acknowledgement) => void;
  readonly reject: (err: unknown) => void;
}

/** The most ids one stock/sync call reads (Lua's unpack has a limit of a few thousand). */
const SYNC_CHUNK = 1000;

/** Waits for replicas on a connection of its own, one WAIT for all calls of a SKU that finished meanwhile. @internal */
export class ReplicaAcks {
  private connection: RedisClient | undefined;
  private readonly queues = new Map<string, Waiter[]>();
  private readonly running = new Set<string>();

  constructor(
    private readonly redis: RedisClient,
    readonly options: ReplicatedOptions,
  ) {}

  /**
   * Resolves once a WAIT sent after this call has answered: how many replicas have everything the master
   * held then, and the state of each of `ids` on that master. Rejects when the sync or the WAIT failed.
   */
  wait(stockKey: string, ids: readonly string[]): Promise<Acknowledgement> {
    return new Promise<Acknowledgement>((resolve, reject) => {
      let queue = this.queues.get(stockKey);
      if (queue === undefined) {
        queue = [];
        this.queues.set(stockKey, queue);
      }
      queue.push({ ids, resolve, reject });
      if (!this.running.has(stockKey)) void this.drain(stockKey);
    });
  }

  /** Closes the WAIT connection. */
  async close(): Promise<void> {
    const c = this.connection;
    this.connection = undefined;
    if (c !== undefined) await c.quit().catch(() => c.disconnect());
  }

  private conn(): RedisClient {
    // A duplicate, so a WAIT never holds up the caller's own connection. Its command timeout leaves room
    // for the WAIT's own timeout (a shorter one would cut every slow WAIT off).
    if (this.connection === undefined) {
      const commandTimeout = this.options.timeoutMs + 2_000;
      const c = isCluster(this.redis)
        ? (this.redis as Cluster).duplicate([], { redisOptions: { commandTimeout } })
        : (this.redis as Redis).duplicate({ commandTimeout });
      // Its errors reach the callers as rejections; without a listener ioredis would print each one.
      c.on("error", () => undefined);
      this.connection = c;
    }
    return this.connection;
  }

  private async drain(stockKey: string): Promise<void> {
    this.running.add(stockKey);
    try {
      for (;;) {
        const waiters = this.queues.get(stockKey);
        if (waiters === undefined || waiters.length === 0) break;
        this.queues.delete(stockKey);
        try {
          const ack = await this.syncAndWait(stockKey, waiters);
          let at = 0;
          for (const w of waiters) {
            w.resolve({ replicas: ack.replicas, states: ack.states.slice(at, at + w.ids.length) });
            at += w.ids.length;
          }
        } catch (err) {
          for (const w of waiters) w.reject(err);
        }
      }
    } finally {
      this.running.delete(stockKey);
      this.queues.delete(stockKey);
    }
  }

  /** One pipeline on the WAIT connection: stock/sync (in chunks), then WAIT. */
  private async syncAndWait(stockKey: string, waiters: readonly Waiter[]): Promise<Acknowledgement> {
    const ids = waiters.flatMap((w) => w.ids);
    const pipeline = this.conn().pipeline();
    let chunks = 0;
    for (let at = 0; at === 0 || at < ids.length; at += SYNC_CHUNK) {
      // EVAL, not EVALSHA: the script is short, and a pipeline then never meets NOSCRIPT. On a Cluster the
      // key routes the whole pipeline, WAIT included, to the SKU's master.
      pipeline.eval(SYNC.lua, 1, stockKey, ...ids.slice(at, at + SYNC_CHUNK));
      chunks++;
    }
    pipeline.call("WAIT", this.options.replicas, this.options.timeoutMs);
    let replies: [Error | null, unknown][] | null;
    try {
      replies = await pipeline.exec();
    } catch (err) {
      throw toRedisError(err);
    }
    if (replies === null || replies.length !== chunks + 1)
      throw toRedisError(new Error("WAIT pipeline lost"));
    const states: number[] = [];
    for (let i = 0; i < chunks; i++) {
      const [err, reply] = replies[i]!;
      if (err) throw toRedisError(err);
      states.push(...SYNC.decodeReply(reply));
    }
    const [err, count] = replies[chunks]!;
    if (err) throw toRedisError(err);
    return { replicas: Number(count), states };
  }
}
