// The cost of the diagnostics channels on the two hottest calls, Inventory.reserve and TokenBucket.take,
// side by side in one run: nobody subscribed (the default), and the prom-client adapter on. The cost with
// nobody subscribed is the `hasSubscribers` check in front of each call, measured on its own and put in
// proportion to the call's own time.
import { randomBytes } from "node:crypto";
import { tracingChannel } from "node:diagnostics_channel";
import { Redis } from "ioredis";
import { Registry } from "prom-client";
import { prometheusMetrics } from "../src/metrics/index.js";
import { Inventory, UNLIMITED } from "../src/stock/index.js";
import { TokenBucket } from "../src/ratelimit/index.js";
import { compare, table, type BenchContext, type BenchSection, type Measurement, cleanup } from "./lib.js";

/**
 * Nanoseconds a call spends on the no-subscriber check: a method that checks an unsubscribed tracing channel
 * before delegating, against the same method delegating directly (the median of 7 runs of 2M calls each).
 */
function guardCostNs(): number {
  const ch = tracingChannel("flash-sale-kit:bench.guard");
  const done = Promise.resolve(1);
  class Direct {
    call(k: string): Promise<number> {
      return this.#run(k);
    }
    #run(k: string): Promise<number> {
      return k.length > 0 ? done : done;
    }
  }
  class Guarded {
    call(k: string): Promise<number> {
      if (!ch.hasSubscribers) return this.#run(k);
      return ch.tracePromise(() => this.#run(k), { k });
    }
    #run(k: string): Promise<number> {
      return k.length > 0 ? done : done;
    }
  }
  const time = (o: { call(k: string): Promise<number> }) => {
    const n = 2_000_000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) o.call("key");
    return Number(process.hrtime.bigint() - t0) / n;
  };
  const d = new Direct();
  const g = new Guarded();
  const diffs: number[] = [];
  for (let r = 0; r < 7; r++) diffs.push(time(g) - time(d));
  diffs.sort((a, b) => a - b);
  return Math.max(0, diffs[3]!);
}

export default async function metricsBench(ctx: BenchContext): Promise<BenchSection> {
  const redis = new Redis(ctx.redisUrl);
  const tag = `bench${randomBytes(4).toString("hex")}`;
  const inventory = new Inventory(redis, { prefix: `${tag}inv` });
  await inventory.setStock("hot", UNLIMITED, { perUserLimit: 1_000_000_000 });
  const bucket = new TokenBucket(redis, {
    capacity: 1_000_000_000,
    refillPerSecond: 1000,
    prefix: `${tag}tb`,
  });
  const registry = new Registry();
  let metrics: Awaited<ReturnType<typeof prometheusMetrics>> | undefined;
  const off = async () => {
    metrics?.close();
    metrics = undefined;
  };
  const on = async () => {
    if (metrics === undefined) metrics = await prometheusMetrics({ registry });
  };
  // Each candidate's round turns the adapter on or off first (setup runs before the warm-up only, so the
  // function itself switches: a no-op when already in the right state).
  const concurrency = 64;
  const reserve = (i: number) => inventory.reserve("hot", { userId: `u${i % 10_000}` });
  const take = (i: number) => bucket.take(`k${i % 10_000}`);
  let state: "on" | "off" = "off";
  const switched = (want: "on" | "off", fn: (i: number) => Promise<unknown>) => async (i: number) => {
    if (state !== want) {
      state = want;
      await (want === "on" ? on() : off());
    }
    return fn(i);
  };
  // A few percent is the figure, so the rounds are short and many (3x the rounds, a third of the length each):
  // the two candidates alternate more often and a burst of other load on a shared machine lands in fewer pairs.
  const fine: BenchContext = {
    ...ctx,
    rounds: ctx.rounds * 3,
    roundMs: Math.max(100, Math.round(ctx.roundMs / 3)),
  };
  const rows: Measurement[][] = [];
  try {
    rows.push(
      await compare(fine, [
        { name: "Inventory.reserve, no subscriber", concurrency, fn: switched("off", reserve) },
        { name: "Inventory.reserve, prometheusMetrics on", concurrency, fn: switched("on", reserve) },
      ]),
    );
    rows.push(
      await compare(fine, [
        { name: "TokenBucket.take, no subscriber", concurrency, fn: switched("off", take) },
        { name: "TokenBucket.take, prometheusMetrics on", concurrency, fn: switched("on", take) },
      ]),
    );
  } finally {
    await off();
    await inventory.close();
    await cleanup(redis, `*${tag}*`);
    redis.disconnect();
  }
  const guardNs = guardCostNs();
  const lines: string[] = [];
  for (const r of rows) {
    const [base, adapter] = r as [Measurement, Measurement];
    const paired = adapter.rounds.map((v, i) => v / base.rounds[i]!).sort((a, b) => a - b);
    const withAdapter = 1 - paired[Math.floor(paired.length / 2)]!;
    const callNs = 1e9 / base.opsPerSec;
    const noSub = guardNs / callNs;
    const op = base.name.split(",")[0]!;
    lines.push(
      `- ${op}: no subscriber **${(noSub * 100).toFixed(2)}%** (the check costs ${guardNs.toFixed(1)} ns of a ` +
        `${Math.round(callNs).toLocaleString("en-US")} ns call; goal ≤ 2%); prometheusMetrics on ` +
        `**${(withAdapter * 100).toFixed(1)}%** slower (paired rounds, median; goal ≤ 10%).`,
    );
  }
  return {
    title: "Diagnostics channels and the metrics adapter",
    body: [
      `Concurrency ${concurrency}, 10,000 users or keys, never refused, ${fine.rounds} alternating rounds of ${fine.roundMs} ms.`,
      "The no-subscriber cost is the `hasSubscribers` check in front of each call, timed alone over 2M calls and",
      "divided by the call's time (1 / throughput); the adapter's cost is the paired throughput ratio of the same",
      "call with it on.",
      "",
      ...lines,
      "",
      table(rows[0]!, rows[0]![0]!.name),
      "",
      table(rows[1]!, rows[1]![0]!.name),
    ].join("\n"),
  };
}
