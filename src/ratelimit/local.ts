// What one process knows about a TokenBucket's keys without asking Redis: refusals it can answer itself
// (a bucket seen short of tokens, a ban) and, while Redis is unavailable, an insurance bucket of its own.
//
// Why an in-process refusal is never wrong: a reply says how many units a bucket held at the moment the
// script ran. Until then the bucket can only gain tokens by refill (at most `rate` units a microsecond of
// Redis time) and lose them to other takes. The script ran after the call was made here, so the Redis time
// elapsed since then is at most the monotonic time elapsed here since the call (plus a drift margin): the
// units the bucket can hold now are bounded from above, and a request the bound cannot cover is one Redis
// would refuse too. Admissions always go to Redis.

/** Units (millionths of a token) per token, as in lua/ratelimit/includes/bucket.lua. */
export const UNITS = 1_000_000;
/** The script's tolerance for refill doubles (units): a take passes when it has `costU - EPS`. */
const EPS = 0.001;
/**
 * How much faster Redis's clock may run than this process's monotonic clock: crystal drift is below
 * 100 ppm; a tenth of a percent also covers NTP slewing (at most 500 ppm).
 */
const DRIFT = 0.001;

/** What the process knows about one key. */
interface Entry {
  /** Units the bucket held at most at monotonic time `at` (when the call was made). */
  units: number;
  at: number;
  /** When the reply arrived: the anchor of the retry estimate, which must not be too short. */
  recv: number;
  /** Refusals in a row (no admission between), for the ban. */
  strikes: number;
  /** Monotonic ms the ban ends; 0 when none. */
  banUntil: number;
}

/** An insurance bucket, in process. */
interface LocalBucket {
  units: number;
  at: number;
}

/** A refusal answered in process. */
export interface LocalRefusal {
  /** Upper bound of the units the bucket holds now. */
  readonly units: number;
  /** Ms until the request may pass (the ban's end, or the refill of its cost at the bound's pace). */
  readonly retryAfterMs: number;
  /** Ms until the bucket may be full (a lower bound). */
  readonly resetMs: number;
}

/** A ban: after `after` refusals in a row of one key, every take of it is refused for `forMs`. */
export interface BanPolicy {
  readonly after: number;
  readonly forMs: number;
}

/**
 * The in-process knowledge of one TokenBucket. Entries are bounded by `maxKeys`: the oldest observation
 * goes first (forgetting a key only sends its next request to Redis, or, for an insurance bucket, starts it
 * full again).
 */
export class LocalState {
  readonly #entries = new Map<string, Entry>();
  readonly #insurance = new Map<string, LocalBucket>();
  readonly #capU: number;
  /** Units a monotonic ms, with the drift margin. */
  readonly #perMs: number;

  constructor(
    capacity: number,
    private readonly rate: number,
    private readonly maxKeys: number,
    private readonly ban: BanPolicy | undefined,
    /** The insurance bucket's share of the capacity and rate. */
    readonly share: number,
    /** Whether known-short buckets are refused here (bans are, either way). */
    private readonly refuseShort: boolean,
  ) {
    this.#capU = capacity * UNITS;
    this.#perMs = rate * 1000 * (1 + DRIFT);
  }

  /** How many keys are remembered (refusal entries and insurance buckets). */
  get size(): number {
    return this.#entries.size + this.#insurance.size;
  }

  #bound(e: Entry, now: number): number {
    const u = e.units + (now - e.at) * this.#perMs;
    return u > this.#capU ? this.#capU : u;
  }

  /** Ms for `units` to refill at the bucket's rate (rounded up). */
  #ms(units: number): number {
    return units <= 0 ? 0 : Math.ceil(units / this.rate / 1000);
  }

  /**
   * The refusal of a take of `cost` tokens from `key` if this process knows Redis would refuse it now (or
   * the key is banned), else `undefined`. Counts the refusal towards a ban.
   */
  refusal(key: string, cost: number, now: number): LocalRefusal | undefined {
    const e = this.#entries.get(key);
    if (e === undefined) return undefined;
    if (this.#stale(e, now)) {
      this.#entries.delete(key); // the bucket may be full again: strikes start over
      return undefined;
    }
    const units = this.#bound(e, now);
    const costU = cost * UNITS;
    const short = units < costU - EPS;
    if (e.banUntil <= now) {
      if (!short || !this.refuseShort) return undefined;
      this.#strike(e, now);
    }
    // The decision above uses the bound, which may end a refusal a little early (then Redis decides). What
    // a client is told to wait is reckoned from the reply's arrival instead, with no drift margin: the
    // script ran before it, so a client that waits this long finds the tokens there (unless others take
    // them).
    const guess = Math.min(this.#capU, e.units + (now - e.recv) * this.rate * 1000);
    const refill = guess < costU - EPS ? this.#ms(costU - guess) : 0;
    return {
      units,
      retryAfterMs: e.banUntil > now ? Math.max(refill, this.#banLeft(e, now)) : Math.max(1, refill),
      resetMs: this.#ms(this.#capU - guess),
    };
  }

  #strike(e: Entry, now: number): void {
    if (this.ban === undefined) return;
    e.strikes++;
    if (e.strikes >= this.ban.after) {
      e.strikes = 0;
      e.banUntil = now + this.ban.forMs;
    }
  }

  /**
   * Learns from a reply: the bucket held `have` units when the script judged a take of `cost` made at
   * monotonic time `sentAt`; `taken` says whether the take's tokens were taken (and kept). Returns the ms
   * a ban started by this refusal lasts (0 when none).
   */
  observe(key: string, cost: number, have: number, taken: boolean, refused: boolean, sentAt: number): number {
    const costU = cost * UNITS;
    const left = taken ? have - costU : have;
    let e = this.#entries.get(key);
    const now = performance.now();
    if (e === undefined) {
      // Worth remembering only when the same request would be refused now, or a ban is being counted.
      const short = this.refuseShort && left < costU - EPS;
      if (!short && !(refused && this.ban !== undefined)) return 0;
      this.#makeRoom(now);
      e = { units: left, at: sentAt, recv: now, strikes: 0, banUntil: 0 };
      this.#entries.set(key, e);
    } else if (left + (now - sentAt) * this.#perMs < this.#bound(e, now)) {
      // Replies can arrive out of order; each gives an upper bound, the smaller one is kept.
      e.units = left;
      e.at = sentAt;
      e.recv = now;
    }
    if (!refused) {
      e.strikes = 0;
      return 0;
    }
    const before = e.banUntil;
    this.#strike(e, now);
    return e.banUntil > before ? this.#banLeft(e, now) : 0;
  }

  /**
   * Whole ms left of `e`'s ban at `now`, never more than `forMs` (`banUntil - now` just after the strike is
   * `forMs` give or take a rounding of the doubles, which a ceiling would make `forMs + 1`).
   */
  #banLeft(e: Entry, now: number): number {
    return Math.min(this.ban?.forMs ?? 0, Math.ceil(e.banUntil - now));
  }

  /** Forgets `key` (after a reset in this process). */
  forget(key: string): void {
    this.#entries.delete(key);
    this.#insurance.delete(key);
  }

  /** Keeps the map under `maxKeys`: stale entries near the front go, then the oldest if still full. */
  #makeRoom(now: number): void {
    let n = 0;
    for (const [k, e] of this.#entries) {
      if (++n > 8) break;
      if (this.#stale(e, now)) this.#entries.delete(k);
    }
    if (this.#entries.size >= this.maxKeys) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
  }

  /** An entry that can refuse nothing and counts no strikes: the bucket may be full again. */
  #stale(e: Entry, now: number): boolean {
    return e.banUntil <= now && this.#bound(e, now) >= this.#capU;
  }

  /**
   * The insurance limiter (Redis unavailable): an in-process bucket of `share` × capacity refilling at
   * `share` × rate. Returns the units it held before this take and whether the take passes; `apply` takes it.
   */
  takeInsurance(key: string, cost: number, now: number, apply: boolean): { have: number; pass: boolean } {
    const capU = this.#capU * this.share;
    let b = this.#insurance.get(key);
    const have =
      b === undefined ? capU : Math.min(capU, b.units + (now - b.at) * this.rate * 1000 * this.share);
    const costU = cost * UNITS;
    const pass = have >= costU - EPS;
    if (pass && apply) {
      if (b === undefined) {
        if (this.#insurance.size >= this.maxKeys) {
          const oldest = this.#insurance.keys().next();
          if (!oldest.done) this.#insurance.delete(oldest.value);
        }
        b = { units: 0, at: now };
        this.#insurance.set(key, b);
      }
      b.units = have - costU;
      b.at = now;
    }
    return { have, pass };
  }
}
