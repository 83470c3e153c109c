// Rebuilding a Bloom filter without a moment where readers see a half-built one: the new version is filled
// in staging keys beside the live ones, then renamed over them in one script.
import { randomUUID } from "node:crypto";
import type { ConflictError } from "../errors.js";
import { toRedisError, type RedisClient } from "../internal/scripts.js";
import { BEGIN, BUILD, COMMIT } from "./bloom-scripts.js";
import { pushPositions } from "./hash.js";

/** The outcome of `rebuild`. */
export type RebuildResult =
  | { readonly ok: true; readonly version: number; readonly items: number }
  /** Another rebuild started after this one (last one wins), or this one stalled past its lease. */
  | { readonly ok: false; readonly reason: "SUPERSEDED" };

/** What a rebuild needs of its filter. */
export interface RebuildTarget {
  readonly redis: RedisClient;
  readonly meta: string;
  readonly pending: string;
  readonly segments: readonly string[];
  readonly bits: number;
  readonly hashes: number;
  readonly perKey: number;
  readonly shape: string;
  readonly leaseMs: number;
  readonly batchSize: number;
  readonly onError: (err: unknown) => void;
  /** The key of staging segment `i` of build `id`, under the filter's hash tag. */
  stagingKey(id: string, i: number): string;
  shapeError(stored: string): ConflictError;
  /** Called once the new version is live. */
  committed(): Promise<void>;
}

/** Fills a new version from `items` and switches to it; `items` is already checked to be iterable. */
export async function rebuildFilter(
  f: RebuildTarget,
  items: Iterable<string> | AsyncIterable<string>,
  checkItem: (name: string, item: unknown) => asserts item is string,
  signal: AbortSignal | undefined,
): Promise<RebuildResult> {
  signal?.throwIfAborted();
  const id = randomUUID();
  const staging = f.segments.map((_, i) => f.stagingKey(id, i));
  const begun = await BEGIN.run(f.redis, [f.meta, f.pending], [f.shape, id, f.leaseMs]);
  if (!begun.ok) throw f.shapeError(begun.storedShape);

  let superseded = false;
  const build = (positions: readonly number[]) =>
    BUILD.run(f.redis, [f.meta, f.pending, ...staging], [id, f.perKey, ...positions]).then((code) => {
      if (code === 1) superseded = true;
    });
  // Renew the lease even while the item source is slow to yield.
  const heartbeat = setInterval(
    () => void build([]).catch(f.onError),
    Math.max(50, Math.floor(f.leaseMs / 3)),
  );
  heartbeat.unref?.();
  const drop = async () => {
    try {
      await f.redis.del(...staging);
    } catch (err) {
      f.onError(toRedisError(err)); // they expire on their own
    }
  };
  let count = 0;
  try {
    const batch: number[] = [];
    let n = 0;
    for await (const item of items) {
      checkItem("items", item);
      pushPositions(item, f.bits, f.hashes, batch);
      count++;
      if (++n === f.batchSize) {
        signal?.throwIfAborted();
        await build(batch);
        if (superseded) break;
        batch.length = 0;
        n = 0;
      }
    }
    signal?.throwIfAborted();
    if (!superseded && n > 0) await build(batch);
    const version = superseded
      ? undefined
      : await COMMIT.run(
          f.redis,
          [f.meta, f.pending, ...f.segments, ...staging],
          [id, f.perKey, f.segments.length],
        );
    if (version === undefined) {
      await drop();
      return { ok: false, reason: "SUPERSEDED" };
    }
    await f.committed();
    return { ok: true, version, items: count };
  } catch (err) {
    await drop();
    throw err;
  } finally {
    clearInterval(heartbeat);
  }
}
