// TokenBucket.take next to rate-limiter-flexible's RateLimiterRedis.consume (concurrency 64 and 1,024, over
// 10,000 keys and over one hot key), RateLimits.check of three limits next to three separate consumes, and
// refusals of exhausted keys: in process (and rate-limiter-flexible's in-memory block) next to a Redis take.
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { RateLimiterRedis } from "rate-limiter-flexible";
import { RateLimits, TokenBucket } from "../src/ratelimit/index.js";
import {
  compare,
  ratio,
  table,
  type BenchContext,
  type BenchSection,
  type Measurement,
  cleanup,
} from "./lib.js";

// Nothing is ever refused: both sides measure the path every admitted request takes.
const CAPACITY = 1_000_000_000;
const RATE = 1_000;

export default async function ratelimitBench(ctx: BenchContext): Promise<BenchSection> {
  const redis = new Redis(ctx.redisUrl);
  const tag = `bench${randomBytes(4).toString("hex")}`;
  const bucket = new TokenBucket(redis, { capacity: CAPACITY, refillPerSecond: RATE, prefix: `${tag}tb` });
  const unbatched = new TokenBucket(redis, {
    capacity: CAPACITY,
    refillPerSecond: RATE,
    prefix: `${tag}ub`,
    batch: false,
  });
  const rlf = new RateLimiterRedis({
    storeClient: redis,
    points: CAPACITY,
    duration: 3600,
    keyPrefix: `${tag}rlf`,
  });

  const takeRows: Measurement[][] = [];
  const summary: string[] = [];
  for (const [label, keyOf] of [
    ["10,000 keys", (i: number) => `k${i % 10_000}`],
    ["one hot key", () => "hot"],
  ] as const) {
    for (const concurrency of [64, 1024]) {
      const rows = await compare(ctx, [
        { name: "rate-limiter-flexible consume", concurrency, fn: (i) => rlf.consume(keyOf(i)) },
        { name: "TokenBucket.take", concurrency, fn: (i) => bucket.take(keyOf(i)) },
        { name: "TokenBucket.take (batch: false)", concurrency, fn: (i) => unbatched.take(keyOf(i)) },
      ]);
      takeRows.push(rows);
      const r = ratio(rows, "TokenBucket.take", "rate-limiter-flexible consume");
      summary.push(`${label}, concurrency ${concurrency}: **${r.toFixed(2)}x**`);
    }
  }

  // Three limits (user, IP, API) per request: one RateLimits.check against three consumes (in parallel,
  // as RateLimiterUnion does them).
  const mk = (p: string) =>
    new TokenBucket(redis, { capacity: CAPACITY, refillPerSecond: RATE, prefix: `${tag}${p}` });
  const limits = new RateLimits<number>([
    { name: "user", bucket: mk("u"), key: (i) => `u${i % 10_000}` },
    { name: "ip", bucket: mk("i"), key: (i) => `10.0.${(i >> 8) & 15}.${i & 255}` },
    { name: "api", bucket: mk("a"), key: () => "buy" },
  ]);
  const rl = (p: string) =>
    new RateLimiterRedis({ storeClient: redis, points: CAPACITY, duration: 3600, keyPrefix: `${tag}r${p}` });
  const [ru, ri, ra] = [rl("u"), rl("i"), rl("a")];
  const checkRows = await compare(ctx, [
    {
      name: "3 × rate-limiter-flexible consume",
      concurrency: 64,
      fn: (i) =>
        Promise.all([
          ru.consume(`u${i % 10_000}`),
          ri.consume(`10.0.${(i >> 8) & 15}.${i & 255}`),
          ra.consume("buy"),
        ]),
    },
    { name: "RateLimits.check (3 limits)", concurrency: 64, fn: (i) => limits.check(i) },
  ]);
  const c = ratio(checkRows, "RateLimits.check (3 limits)", "3 × rate-limiter-flexible consume");

  // Refusals: 1,000 clients (keys) whose buckets are empty keep knocking. Each candidate drains its own keys
  // first; the admitted take is the baseline (what every request would cost without in-process answers).
  const BOTS = 1_000;
  const bot = (i: number) => `bot${i % BOTS}`;
  const empty = (p: string, localRefusals: boolean) =>
    new TokenBucket(redis, { capacity: 1, refillPerSecond: 0.0001, prefix: `${tag}${p}`, localRefusals });
  const inProcess = empty("rl", true);
  const viaRedis = empty("rr", false);
  const rlfRefused = new RateLimiterRedis({
    storeClient: redis,
    points: 1,
    duration: 3600,
    keyPrefix: `${tag}fr`,
  });
  const rlfBlocked = new RateLimiterRedis({
    storeClient: redis,
    points: 1,
    duration: 3600,
    keyPrefix: `${tag}fb`,
    inMemoryBlockOnConsumed: 2,
    inMemoryBlockDuration: 3600,
  });
  const refused = (p: Promise<unknown>) =>
    p.then(
      () => {
        throw new Error("admitted: the bench expects a refusal");
      },
      (e: unknown) => {
        if (e instanceof Error) throw e; // a Redis error, not a refusal (RateLimiterRes)
      },
    );
  const mustRefuse = async (p: Promise<{ ok: boolean }>) => {
    if ((await p).ok) throw new Error("admitted: the bench expects a refusal");
  };
  for (let i = 0; i < BOTS; i++) {
    await Promise.all([
      inProcess.take(bot(i)),
      viaRedis.take(bot(i)),
      rlfRefused.consume(bot(i)),
      rlfBlocked.consume(bot(i)),
    ]);
  }
  // rate-limiter-flexible blocks in memory once a key has consumed inMemoryBlockOnConsumed points.
  for (let i = 0; i < BOTS; i++) await rlfBlocked.consume(bot(i)).catch(() => undefined);
  const refusalRows = await compare(ctx, [
    { name: "TokenBucket.take, admitted (Redis)", concurrency: 64, fn: (i) => bucket.take(`k${i % 10_000}`) },
    {
      name: "TokenBucket.take, refused by Redis",
      concurrency: 64,
      fn: (i) => mustRefuse(viaRedis.take(bot(i))),
    },
    {
      name: "TokenBucket.take, refused in process",
      concurrency: 64,
      fn: (i) => mustRefuse(inProcess.take(bot(i))),
    },
    {
      name: "rate-limiter-flexible consume, refused (Redis)",
      concurrency: 64,
      fn: (i) => refused(rlfRefused.consume(bot(i))),
    },
    {
      name: "rate-limiter-flexible consume, refused (inMemoryBlockOnConsumed)",
      concurrency: 64,
      fn: (i) => refused(rlfBlocked.consume(bot(i))),
    },
  ]);
  const local = ratio(
    refusalRows,
    "TokenBucket.take, refused in process",
    "TokenBucket.take, admitted (Redis)",
  );
  const localVsRedisRefusal = ratio(
    refusalRows,
    "TokenBucket.take, refused in process",
    "TokenBucket.take, refused by Redis",
  );
  const localVsRlf = ratio(
    refusalRows,
    "TokenBucket.take, refused in process",
    "rate-limiter-flexible consume, refused (inMemoryBlockOnConsumed)",
  );

  await cleanup(redis, `${tag}*`);
  await cleanup(redis, `{${tag}*`);
  await redis.quit();

  const labels = [
    "10,000 keys, concurrency 64",
    "10,000 keys, concurrency 1,024",
    "one hot key, concurrency 64",
    "one hot key, concurrency 1,024",
  ];
  return {
    title: "ratelimit: TokenBucket.take, RateLimits.check and refusals in process",
    body: `One ioredis connection shared by every candidate, buckets large enough that nothing is refused (the
path every admitted request takes). \`rate-limiter-flexible\` \`RateLimiterRedis.consume\` runs its
fixed-window counter script; \`TokenBucket.take\` runs a token bucket on Redis \`TIME\` that writes nothing
when it refuses. By default \`take\` coalesces the calls made in one tick into one script call (each keeps its
own outcome, as if run alone in order); \`batch: false\` sends one script call per take, for comparison.

${takeRows.map((rows, i) => `**${labels[i]}**\n\n${table(rows, "rate-limiter-flexible consume")}`).join("\n\n")}

Goal: \`take\` at least 1.3x \`consume\`. Measured: ${summary.join("; ")}.

**Three limits per request (user, IP, API), concurrency 64**

${table(checkRows, "3 × rate-limiter-flexible consume")}

\`RateLimits.check\` decides all three in one script and takes nothing when one refuses; the three consumes
(in parallel, as \`RateLimiterUnion\` runs them) cost three round trips and keep what they took when another
refuses. Goal: at least 2.5x. Measured: **${c.toFixed(2)}x**.

**Refusals of exhausted keys (1,000 clients knocking on empty buckets), concurrency 64**

${table(refusalRows, "TokenBucket.take, admitted (Redis)")}

A reply that shows a bucket short of tokens lets the process refuse that key itself until the bucket may
have refilled (\`localRefusals\`, on by default): no Redis command, and never an admission Redis would
refuse. \`rate-limiter-flexible\`'s \`inMemoryBlockOnConsumed\` is its nearest equivalent (a block held in
process once a key has consumed that many points). Goal: in-process refusals at least 20x a Redis \`take\`.
Measured: **${local.toFixed(1)}x** an admitted take, ${localVsRedisRefusal.toFixed(1)}x a refusal by Redis,
${localVsRlf.toFixed(2)}x rate-limiter-flexible's in-memory block.`,
  };
}
