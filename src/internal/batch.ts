// Coalescing: calls that arrive in one tick for the same group (a SKU, a hash slot) share one script call,
// which amortises the per-call cost of EVALSHA (parsing, script setup, the reply) across the batch.
// Items are handed over in submission order, so a script that applies them one by one gives the same
// result as separate calls in that order.

/** One submitted item and the callbacks that settle its caller's promise. */
export interface Pending<T, R> {
  readonly item: T;
  readonly resolve: (result: R) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * Collects items per group during one tick and hands each group's items to `send` as one batch. A group is
 * sent at once when its items weigh `maxWeight` or more, so under load several batches are in flight
 * (Redis runs one while this process encodes the next) and no script holds Redis for long.
 *
 * With `maxInFlight`, a group that already has that many batches in flight holds its next batch until one
 * of them settles (or it reaches `maxWeight`), then sends everything that gathered meanwhile. Items that
 * arrive in separate I/O callbacks (one HTTP request each) would otherwise go one call apiece, since a tick
 * ends with each callback; held back, they share a call, and an idle group still sends at once.
 *
 * `send` must settle every pending item of the batch; if it throws, the items it left unsettled are
 * rejected with that error.
 *
 * @example
 * ```ts
 * const batcher = new TickBatcher<string, Req, Res>(async (sku, batch) => {
 *   const replies = await runScript(sku, batch.map((p) => p.item));
 *   batch.forEach((p, i) => p.resolve(replies[i]));
 * }, 32);
 * const res = await batcher.submit("sku-1", req);
 * ```
 */
export class TickBatcher<K, T, R> {
  private readonly queues = new Map<K, Pending<T, R>[]>();
  private readonly weights = new Map<K, number>();
  /** Batches sent and not settled yet, per group (only counted with a `maxInFlight`). */
  private readonly inFlight = new Map<K, number>();
  /** Callers of `sent(group)` waiting for the group's queued items to be handed to `send`. */
  private readonly waiters = new Map<K, (() => void)[]>();
  private scheduled = false;

  constructor(
    private readonly send: (group: K, batch: Pending<T, R>[]) => Promise<void>,
    private readonly maxWeight: number,
    private readonly weigh: (item: T) => number = () => 1,
    private readonly maxInFlight = Infinity,
  ) {}

  /** Queues `item` in `group`; resolves with what `send` settles it with. */
  submit(group: K, item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      let queue = this.queues.get(group);
      if (queue === undefined) {
        queue = [];
        this.queues.set(group, queue);
      }
      queue.push({ item, resolve, reject });
      const weight = (this.weights.get(group) ?? 0) + this.weigh(item);
      if (weight >= this.maxWeight) {
        this.queues.delete(group);
        this.weights.delete(group);
        this.dispatch(group, queue);
        return;
      }
      this.weights.set(group, weight);
      // A group at its in-flight limit is sent when a call of it comes back (see dispatch): no flush to
      // schedule now, which under load saves most submits a tick callback.
      if (!this.scheduled && (this.inFlight.get(group) ?? 0) < this.maxInFlight) {
        this.scheduled = true;
        // nextTick runs after the promise continuations already queued, so the callers woken by one reply
        // (the previous batch) all land in the next batch.
        process.nextTick(() => this.flush());
      }
    });
  }

  /**
   * Resolves once every item submitted to `group` so far has been handed to `send` (at once when none is
   * waiting). `send` issues its command before its first await, so a command sent on the same connection
   * afterwards reaches Redis after them, even when the group was held by `maxInFlight`.
   */
  sent(group: K): Promise<void> {
    if (!this.queues.has(group)) return Promise.resolve();
    return new Promise((resolve) => {
      const waiting = this.waiters.get(group);
      if (waiting === undefined) this.waiters.set(group, [resolve]);
      else waiting.push(resolve);
    });
  }

  private flush(): void {
    this.scheduled = false;
    for (const [group, queue] of [...this.queues]) {
      // Held: the group's batches in flight are enough; the first to settle sends this one.
      if ((this.inFlight.get(group) ?? 0) >= this.maxInFlight) continue;
      this.queues.delete(group);
      this.weights.delete(group);
      this.dispatch(group, queue);
    }
  }

  private dispatch(group: K, batch: Pending<T, R>[]): void {
    let sent: Promise<void>;
    try {
      sent = this.send(group, batch);
    } catch (err) {
      sent = Promise.reject(err); // a `send` that throws before its first await
    }
    // The whole queue of the group goes in each dispatch: whoever waited for its items is done waiting.
    const waiting = this.waiters.get(group);
    if (waiting !== undefined) {
      this.waiters.delete(group);
      for (const resolve of waiting) resolve();
    }
    const settled = sent.catch((err: unknown) => {
      // Settling twice is a no-op, so rejecting every item only reaches those `send` left open.
      for (const p of batch) p.reject(err);
    });
    if (this.maxInFlight === Infinity) return;
    this.inFlight.set(group, (this.inFlight.get(group) ?? 0) + 1);
    void settled.then(() => {
      const left = this.inFlight.get(group)! - 1;
      if (left === 0) this.inFlight.delete(group);
      else this.inFlight.set(group, left);
      // What gathered while the group was held goes now (with the callers this reply woke, if in this tick).
      if (this.queues.has(group) && !this.scheduled) {
        this.scheduled = true;
        process.nextTick(() => this.flush());
      }
    });
  }
}
