// L1: an in-process tier in front of Redis for the few hot ids of a ReadThroughCache. Bounded by entry count
// (least recently used dropped) and by staleness (an entry lives maxStaleMs after the read that filled it
// began), and emptied by pub/sub messages that the cache's scripts publish with every store and invalidation.
// It answers only while its subscription is confirmed: messages lost while it was not cannot matter.
import type { RedisClient } from "../internal/scripts.js";

/** One id in L1: its value (`undefined`: known missing) and until when (monotonic ms) it may be served. */
export interface LocalEntry<V> {
  readonly value: V | undefined;
  readonly expires: number;
}

/** Taken before a read from Redis: what decides whether its answer may enter L1. */
export interface ReadTicket {
  /** Subscription epoch when the read began: a reconnection since voids it. */
  readonly epoch: number;
  /** Invalidation counter when the read began. */
  readonly seq: number;
  /** Monotonic ms when the read began: the entry's age counts from here. */
  readonly at: number;
}

/** How many tiers use each channel of each subscriber, so that `close()` unsubscribes only the last one. */
const users = new WeakMap<RedisClient, Map<string, number>>();

export class LocalTier<V> {
  private readonly entries = new Map<string, LocalEntry<V>>();
  /** True from a confirmed SUBSCRIBE until the connection closes. */
  private subscribed = false;
  private closed = false;
  private epoch = 0;
  private seq = 0;
  /** Ids invalidated while reads were in flight, with the counter at that moment. */
  private readonly invalidated = new Map<string, number>();
  private reading = 0;
  private readonly onMessage = (channel: string, message: string) => {
    if (channel === this.channel) this.drop(message);
  };
  private readonly onLost = () => {
    this.subscribed = false;
    this.epoch++;
    this.entries.clear();
  };
  private readonly onReady = () => this.subscribe();

  constructor(
    private readonly subscriber: RedisClient,
    /** The channel the cache's scripts publish changed ids on. */
    readonly channel: string,
    private readonly maxEntries: number,
    private readonly maxStaleMs: number,
    private readonly onError: (err: unknown) => void,
  ) {
    subscriber.on("message", this.onMessage);
    subscriber.on("close", this.onLost);
    subscriber.on("ready", this.onReady);
    let counts = users.get(subscriber);
    if (counts === undefined) users.set(subscriber, (counts = new Map()));
    counts.set(channel, (counts.get(channel) ?? 0) + 1);
    this.subscribe();
  }

  /** True while L1 may answer: its subscription is confirmed and the connection has not closed since. */
  get active(): boolean {
    return this.subscribed;
  }

  /** Resolves once the subscription is confirmed (L1 answers from then on). */
  async ready(): Promise<void> {
    if (this.subscribed) return;
    const epoch = this.epoch;
    await this.subscriber.subscribe(this.channel);
    this.confirm(epoch);
  }

  private subscribe(): void {
    if (this.closed) return;
    const epoch = this.epoch;
    this.subscriber.subscribe(this.channel).then(() => this.confirm(epoch), this.onError);
  }

  private confirm(epoch: number): void {
    // A confirmation from before a disconnection says nothing about the connection since.
    if (!this.closed && epoch === this.epoch) this.subscribed = true;
  }

  /** The entry of `id`, if L1 may serve it now. */
  lookup(id: string): LocalEntry<V> | undefined {
    if (!this.subscribed) return undefined;
    const entry = this.entries.get(id);
    if (entry === undefined) return undefined;
    if (performance.now() >= entry.expires) {
      this.entries.delete(id);
      return undefined;
    }
    // Most recently used last: the map's first key is the one to drop.
    this.entries.delete(id);
    this.entries.set(id, entry);
    return entry;
  }

  /** Before a read from Redis whose answer may fill L1; pair it with `end`. */
  begin(): ReadTicket {
    this.reading++;
    return { epoch: this.epoch, seq: this.seq, at: performance.now() };
  }

  /**
   * After the read: stores its answer unless the subscription lapsed or `id` was invalidated since the read
   * began (the answer may be from before the change). `ok`: the read succeeded.
   */
  end(ticket: ReadTicket, id: string, ok: boolean, value: V | undefined): void {
    if (
      ok &&
      this.subscribed &&
      ticket.epoch === this.epoch &&
      (this.invalidated.get(id) ?? -1) <= ticket.seq
    ) {
      const expires = ticket.at + this.maxStaleMs;
      if (performance.now() < expires) {
        this.entries.delete(id);
        this.entries.set(id, { value, expires });
        if (this.entries.size > this.maxEntries) {
          this.entries.delete(this.entries.keys().next().value as string);
        }
      }
    }
    if (--this.reading === 0) this.invalidated.clear();
  }

  /** Drops `id`, and keeps reads already in flight from putting back what they read before. */
  drop(id: string): void {
    this.entries.delete(id);
    if (this.reading > 0) this.invalidated.set(id, ++this.seq);
  }

  /** How many ids L1 holds (expired ones included until they are looked up or pushed out). */
  get size(): number {
    return this.entries.size;
  }

  /** Stops listening; unsubscribes the channel unless another tier on the same subscriber still uses it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onLost();
    this.subscriber.off("message", this.onMessage);
    this.subscriber.off("close", this.onLost);
    this.subscriber.off("ready", this.onReady);
    const counts = users.get(this.subscriber);
    const left = (counts?.get(this.channel) ?? 1) - 1;
    if (left > 0) {
      counts?.set(this.channel, left);
      return;
    }
    counts?.delete(this.channel);
    await this.subscriber.unsubscribe(this.channel);
  }
}
