// TickBatcher liveness, randomised: every submit settles and every sent() resolves, whatever the in-flight
// limit, the weights, the groups, and a send that throws, rejects, settles at once or later, with callers that
// submit again from their settlement. A stalled submit (a queue never flushed) is a request that hangs: the
// test then fails on vitest's timeout.
import { describe, it } from "vitest";
import { TickBatcher } from "../../src/internal/batch.js";

function rng(seed: number) {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
}
const later = (r: () => number): Promise<void> => {
  const k = Math.floor(r() * 5);
  if (k === 0) return Promise.resolve();
  if (k === 1) return new Promise((res) => process.nextTick(res));
  if (k === 2) return new Promise((res) => setImmediate(res));
  if (k === 3) return new Promise((res) => setTimeout(res, 0));
  return new Promise((res) => setTimeout(res, Math.floor(r() * 3)));
};

/** A case this slow has stalled (each takes some ms). */
const STALLED_MS = Number(process.env.STALLED_MS ?? 10_000);

describe("TickBatcher: every submit settles", () => {
  for (const maxInFlight of [1, 2, 3]) {
    for (let seed = 1; seed <= 100; seed++) {
      it(
        `maxInFlight ${maxInFlight} seed ${seed}`,
        async () => {
          const r = rng(seed * 7919 + maxInFlight);
          const b = new TickBatcher<number, number, number>(
            (_g, batch) => {
              const mode = Math.floor(r() * 5);
              if (mode === 0) throw new Error("sync");
              if (mode === 1) {
                for (const p of batch) p.resolve(p.item);
                return Promise.resolve();
              }
              if (mode === 2)
                return later(r).then(() => {
                  throw new Error("async");
                });
              return (async () => {
                await later(r);
                for (const p of batch) p.resolve(p.item);
              })();
            },
            1 + Math.floor(r() * 6),
            (x) => 1 + (x % 3),
            maxInFlight,
          );
          const all: Promise<unknown>[] = [];
          let n = 0;
          const submit = (depth: number): void => {
            const g = Math.floor(r() * 3);
            const p = b.submit(g, n++).then(
              () => {
                if (depth < 3 && r() < 0.5) submit(depth + 1);
              },
              () => {
                if (depth < 3 && r() < 0.5) submit(depth + 1);
              },
            );
            all.push(p);
            if (r() < 0.3) all.push(b.sent(g));
          };
          for (let i = 0; i < 60; i++) {
            if (r() < 0.5) await later(r);
            submit(0);
          }
          // Settle everything, including what settlements submitted meanwhile.
          for (let seen = -1; seen !== all.length;) {
            seen = all.length;
            await Promise.allSettled(all.slice());
          }
        },
        STALLED_MS,
      );
    }
  }
});
