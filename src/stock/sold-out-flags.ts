// The in-process sold-out flags of one Inventory, and the pub/sub subscriber that drops them on a restock.
import { InvalidArgumentError } from "../errors.js";
import type { RedisClient } from "../internal/scripts.js";

/** Per subscriber connection: how many flag sets listen on each restock channel. */
const subscriptions = new WeakMap<RedisClient, Map<string, number>>();

/** What a reply may raise a flag with: the state of the flags when its call was made. */
export interface FlagToken {
  /** The SKU's restock count when the call was made. */
  readonly generation: number;
  /** The flags' epoch when the call was made. */
  readonly epoch: number;
}

/**
 * SKU → "sold out until" for one Inventory. A flag goes up only from a reply whose call started after the
 * last restock this process heard of, and (with a subscriber) only while the subscriber is subscribed, so a
 * restock is never missed while a flag stands. @internal
 */
export class SoldOutFlags {
  /** SKU → `performance.now()` until which it is known sold out. */
  private readonly soldOut = new Map<string, number>();
  /**
   * SKU → how many restocks this instance has heard of. A SOLD_OUT reply sets the flag only if no restock
   * arrived while it was in flight: the restock message comes on another connection and can overtake it.
   */
  private readonly restocks = new Map<string, number>();
  /**
   * Bumped whenever restocks may have been missed or forgotten (the subscriber's connection dropped or came
   * back, the `restocks` map was cleared): a SOLD_OUT reply made in an older epoch raises no flag.
   */
  private epoch = 0;
  /** With a subscriber: whether it is subscribed now. Flags go up only while it is (no restock is missed). */
  private listening = false;
  private closed = false;

  private readonly onSubscriberDown = (): void => {
    this.listening = false;
    this.forget();
  };
  private readonly onSubscriberReady = (): void => this.listen();
  private readonly onMessage = (channel: string, sku: string): void => {
    if (channel === this.channel) this.restocked(sku);
  };

  constructor(
    /** The restock channel, `<prefix>:restock`. */
    readonly channel: string,
    private readonly subscriber: RedisClient | undefined,
    /** How long a flag stands; 0: never raised. */
    private readonly cacheMs: number,
  ) {
    if (subscriber === undefined) return;
    if (subscriber === null || typeof subscriber !== "object" || typeof subscriber.subscribe !== "function") {
      throw new InvalidArgumentError("subscriber", "must be an ioredis Redis or Cluster client");
    }
    subscriber.on("message", this.onMessage);
    subscriber.on("close", this.onSubscriberDown);
    subscriber.on("end", this.onSubscriberDown);
    subscriber.on("ready", this.onSubscriberReady);
    // Counted per connection and channel: several Inventories may share a subscriber.
    let channels = subscriptions.get(subscriber);
    if (channels === undefined) subscriptions.set(subscriber, (channels = new Map()));
    channels.set(channel, (channels.get(channel) ?? 0) + 1);
    this.listen();
  }

  /** Whether `sku` is known sold out now. */
  isSoldOut(sku: string): boolean {
    if (this.soldOut.size === 0 || (this.subscriber !== undefined && !this.listening)) return false;
    const until = this.soldOut.get(sku);
    if (until === undefined) return false;
    if (performance.now() < until) return true;
    this.soldOut.delete(sku);
    return false;
  }

  /** The token a call to Redis carries, to raise a flag with its reply. */
  token(sku: string): FlagToken {
    return { generation: this.restocks.get(sku) ?? 0, epoch: this.epoch };
  }

  /** Raises the flag of `sku` from a reply whose call carried `token`, unless a restock came meanwhile. */
  raise(sku: string, token: FlagToken): void {
    if (
      this.cacheMs > 0 &&
      (this.subscriber === undefined || this.listening) &&
      this.epoch === token.epoch &&
      (this.restocks.get(sku) ?? 0) === token.generation
    ) {
      this.soldOut.set(sku, performance.now() + this.cacheMs);
    }
  }

  /** Stock came back (or may have): drop the flag and let no older SOLD_OUT reply raise it again. */
  restocked(sku: string): void {
    this.soldOut.delete(sku);
    if (this.restocks.size >= 10_000) {
      this.restocks.clear();
      this.forget(); // the cleared counts could match an older reply's again
    }
    this.restocks.set(sku, (this.restocks.get(sku) ?? 0) + 1);
  }

  /** Drops every flag and keeps the replies in flight from raising one. */
  private forget(): void {
    this.epoch++;
    this.soldOut.clear();
  }

  /** (Re)subscribes; flags may go up again once the subscription is confirmed. */
  private listen(): void {
    const sub = this.subscriber;
    if (sub === undefined || this.closed) return;
    // SUBSCRIBE again is harmless (ioredis also resubscribes on reconnect); its reply confirms the channel.
    // A failed subscription only means no flags, so every call asks Redis; never an unhandled rejection.
    sub.subscribe(this.channel).then(
      () => {
        if (this.closed || (sub as { status?: string }).status !== "ready") return;
        this.forget(); // restocks published before the subscription took hold were missed
        this.listening = true;
      },
      () => undefined,
    );
  }

  /** Stops listening (the connection stays open: it is the caller's). */
  async close(): Promise<void> {
    const sub = this.subscriber;
    if (sub === undefined || this.closed) return;
    this.closed = true;
    this.listening = false;
    this.forget();
    sub.off("message", this.onMessage);
    sub.off("close", this.onSubscriberDown);
    sub.off("end", this.onSubscriberDown);
    sub.off("ready", this.onSubscriberReady);
    const channels = subscriptions.get(sub);
    const n = (channels?.get(this.channel) ?? 1) - 1;
    if (n > 0) channels?.set(this.channel, n);
    else {
      channels?.delete(this.channel);
      await sub.unsubscribe(this.channel).catch(() => undefined);
    }
  }
}
