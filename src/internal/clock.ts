// One Redis-synced clock per client and process: an offset and an error bound from sampled Redis TIME, so
// that a time decision that is clearly on one side of a boundary (a sale not started yet, or over) is
// answered in process, and only one within the error bound asks Redis. The application's own wall clock
// (Date.now) never decides: readings run on the monotonic performance.now().
import { InvalidArgumentError } from "../errors.js";
import { replyError, toRedisError, type RedisClient } from "./scripts.js";
import { validateOptions } from "./validate.js";

/** A reading of Redis time: `ms` is within `errorMs` of the server's clock. */
export interface ClockReading {
  /** Redis time in epoch milliseconds, as this process estimates it. */
  readonly ms: number;
  /** How far `ms` can be from the server's clock, in ms (half the best round trip plus drift since). */
  readonly errorMs: number;
}

/** Where Redis time stands against a boundary: clearly before it, clearly at or after it, or too close. */
export type ClockVerdict = "before" | "after" | "unsure";

/** Options of {@link RedisClock}. */
export interface RedisClockOptions {
  /** Resample once a reading is this old (in the background, on the next read). @default 30000 */
  readonly resyncMs?: number;
  /** TIME samples per sync; the one with the shortest round trip wins. @default 3 */
  readonly samples?: number;
  /** Assumed worst drift between this host's monotonic clock and the server's, in parts per million. @default 200 */
  readonly driftPpm?: number;
  /** A reading older than this is not trusted at all (every verdict is "unsure"). @default 5 × resyncMs */
  readonly maxAgeMs?: number;
}

const KNOWN = ["resyncMs", "samples", "driftPpm", "maxAgeMs"];

interface Sample {
  /** Server ms minus local monotonic ms at the sample's midpoint. */
  readonly offset: number;
  /** Half the round trip, plus TIME's rounding. */
  readonly error: number;
  /** Local monotonic ms when the sample was taken. */
  readonly at: number;
}

const shared = new WeakMap<RedisClient, RedisClock>();

/**
 * Redis time in process: sampled `TIME` with an error bound. Shared per client through
 * {@link RedisClock.for}, so a process keeps one clock however many components use it.
 *
 * @example
 * ```ts
 * const clock = RedisClock.for(redis);
 * await clock.ready();
 * if (clock.compare(startsAt) === "before") return { ok: false, reason: "NOT_STARTED" }; // no round trip
 * ```
 */
export class RedisClock {
  private sample: Sample | undefined;
  private syncing: Promise<ClockReading> | undefined;
  private readonly resyncMs: number;
  private readonly samples: number;
  private readonly driftPpm: number;
  private readonly maxAgeMs: number;

  /** The clock shared by every component of this process that uses `client`. */
  static for(client: RedisClient): RedisClock {
    let clock = shared.get(client);
    if (clock === undefined) {
      clock = new RedisClock(client);
      shared.set(client, clock);
    }
    return clock;
  }

  constructor(
    private readonly client: RedisClient,
    options: RedisClockOptions = {},
  ) {
    validateOptions("options", options, { known: KNOWN });
    this.resyncMs = positive("resyncMs", options.resyncMs, 30_000);
    this.samples = positive("samples", options.samples, 3);
    if (!Number.isInteger(this.samples) || this.samples > 20)
      throw new InvalidArgumentError("samples", "must be an integer from 1 to 20");
    this.driftPpm = positive("driftPpm", options.driftPpm, 200, true);
    this.maxAgeMs = positive("maxAgeMs", options.maxAgeMs, 5 * this.resyncMs);
  }

  /**
   * The current reading, or `undefined` before the first sync or once the last sample is older than
   * `maxAgeMs`. A stale reading starts a resync in the background.
   */
  read(): ClockReading | undefined {
    const s = this.sample;
    const now = performance.now();
    if (s === undefined || now - s.at > this.resyncMs) void this.sync().catch(() => undefined);
    if (s === undefined || now - s.at > this.maxAgeMs) return undefined;
    return { ms: now + s.offset, errorMs: s.error + ((now - s.at) * this.driftPpm) / 1e6 };
  }

  /**
   * Where Redis time stands against `boundaryMs`: `"before"` when even the latest possible time is before
   * it, `"after"` when even the earliest possible time is at or after it, otherwise (or with no fresh
   * reading) `"unsure"`: then ask Redis.
   */
  compare(boundaryMs: number): ClockVerdict {
    const r = this.read();
    if (r === undefined) return "unsure";
    if (r.ms + r.errorMs < boundaryMs) return "before";
    if (r.ms - r.errorMs >= boundaryMs) return "after";
    return "unsure";
  }

  /** Resolves once the clock has a reading (syncing now if it has none). Rejects if Redis fails. */
  async ready(): Promise<ClockReading> {
    return this.read() ?? (await this.sync());
  }

  /** Samples Redis TIME now; concurrent calls share one sync. Rejects with a typed error if Redis fails. */
  sync(): Promise<ClockReading> {
    this.syncing ??= this.takeSamples().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  private async takeSamples(): Promise<ClockReading> {
    let best: Sample | undefined;
    for (let i = 0; i < this.samples; i++) {
      const t0 = performance.now();
      let reply: unknown;
      try {
        reply = await this.client.time();
      } catch (err) {
        throw toRedisError(err);
      }
      const t1 = performance.now();
      if (!Array.isArray(reply) || reply.length !== 2) throw replyError("TIME", reply, "two integers");
      const server = Number(reply[0]) * 1000 + Number(reply[1]) / 1000;
      if (!Number.isFinite(server)) throw replyError("TIME", reply, "two integers");
      // TIME is read somewhere in [t0, t1]: the midpoint is off by at most half the round trip.
      const sample = { offset: server - (t0 + t1) / 2, error: (t1 - t0) / 2 + 0.001, at: t1 };
      if (best === undefined || sample.error <= best.error) best = sample;
    }
    // Keep an older sample while it is still tighter than the new one will be by then (a slow round trip
    // during a burst should not widen every decision).
    const old = this.sample;
    if (old !== undefined && best !== undefined) {
      const oldNow = old.error + ((best.at - old.at) * this.driftPpm) / 1e6;
      if (oldNow < best.error && best.at - old.at <= this.resyncMs) best = { ...old };
    }
    this.sample = best;
    const r = this.read();
    if (r === undefined) throw replyError("TIME", undefined, "a reading");
    return r;
  }
}

function positive(name: string, value: unknown, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new InvalidArgumentError(
      name,
      allowZero ? "must be a finite number ≥ 0" : "must be a finite number > 0",
    );
  }
  return value;
}
