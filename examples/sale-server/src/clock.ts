// Redis time in this process, for the page's countdown (GET /api/time) and for refusing a request clearly
// before the start without a round trip. Sampled Redis TIME with an error bound (half the round trip, plus
// drift); readings run on the monotonic clock, so the host's wall clock never decides.
import type { Redis } from "ioredis";

export interface ClockReading {
  /** Redis time, epoch ms, as this process estimates it. */
  readonly ms: number;
  /** How far `ms` can be from Redis's clock. */
  readonly errorMs: number;
}

export interface TimeSource {
  /** The current reading, or undefined before the first sync (or when Redis stopped answering). */
  read(): ClockReading | undefined;
  /** Resolves once there is a reading. */
  ready(): Promise<ClockReading>;
  /** Stops and restarts the background resync (a reading stays trusted for a minute at least). */
  pause(): void;
  resume(): void;
  close(): void;
}

/** Samples Redis TIME every `resyncMs` in the background (the best of three round trips). */
export function sampledRedisClock(redis: Redis, resyncMs = 5_000, driftPpm = 200): TimeSource {
  let sample: { offset: number; error: number; at: number } | undefined;
  let syncing: Promise<void> | undefined;
  const sync = () =>
    (syncing ??= (async () => {
      let best: typeof sample;
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        const [s, us] = await redis.time();
        const t1 = performance.now();
        const s1 = {
          offset: Number(s) * 1000 + Number(us) / 1000 - (t0 + t1) / 2,
          error: (t1 - t0) / 2 + 1,
          at: t1,
        };
        if (best === undefined || s1.error < best.error) best = s1;
      }
      sample = best;
    })().finally(() => (syncing = undefined)));
  let timer: NodeJS.Timeout | undefined;
  const resume = () => {
    timer ??= setInterval(() => void sync().catch(() => undefined), resyncMs);
    timer.unref();
  };
  const pause = () => {
    clearInterval(timer);
    timer = undefined;
  };
  resume();
  const read = (): ClockReading | undefined => {
    if (sample === undefined) return undefined;
    const now = performance.now();
    // Not trusted once far older than a resync (a minute at least): Redis has stopped answering.
    if (now - sample.at > Math.max(60_000, 5 * resyncMs)) return undefined;
    return { ms: now + sample.offset, errorMs: sample.error + ((now - sample.at) * driftPpm) / 1e6 };
  };
  return {
    read,
    async ready() {
      const r = read();
      if (r) return r;
      await sync();
      return read()!;
    },
    pause,
    resume,
    close: pause,
  };
}
