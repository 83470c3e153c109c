// Release wake-ups: waiters of one SpinLock instance, woken by a release in this process at once and, when
// the user gave a subscriber connection, by the release channel's PUBLISH from any process.
import type { RedisClient } from "../internal/scripts.js";

/** A registered waiter: `woken` resolves when a release wakes it; `cancel` unregisters it. */
export interface Waiter {
  readonly woken: Promise<void>;
  /**
   * True from the moment a release woke this waiter (set synchronously, before `woken`'s callbacks run).
   * A woken waiter has left the queue: it hears no further release.
   */
  readonly fired: boolean;
  cancel(): void;
}

/** A subscription to one release channel, shared by the waiters of this process. */
export interface Subscription {
  /** True once SUBSCRIBE was acknowledged: from then on no release message can be missed. */
  readonly ready: boolean;
  /** True until SUBSCRIBE was acknowledged or failed. */
  readonly pending: boolean;
  /** Resolves (true) on the acknowledgement, or false when subscribing failed. Never rejects. */
  readonly settled: Promise<boolean>;
  /** Drops this waiter's interest; the channel is unsubscribed when no waiter is left. */
  leave(): void;
}

interface Channel {
  refs: number;
  ready: boolean;
  pending: boolean;
  settled: Promise<boolean>;
}

type Listener = (channel: string | Buffer) => void;

export class Wakeups {
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly channels = new Map<string, Channel>();
  private listening = false;
  private readonly onMessage: Listener = (channel) => this.wake(String(channel));

  private constructor(private readonly subscriber: RedisClient | undefined) {}

  private static readonly shared = new WeakMap<RedisClient, Wakeups>();

  /**
   * The wake-ups of `subscriber`, shared by every SpinLock that was given it: a connection's subscriptions
   * are not reference-counted by Redis, so one lock's UNSUBSCRIBE would otherwise end another's. Without a
   * subscriber, each lock gets its own (local wake-ups only).
   */
  static for(subscriber: RedisClient | undefined): Wakeups {
    if (subscriber === undefined) return new Wakeups(undefined);
    let w = Wakeups.shared.get(subscriber);
    if (w === undefined) {
      w = new Wakeups(subscriber);
      Wakeups.shared.set(subscriber, w);
    }
    return w;
  }

  /**
   * Registers a waiter on `channel`. A wake-up goes to the longest-waiting one only: a single release lets
   * a single waiter in, so waking them all would only send the rest back to sleep after a wasted attempt.
   */
  waiter(channel: string): Waiter {
    let set = this.waiters.get(channel);
    if (set === undefined) {
      set = new Set();
      this.waiters.set(channel, set);
    }
    const queue = set;
    let wake!: () => void;
    let fired = false;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    const entry = () => {
      fired = true;
      remove();
      wake();
    };
    const remove = () => {
      queue.delete(entry);
      if (queue.size === 0 && this.waiters.get(channel) === queue) this.waiters.delete(channel);
    };
    queue.add(entry);
    return {
      woken,
      get fired() {
        return fired;
      },
      cancel: remove,
    };
  }

  /**
   * Counts every wake-up. An attempt made before any waiter is registered compares it before and after,
   * so the fast path of `acquire` allocates nothing and still notices a release that raced it.
   */
  releases = 0;

  /** Wakes the longest-waiting waiter of `channel` in this process, if any. */
  wake(channel: string): void {
    this.releases++;
    const first = this.waiters.get(channel)?.values().next().value;
    first?.();
  }

  /**
   * Subscribes to `channel` (once per process, reference-counted), or returns `undefined` when no
   * subscriber connection was given. Failures are swallowed: the waiter then spins on its timer.
   */
  subscribe(channel: string): Subscription | undefined {
    const sub = this.subscriber;
    if (sub === undefined) return undefined;
    let ch = this.channels.get(channel);
    if (ch === undefined) {
      if (!this.listening) {
        sub.on("message", this.onMessage);
        this.listening = true;
      }
      const created: Channel = { refs: 0, ready: false, pending: true, settled: Promise.resolve(false) };
      created.settled = sub.subscribe(channel).then(
        () => {
          created.ready = true;
          created.pending = false;
          return true;
        },
        () => {
          created.pending = false;
          return false;
        },
      );
      ch = created;
      this.channels.set(channel, ch);
    }
    const state = ch;
    state.refs++;
    let left = false;
    return {
      get ready() {
        return state.ready;
      },
      get pending() {
        return state.pending;
      },
      settled: state.settled,
      leave: () => {
        if (left) return;
        left = true;
        if (--state.refs > 0 || this.channels.get(channel) !== state) return;
        this.channels.delete(channel);
        // Commands on one connection run in order, so a later SUBSCRIBE of this channel follows this one.
        sub.unsubscribe(channel).catch(() => {});
        if (this.channels.size === 0 && this.listening) {
          sub.off("message", this.onMessage);
          this.listening = false;
        }
      },
    };
  }
}
