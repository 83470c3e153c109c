// The in-process mirror of a Bloom filter: a copy of the bitmap that answers checks with no round trip,
// refreshed when the filter's version or add counter in Redis moves.
import { UnexpectedReplyError } from "../errors.js";
import { toRedisError, type RedisClient } from "../internal/scripts.js";
import { setBits, testBits } from "./hash.js";

/** What the mirror needs to know of its filter. */
export interface MirroredFilter {
  readonly redis: RedisClient;
  readonly meta: string;
  readonly segments: readonly string[];
  readonly bits: number;
  readonly hashes: number;
  readonly perKey: number;
  readonly shape: string;
  readonly refreshMs: number;
  readonly onError: (err: unknown) => void;
  /** Called when Redis holds another shape: the copy is dropped; the returned error is thrown. */
  readonly onShapeConflict: (stored: string) => Error;
}

/**
 * A copy of the bitmap, the (version, adds, epoch) it reflects, and the positions added through this process
 * while a reload was in flight (re-applied after it, so the reload cannot lose them).
 */
export class BloomMirror {
  private copy: Uint8Array | undefined;
  private version = -1;
  private adds = -1;
  /** When the filter's meta hash was created: keys deleted and built again count from zero again. */
  private epoch: string | null = null;
  private started = false;
  /** Set by `close()`: checks no longer restart the timer; `refresh()` does. */
  private closed = false;
  private timer: ReturnType<typeof setInterval> | undefined;
  private reloading: Promise<void> | undefined;
  /** A reload that starts once the running one is done (for callers that need a copy read after their call). */
  private queuedReload: Promise<void> | undefined;
  private addedDuringReload: number[] | undefined;
  private ticking = false;

  constructor(private readonly f: MirroredFilter) {}

  /** Whether a copy is loaded. */
  get loaded(): boolean {
    return this.copy !== undefined;
  }

  /** The copy's answer, or `undefined` before it has loaded (the first call starts loading it). */
  test(item: string): boolean | undefined {
    this.start();
    const copy = this.copy;
    return copy === undefined ? undefined : testBits(copy, item, this.f.bits, this.f.hashes);
  }

  /** Records positions this process just set in Redis; `changed`/`adds` are the add script's reply. */
  added(positions: readonly number[], changed: number, adds: number): void {
    if (this.copy !== undefined) {
      setBits(this.copy, positions);
      // Our own add moved the counter by one: the copy already has it, no reload needed.
      if (changed > 0 && adds === this.adds + 1) this.adds = adds;
    }
    const during = this.addedDuringReload;
    if (during !== undefined) for (const p of positions) during.push(p);
  }

  /** Starts the refresh timer (and a first load) unless running or closed. */
  start(load = true): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.timer = setInterval(() => void this.tick(), this.f.refreshMs);
    this.timer.unref?.();
    if (load) this.reload().catch(this.f.onError);
  }

  /** Loads a copy read after this call and (re)starts the timer, even after `close()`. */
  async refresh(): Promise<void> {
    this.closed = false;
    this.start(false);
    await this.reload(true);
  }

  /** Reloads if a copy is loaded (after a write that the add counter does not cover). */
  async reloadIfLoaded(): Promise<void> {
    if (this.copy !== undefined) await this.reload(true);
  }

  /** Stops the timer; the copy keeps answering. */
  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.started = false;
    this.closed = true;
  }

  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      if (this.copy === undefined) return await this.reload();
      const [version, adds, epoch] = await this.f.redis.hmget(this.f.meta, "version", "adds", "epoch");
      if (
        Number(version ?? 0) !== this.version ||
        Number(adds ?? 0) !== this.adds ||
        (epoch ?? null) !== this.epoch
      ) {
        await this.reload();
      }
    } catch (err) {
      this.f.onError(toRedisError(err));
    } finally {
      this.ticking = false;
    }
  }

  /**
   * Reloads the whole bitmap in one MULTI (one consistent snapshot); concurrent callers share it. `fresh`:
   * the copy must be read after this call (a reload already running may have read before a write the caller
   * knows of), so it chains one more reload after a running one; callers share that one too.
   */
  private reload(fresh = false): Promise<void> {
    if (this.reloading === undefined) {
      const run: Promise<void> = this.doReload().finally(() => {
        if (this.reloading === run) this.reloading = undefined;
      });
      this.reloading = run;
      return run;
    }
    if (!fresh) return this.reloading;
    this.queuedReload ??= this.reloading
      .catch(() => undefined)
      .then(() => {
        this.queuedReload = undefined;
        return this.reload();
      });
    return this.queuedReload;
  }

  private async doReload(): Promise<void> {
    const f = this.f;
    this.addedDuringReload = [];
    try {
      let tx = f.redis.multi().hmget(f.meta, "shape", "version", "adds", "epoch");
      for (const key of f.segments) tx = tx.getBuffer(key);
      let replies: [Error | null, unknown][] | null;
      try {
        replies = await tx.exec();
      } catch (err) {
        throw toRedisError(err);
      }
      if (replies === null) throw new UnexpectedReplyError("the mirror's MULTI was discarded");
      for (const [err] of replies) if (err) throw toRedisError(err);
      const [shape, version, adds, epoch] = replies[0]![1] as (string | null)[];
      if (shape != null && shape !== f.shape) {
        // Another client stored another shape since: this copy means nothing any more. Without it, checks go
        // to Redis, whose scripts throw the conflict to the caller instead of answering from stale bits.
        this.copy = undefined;
        throw f.onShapeConflict(shape);
      }
      // Everything from here on is synchronous: readers see the old copy or the new one, never a mix.
      const bytes = Math.ceil(f.bits / 8);
      const copy = this.copy ?? new Uint8Array(bytes);
      copy.fill(0);
      const bytesPerKey = f.perKey / 8;
      for (let i = 0; i < f.segments.length; i++) {
        const buf = replies[i + 1]![1] as Buffer | null;
        if (buf === null) continue;
        const at = i * bytesPerKey;
        copy.set(buf.subarray(0, Math.max(0, Math.min(buf.length, bytes - at))), at);
      }
      setBits(copy, this.addedDuringReload);
      this.copy = copy;
      this.version = Number(version ?? 0);
      this.adds = Number(adds ?? 0);
      this.epoch = epoch ?? null;
    } finally {
      this.addedDuringReload = undefined;
    }
  }
}
