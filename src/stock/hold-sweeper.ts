// The hold sweeper: a background loop that gives expired holds back, SKU by SKU.
import { InvalidArgumentError } from "../errors.js";
import { PollingLoop } from "../internal/loop.js";
import { optionKeys, validateInt, validateOptions } from "../internal/validate.js";

/** Options of `startHoldSweeper`. */
export interface HoldSweeperOptions {
  /** The SKUs to sweep, or a function returning them (called on each round). */
  readonly skus: readonly string[] | (() => readonly string[] | Promise<readonly string[]>);
  /**
   * Pause between rounds.
   * @default 1000
   */
  readonly intervalMs?: number;
  /**
   * Most holds released per SKU per call; a round repeats the call while it returns a full batch.
   * @default 100
   */
  readonly limit?: number;
  /** Called with errors of a round (Redis down…); the sweeper keeps going. */
  readonly onError?: (err: unknown) => void;
}

/** A running hold sweeper. */
export interface HoldSweeper {
  /** Stops the loop and resolves once the round in flight (if any) has finished. */
  stop(): Promise<void>;
}

const KNOWN = optionKeys<HoldSweeperOptions>({ skus: 1, intervalMs: 1, limit: 1, onError: 1 });

/**
 * Starts the loop behind `Inventory.startHoldSweeper` (the library's one polling-loop lifecycle): every
 * `intervalMs`, `expire(sku, limit)` for each SKU until it returns less than a full batch. The timer is
 * unref'd. @internal
 */
export function startHoldSweeper(
  expire: (sku: string, limit: number) => Promise<number>,
  options: HoldSweeperOptions,
): HoldSweeper {
  validateOptions("options", options, { required: true, known: KNOWN });
  const intervalMs = options.intervalMs ?? 1000;
  const limit = options.limit ?? 100;
  validateInt("intervalMs", intervalMs, { min: 1, max: 86_400_000 });
  validateInt("limit", limit, { min: 1, max: 100_000 });
  if (!Array.isArray(options.skus) && typeof options.skus !== "function") {
    throw new InvalidArgumentError("skus", "must be an array of SKUs or a function returning one");
  }
  if (options.onError !== undefined && typeof options.onError !== "function") {
    throw new InvalidArgumentError("onError", "must be a function");
  }
  const { skus, onError } = options;
  const report = (err: unknown): void => {
    try {
      onError?.(err);
    } catch {
      // an onError that throws must not end the loop
    }
  };
  const loop: PollingLoop = new PollingLoop({
    // One failing SKU (a bad id, a node down) is reported and skipped: the others are still swept.
    round: async () => {
      const list = typeof skus === "function" ? await skus() : skus;
      if (!Array.isArray(list)) throw new InvalidArgumentError("skus", "must return an array of SKUs");
      for (const sku of list) {
        try {
          while (!loop.stopping && (await expire(sku, limit)) === limit);
        } catch (err) {
          report(err);
        }
      }
      return false;
    },
    intervalMs,
    onError: report,
    pauseFirst: true,
  });
  void loop.start();
  return { stop: () => loop.stop() };
}
