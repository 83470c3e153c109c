// Benchmark helpers: closed-loop load with a fixed number of workers, alternating rounds so that candidates
// measured side by side see the same machine, and markdown tables for BENCHMARKS.md.

import type { Redis } from "ioredis";

/** Unlinks every key matching `pattern` (SCAN, so a shared server is not blocked): what a bench wrote. */
export async function cleanup(redis: Redis, pattern: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== "0");
}

/** What every bench module receives. */
export interface BenchContext {
  /** The machine's Redis (shared; benches use random key prefixes and clean up). */
  readonly redisUrl: string;
  /** The machine's PostgreSQL; benches create and drop their own database. */
  readonly databaseUrl: string;
  /** Length of one measured round per candidate. */
  readonly roundMs: number;
  /** Rounds per candidate; the median is reported. */
  readonly rounds: number;
}

/** What a bench module returns: a section of BENCHMARKS.md. */
export interface BenchSection {
  readonly title: string;
  /** Markdown: tables and a line or two on what was measured and how it compares with the goal. */
  readonly body: string;
}

export interface Candidate {
  readonly name: string;
  readonly concurrency: number;
  /** One operation; `i` counts calls across all workers. */
  readonly fn: (i: number) => Promise<unknown>;
  readonly setup?: () => Promise<void>;
}

export interface Measurement {
  readonly name: string;
  readonly concurrency: number;
  readonly opsPerSec: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly ops: number;
  /** Throughput of every round, in order (round r of every candidate ran back to back). */
  readonly rounds: readonly number[];
}

async function round(
  c: Candidate,
  ms: number,
  counter: { i: number },
): Promise<{ ops: number; lat: number[]; secs: number }> {
  const lat: number[] = [];
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(ms) * 1_000_000n;
  let ops = 0;
  const worker = async () => {
    for (;;) {
      const t0 = process.hrtime.bigint();
      if (t0 >= deadline) return;
      await c.fn(counter.i++);
      lat.push(Number(process.hrtime.bigint() - t0) / 1000);
      ops++;
    }
  };
  await Promise.all(Array.from({ length: c.concurrency }, worker));
  return { ops, lat, secs: Number(process.hrtime.bigint() - start) / 1e9 };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * Measures candidates side by side: a short warm-up each, then `rounds` rounds in turn (A B C A B C …);
 * reports each candidate's median round.
 */
export async function compare(ctx: BenchContext, candidates: readonly Candidate[]): Promise<Measurement[]> {
  const counters = candidates.map(() => ({ i: 0 }));
  for (const [k, c] of candidates.entries()) {
    await c.setup?.();
    await round(c, Math.min(500, ctx.roundMs), counters[k]!);
  }
  const results: { opsPerSec: number; lat: number[]; ops: number }[][] = candidates.map(() => []);
  for (let r = 0; r < ctx.rounds; r++) {
    for (const [k, c] of candidates.entries()) {
      const { ops, lat, secs } = await round(c, ctx.roundMs, counters[k]!);
      results[k]!.push({ opsPerSec: ops / secs, lat, ops });
    }
  }
  return candidates.map((c, k) => {
    const rs = [...results[k]!].sort((a, b) => a.opsPerSec - b.opsPerSec);
    const med = rs[Math.floor(rs.length / 2)]!;
    const lat = [...med.lat].sort((a, b) => a - b);
    return {
      name: c.name,
      concurrency: c.concurrency,
      opsPerSec: med.opsPerSec,
      p50Us: percentile(lat, 50),
      p99Us: percentile(lat, 99),
      ops: med.ops,
      rounds: results[k]!.map((r) => r.opsPerSec),
    };
  });
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

/** A markdown table of measurements; `ratioTo` names the row the others are compared with. */
export function table(rows: readonly Measurement[], ratioTo?: string): string {
  const base = rows.find((r) => r.name === ratioTo);
  const head = `| candidate | concurrency | ops/s | p50 µs | p99 µs |${base ? " vs " + base.name + " |" : ""}`;
  const sep = `|---|---:|---:|---:|---:|${base ? "---:|" : ""}`;
  const lines = rows.map(
    (r) =>
      `| ${r.name} | ${r.concurrency} | ${fmt(r.opsPerSec)} | ${fmt(r.p50Us)} | ${fmt(r.p99Us)} |` +
      (base ? ` ${pairedRatio(r, base).toFixed(2)}x |` : ""),
  );
  return [head, sep, ...lines].join("\n");
}

/**
 * The median over rounds of x's throughput divided by y's in the same round. Rounds of different
 * candidates run back to back, so pairing them cancels most of the drift of a shared machine.
 */
function pairedRatio(x: Measurement, y: Measurement): number {
  const r = x.rounds.map((v, i) => v / y.rounds[i]!).sort((a, b) => a - b);
  return r[Math.floor(r.length / 2)]!;
}

/** Ratio of two named measurements' throughput: the median of their per-round ratios. */
export function ratio(rows: readonly Measurement[], a: string, b: string): number {
  const x = rows.find((r) => r.name === a);
  const y = rows.find((r) => r.name === b);
  if (!x || !y) throw new Error(`no measurement named ${x ? b : a}`);
  return pairedRatio(x, y);
}
