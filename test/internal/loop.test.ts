// PollingLoop: the start/stop lifecycle shared by the relay, the stream consumer and the hold sweeper.
import { describe, expect, it } from "vitest";
import { PollingLoop, type PollingLoopOptions } from "../../src/internal/loop.js";

/** A promise settled from outside. */
function deferred<T = void>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * A loop whose rounds, setup and undo are counted, and whose rounds each wait for the test to release them
 * (`gate`), so a test can hold a round in flight as long as it needs.
 */
function harness(options: Partial<PollingLoopOptions> & { withSetup?: boolean } = {}) {
  const log: string[] = [];
  const errors: unknown[] = [];
  let gate = deferred<boolean>();
  let roundStarted = deferred<number>();
  let rounds = 0;
  let setupGate: ReturnType<typeof deferred<void>> | null = null;
  const setupStarted = deferred();
  const loop = new PollingLoop({
    intervalMs: 3_600_000, // never elapses in a test: pauses end only by wake() or stop()
    onError: (err) => errors.push(err),
    round: async () => {
      rounds++;
      log.push(`round ${rounds}`);
      roundStarted.resolve(rounds);
      const more = await gate.promise;
      return more;
    },
    setup: options.withSetup
      ? async () => {
          log.push("setup");
          setupStarted.resolve();
          if (setupGate) await setupGate.promise;
          return async () => void log.push("undo");
        }
      : undefined,
    ...options,
  });
  return {
    loop,
    log,
    errors,
    get rounds() {
      return rounds;
    },
    /** Waits for the next round to start (or the one already started and not yet awaited). */
    nextRound: async (): Promise<number> => {
      const n = await roundStarted.promise;
      roundStarted = deferred<number>();
      return n;
    },
    /** Lets the round in flight finish with `more`, and arms the gate for the next one. */
    release: (more = false): void => {
      const g = gate;
      gate = deferred<boolean>();
      g.resolve(more);
    },
    holdSetup: (): void => {
      setupGate = deferred();
    },
    releaseSetup: (): void => setupGate?.resolve(),
    setupStarted: setupStarted.promise,
  };
}

describe("PollingLoop", () => {
  it("runs a round at start, the next at once after a busy round, and pauses after an idle one until woken", async () => {
    const h = harness();
    await h.loop.start();
    expect(h.loop.running).toBe(true);
    expect(await h.nextRound()).toBe(1);
    h.release(true); // more work: no pause
    expect(await h.nextRound()).toBe(2);
    h.release(false); // idle: pauses for an hour
    h.loop.wake();
    expect(await h.nextRound()).toBe(3);
    const stopped = h.loop.stop();
    h.release(false);
    await stopped;
    expect(h.loop.running).toBe(false);
    expect(h.rounds).toBe(3);
  });

  it("a wake() during a round skips the pause after it", async () => {
    const h = harness();
    await h.loop.start();
    await h.nextRound();
    h.loop.wake(); // new work announced while round 1 runs
    h.release(false);
    expect(await h.nextRound()).toBe(2);
    const stopped = h.loop.stop();
    h.release(false);
    await stopped;
  });

  it("stop() ends a pause at once and resolves; a second stop() resolves too", async () => {
    const h = harness();
    await h.loop.start();
    await h.nextRound();
    h.release(false); // now pausing for an hour
    await Promise.all([h.loop.stop(), h.loop.stop()]);
    expect(h.loop.running).toBe(false);
    expect(h.rounds).toBe(1);
  });

  it("concurrent starts start one loop and run setup once", async () => {
    const h = harness({ withSetup: true });
    await Promise.all([h.loop.start(), h.loop.start(), h.loop.start()]);
    await h.nextRound();
    expect(h.log).toEqual(["setup", "round 1"]);
    const stopped = h.loop.stop();
    h.release(false);
    await stopped;
    expect(h.log).toEqual(["setup", "round 1", "undo"]);
  });

  it("stop() during setup undoes it and starts no round; start() resolves without error", async () => {
    const h = harness({ withSetup: true });
    h.holdSetup();
    const starting = h.loop.start();
    await h.setupStarted;
    const stopping = h.loop.stop();
    h.releaseSetup();
    await Promise.all([starting, stopping]);
    expect(h.loop.running).toBe(false);
    expect(h.log).toEqual(["setup", "undo"]);
    expect(h.rounds).toBe(0);
  });

  it("a start() called while stop() drains its round waits for the stop, then starts afresh", async () => {
    const h = harness({ withSetup: true });
    await h.loop.start();
    await h.nextRound();
    const stopping = h.loop.stop();
    const restarting = h.loop.start();
    let restarted = false;
    void restarting.then(() => (restarted = true));
    await Promise.resolve();
    expect(restarted).toBe(false); // the round is still in flight
    h.release(false);
    await stopping;
    await restarting;
    expect(h.loop.running).toBe(true);
    expect(await h.nextRound()).toBe(2);
    expect(h.log).toEqual(["setup", "round 1", "undo", "setup", "round 2"]);
    const stopped = h.loop.stop();
    h.release(false);
    await stopped;
    expect(h.log.at(-1)).toBe("undo");
  });

  it("start, stop, start, stop called at once: the last call wins and setup/undo stay balanced", async () => {
    const h = harness({ withSetup: true });
    await Promise.all([h.loop.start(), h.loop.stop(), h.loop.start(), h.loop.stop()]);
    expect(h.loop.running).toBe(false);
    expect(h.log.filter((l) => l === "setup").length).toBe(h.log.filter((l) => l === "undo").length);
    // …and a start after them runs.
    await Promise.all([h.loop.stop(), h.loop.start()]);
    expect(h.loop.running).toBe(true);
    await h.nextRound();
    const stopped = h.loop.stop();
    h.release(false);
    await stopped;
    expect(h.log.filter((l) => l === "setup").length).toBe(h.log.filter((l) => l === "undo").length);
  });

  it("stop() waits for tracked work (a user's runOnce) as well as the loop's round", async () => {
    const h = harness();
    const work = deferred<number>();
    const tracked = h.loop.track(work.promise);
    let stopped = false;
    const stopping = h.loop.stop().then(() => (stopped = true));
    await Promise.resolve();
    await Promise.resolve();
    expect(stopped).toBe(false);
    work.resolve(7);
    expect(await tracked).toBe(7);
    await stopping;
    expect(stopped).toBe(true);
  });

  it("a failed setup rejects that start() and leaves the loop stopped; a later start() works", async () => {
    let fail = true;
    const h = harness({
      setup: async () => {
        if (fail) throw new Error("LISTEN refused");
        return async () => {};
      },
    });
    await expect(h.loop.start()).rejects.toThrow("LISTEN refused");
    expect(h.loop.running).toBe(false);
    expect(h.rounds).toBe(0);
    fail = false;
    await h.loop.start();
    expect(await h.nextRound()).toBe(1);
    const stopped = h.loop.stop();
    h.release(false);
    await stopped;
  });

  it("a round that throws goes to onError and the loop goes on; a throwing onError is ignored", async () => {
    let n = 0;
    const done = deferred();
    const errors: unknown[] = [];
    const loop = new PollingLoop({
      intervalMs: 1,
      onError: (err) => {
        errors.push(err);
        throw new Error("onError itself fails");
      },
      round: async () => {
        n++;
        if (n === 3) done.resolve();
        if (n <= 2) throw new Error(`round ${n}`);
        return false;
      },
    });
    await loop.start();
    await done.promise;
    await loop.stop();
    expect(errors.map((e) => (e as Error).message)).toEqual(["round 1", "round 2"]);
  });

  it("pauseFirst: the first round waits for the interval (or a wake)", async () => {
    const h = harness({ pauseFirst: true });
    await h.loop.start();
    expect(h.rounds).toBe(0);
    h.loop.wake();
    expect(await h.nextRound()).toBe(1);
    const stopped = h.loop.stop();
    h.release(false);
    await stopped;
  });

  it("stopping is true from stop() until the next start, so long rounds can end early", async () => {
    const h = harness();
    await h.loop.start();
    await h.nextRound();
    expect(h.loop.stopping).toBe(false);
    const stopped = h.loop.stop();
    expect(h.loop.stopping).toBe(true);
    h.release(true); // "more work", but the loop is stopping
    await stopped;
    expect(h.rounds).toBe(1);
  });
});
