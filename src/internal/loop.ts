// One lifecycle for the library's background workers (outbox relay, stream consumer, hold sweeper): rounds
// back to back while there is work, a pause otherwise, wake-ups, and start/stop calls that cannot race.

/** What a {@link PollingLoop} runs. */
export interface PollingLoopOptions {
  /**
   * One round. Resolves `true` when more work is waiting, so the next round starts at once; `false` (or a
   * rejection, which goes to `onError`) pauses the loop for `intervalMs` or until {@link PollingLoop.wake}.
   */
  readonly round: () => Promise<boolean>;
  /** The pause after a round that found no more work. */
  readonly intervalMs: number;
  /** Errors of rounds and of the teardown. The loop goes on; an `onError` that throws is ignored. */
  readonly onError: (err: unknown) => void;
  /**
   * Runs at every start, before the first round (say, LISTEN), and resolves to its undo, which runs when
   * the loop stops. A rejection rejects that `start()` and starts nothing. When a `stop()` comes in while it
   * runs, its undo runs at once and no round starts.
   */
  readonly setup?: () => Promise<() => Promise<void>>;
  /** Pause before the first round too (a sweeper whose first round is not due at start). @default false */
  readonly pauseFirst?: boolean;
}

/**
 * A polling loop with a race-free lifecycle. `start()` and `stop()` take effect one after another in the
 * order they were called, whatever their overlap, so the last call decides the state:
 *
 * - starts while running (or starting) do nothing; a start during a stop that is still draining waits for
 *   that stop, then starts afresh (it is not lost);
 * - a stop during a start's `setup` undoes the setup and starts no round;
 * - `stop()` wakes a pausing loop, lets the round in flight finish, waits for every promise given to
 *   {@link PollingLoop.track} (a user's `runOnce()`), then runs the setup's undo. Concurrent stops share
 *   that drain.
 *
 * Pauses use an unref'd timer: a running loop never keeps the process alive on its own.
 *
 * @example
 * ```ts
 * class Worker {
 *   private readonly loop = new PollingLoop({
 *     round: async () => (await this.runOnce()) === BATCH, // a full batch: go again at once
 *     intervalMs: 1000,
 *     onError: (err) => console.error(err),
 *   });
 *   runOnce(): Promise<number> { return this.loop.track(this.work()); }
 *   start(): Promise<void> { return this.loop.start(); }
 *   stop(): Promise<void> { return this.loop.stop(); }
 * }
 * ```
 */
export class PollingLoop {
  private readonly options: PollingLoopOptions;
  /** start/stop transitions, chained so that they apply in call order. */
  private transitions: Promise<void> = Promise.resolve();
  /** Numbers the start and stop calls; a loop started by call `n` stops once a stop call after `n` exists. */
  private calls = 0;
  private lastStopCall = 0;
  private startedBy = 0;
  private runner: Promise<void> | null = null;
  private undo: (() => Promise<void>) | null = null;
  private nudged = false;
  private endPause: (() => void) | null = null;
  private readonly inflight = new Set<Promise<unknown>>();

  constructor(options: PollingLoopOptions) {
    this.options = options;
  }

  /** Whether a loop is running (from its start until its stop has drained). */
  get running(): boolean {
    return this.runner !== null;
  }

  /** Whether the running loop has been asked to stop: a long round can check it to end early. */
  get stopping(): boolean {
    return this.lastStopCall > this.startedBy;
  }

  /** Starts the loop; resolves once `setup` (if any) is done and the first round is under way. */
  start(): Promise<void> {
    const call = ++this.calls;
    return this.enqueue(() => this.begin(call));
  }

  /** Stops the loop; resolves once the round in flight, tracked work and the setup's undo are done. */
  stop(): Promise<void> {
    this.lastStopCall = ++this.calls;
    this.endPause?.();
    return this.enqueue(() => this.end());
  }

  /** Ends the current pause at once, and skips the next one if a round is running now (new work arrived). */
  wake(): void {
    this.nudged = true;
    this.endPause?.();
  }

  /** Runs `work` as part of this loop's in-flight work: `stop()` resolves only after it has settled. */
  track<T>(work: Promise<T>): Promise<T> {
    this.inflight.add(work);
    const forget = (): void => void this.inflight.delete(work);
    work.then(forget, forget);
    return work;
  }

  private enqueue(transition: () => Promise<void>): Promise<void> {
    const result = this.transitions.then(transition);
    this.transitions = result.catch(() => undefined);
    return result;
  }

  private async begin(call: number): Promise<void> {
    if (this.runner !== null || this.lastStopCall > call) return;
    let undo: (() => Promise<void>) | null = null;
    if (this.options.setup) {
      undo = await this.options.setup();
      if (this.lastStopCall > call) {
        await undo().catch((err: unknown) => this.report(err));
        return;
      }
    }
    this.undo = undo;
    this.startedBy = call;
    this.runner = this.run();
  }

  private async end(): Promise<void> {
    const runner = this.runner;
    if (runner) await runner;
    await Promise.allSettled([...this.inflight]);
    this.runner = null;
    const undo = this.undo;
    this.undo = null;
    if (undo) await undo().catch((err: unknown) => this.report(err));
  }

  private async run(): Promise<void> {
    if (this.options.pauseFirst) await this.pause();
    while (!this.stopping) {
      this.nudged = false;
      let more = false;
      try {
        more = await this.options.round();
      } catch (err) {
        this.report(err);
      }
      if (this.stopping) break;
      if (!more && !this.nudged) await this.pause();
    }
  }

  private pause(): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.endPause = null;
        resolve();
      };
      const timer = setTimeout(done, this.options.intervalMs);
      timer.unref?.();
      this.endPause = done;
    });
  }

  private report(err: unknown): void {
    try {
      this.options.onError(err);
    } catch {
      // an onError that throws must not end the loop
    }
  }
}
