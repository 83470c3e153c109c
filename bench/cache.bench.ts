// Bloom filter checks side by side: bloom-filters' own has(), the in-process mirror, RedisBloomFilter's
// script, and bare Lua scripts of GETBITs over the same positions; then ReadThroughCache.get on the hit
// path (plain, guarded, stale-while-revalidate, and from the in-process L1 tier) next to a plain ioredis GET
// of the same keys.
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import bloomFilters from "bloom-filters";
import { ReadThroughCache, RedisBloomFilter, PenetrationGuard } from "../src/cache/index.js";
import { pushPositions } from "../src/cache/hash.js";
import { compare, ratio, table, type BenchContext, type BenchSection } from "./lib.js";

// The scripts one would write by hand for a bitmap in one key, positions computed by the client.
const ALL_GETBITS = `local r = 1
for i = 1, #ARGV do
  if redis.call('GETBIT', KEYS[1], ARGV[i]) == 0 then r = 0 end
end
return r`;
const EARLY_EXIT = `for i = 1, #ARGV do
  if redis.call('GETBIT', KEYS[1], ARGV[i]) == 0 then return 0 end
end
return 1`;

async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== "0");
}

// bloom-filters is CommonJS with exports node cannot name statically: take them off the default export.
const { BloomFilter } = bloomFilters;

const secs = (t0: number) => ((performance.now() - t0) / 1000).toFixed(1);

export default async function cacheBench(ctx: BenchContext): Promise<BenchSection> {
  const redis = new Redis(ctx.redisUrl);
  const prefix = `bench${randomBytes(4).toString("hex")}`;
  const capacity = 1_000_000;
  const errorRate = 0.01;
  const concurrency = 64;
  const members = Array.from({ length: capacity }, (_, i) => `sku-${i}`);
  // Half the checks are members, half are not: a guard sees both.
  const probe = (i: number) => (i % 2 === 0 ? members[(i >>> 1) % capacity]! : `unknown-${i % 2_000_000}`);

  let t0 = performance.now();
  const library = BloomFilter.create(capacity, errorRate);
  for (const m of members) library.add(m);
  const libraryFill = secs(t0);

  const filter = new RedisBloomFilter(redis, "bench", { capacity, errorRate, prefix });
  t0 = performance.now();
  await filter.addMany(members);
  const redisFill = secs(t0);
  const mirror = new RedisBloomFilter(redis, "bench", { capacity, errorRate, prefix, mirror: true });
  t0 = performance.now();
  await mirror.refresh();
  const mirrorLoad = secs(t0);

  const segment = filter.keys().segments[0]!;
  const allSha = (await redis.script("LOAD", ALL_GETBITS)) as string;
  const earlySha = (await redis.script("LOAD", EARLY_EXIT)) as string;
  const bare = (sha: string) => (i: number) => {
    const positions: number[] = [];
    pushPositions(probe(i), filter.bits, filter.hashes, positions);
    return redis.evalsha(sha, 1, segment, ...positions);
  };

  const bloomRows = await compare(ctx, [
    { name: "bloom-filters has()", concurrency: 1, fn: async (i) => library.has(probe(i)) },
    {
      name: "mirror: mightContainLocal()",
      concurrency: 1,
      fn: async (i) => mirror.mightContainLocal(probe(i)),
    },
    { name: "mirror: mightContain()", concurrency: 1, fn: (i) => mirror.mightContain(probe(i)) },
    { name: "bare Lua, k GETBITs", concurrency, fn: bare(allSha) },
    { name: "bare Lua, GETBITs to the first 0", concurrency, fn: bare(earlySha) },
    { name: "RedisBloomFilter.mightContain", concurrency, fn: (i) => filter.mightContain(probe(i)) },
  ]);
  mirror.close();

  // The hit path: 1,000 products prewarmed, read in rotation.
  const products = Array.from({ length: 1000 }, (_, i) => ({
    id: `sku-${i}`,
    title: `Limited edition item number ${i}`,
    priceCents: 19_900 + i,
    stock: 100,
    startsAt: "2026-12-01T10:00:00Z",
    images: [`https://cdn.example.com/p/${i}/1.jpg`, `https://cdn.example.com/p/${i}/2.jpg`],
  }));
  type Product = (typeof products)[number];
  const load = async (): Promise<Product | undefined> => {
    throw new Error("the hit path must not load");
  };
  const plainCache = new ReadThroughCache<Product>({ redis, prefix, name: "plain", ttlMs: 3_600_000, load });
  const guarded = new ReadThroughCache<Product>({
    redis,
    prefix,
    name: "guarded",
    ttlMs: 3_600_000,
    load,
    guard: new PenetrationGuard({ filter: mirror, redis, prefix }),
  });
  const swr = new ReadThroughCache<Product>({
    redis,
    prefix,
    name: "swr",
    ttlMs: 3_600_000,
    staleWhileRevalidateMs: 60_000,
    load,
  });
  const subscriber = redis.duplicate();
  const hot = new ReadThroughCache<Product>({
    redis,
    prefix,
    name: "hot",
    ttlMs: 3_600_000,
    load,
    l1: { subscriber, maxEntries: 1000, maxStaleMs: 1000 },
  });
  await hot.ready();
  for (const c of [plainCache, guarded, swr, hot]) await c.prewarm(products.map((p) => [p.id, p] as const));
  await mirror.refresh();
  const id = (i: number) => `sku-${i % 1000}`;
  const entryKeys = products.map((p) => plainCache.keys(p.id).entry);
  const hitRows = await compare(ctx, [
    { name: "plain ioredis GET", concurrency, fn: (i) => redis.get(entryKeys[i % 1000]!) },
    { name: "ReadThroughCache.get (hit)", concurrency, fn: (i) => plainCache.get(id(i)) },
    { name: "… with a guard (mirrored filter)", concurrency, fn: (i) => guarded.get(id(i)) },
    { name: "… with stale-while-revalidate", concurrency, fn: (i) => swr.get(id(i)) },
    { name: "… with L1 (in process)", concurrency, fn: (i) => hot.get(id(i)) },
  ]);
  await hot.close();
  subscriber.disconnect();
  mirror.close();

  await deleteKeys(redis, `*${prefix}*`);
  await redis.quit();

  const vsLibrary = ratio(bloomRows, "mirror: mightContainLocal()", "bloom-filters has()");
  const vsLibraryAsync = ratio(bloomRows, "mirror: mightContain()", "bloom-filters has()");
  const vsBare = ratio(bloomRows, "RedisBloomFilter.mightContain", "bare Lua, k GETBITs");
  const vsEarly = ratio(bloomRows, "RedisBloomFilter.mightContain", "bare Lua, GETBITs to the first 0");
  const hit = ratio(hitRows, "ReadThroughCache.get (hit)", "plain ioredis GET");
  const hitGuarded = ratio(hitRows, "… with a guard (mirrored filter)", "plain ioredis GET");
  const swrHit = ratio(hitRows, "… with stale-while-revalidate", "ReadThroughCache.get (hit)");
  const l1Hit = ratio(hitRows, "… with L1 (in process)", "plain ioredis GET");
  return {
    title: "cache: Bloom filter checks and the read-through hit path",
    body: `A filter sized for ${capacity.toLocaleString("en-US")} items at ${errorRate * 100}% (m = ${filter.bits.toLocaleString("en-US")}
bits, k = ${filter.hashes}) and filled with as many; checks alternate members and non-members. In-process
candidates run one caller (there is nothing to wait for); Redis candidates ${concurrency} callers on one ioredis
connection. The bare scripts get the same client-computed positions as \`RedisBloomFilter\`; \`mightContain\`'s
script stops at the first clear bit, and the checks that arrive in one tick share one script call (the bare
scripts run one call per check, as a hand-written client would). Fill times: bloom-filters \`add\` ${libraryFill} s, \`RedisBloomFilter.addMany\`
${redisFill} s, mirror load ${mirrorLoad} s.

${table(bloomRows, "bloom-filters has()")}

Goals: the mirror at least 10x \`bloom-filters\` \`has()\`, measured **${vsLibrary.toFixed(1)}x**
(**${vsLibraryAsync.toFixed(1)}x** through the async \`mightContain()\`); the Redis check at least 1.0x the bare
script of k GETBITs, measured **${vsBare.toFixed(2)}x** (**${vsEarly.toFixed(2)}x** against a bare script that
also stops at the first clear bit).

The hit path: 1,000 prewarmed products (about 200 bytes of JSON each) read in rotation, ${concurrency} callers on one
connection; the plain GET reads the same keys and skips the JSON parse. \`ReadThroughCache\` sends the hits of
one tick as one MGET (per slot on a Cluster).

${table(hitRows, "plain ioredis GET")}

Goals: \`ReadThroughCache.get\` on a hit at least 0.8x a plain GET. Measured: **${hit.toFixed(2)}x**
(**${hitGuarded.toFixed(2)}x** with a guard whose filter is mirrored, so the guard costs no round trip). A
stale-while-revalidate hit at least 0.9x a plain \`ReadThroughCache\` hit (the entry carries its Redis stale
time, so the hit is the same batched MGET): **${swrHit.toFixed(2)}x**. An L1 hit (\`l1: { maxEntries: 1000,
maxStaleMs: 1000 }\`, so each id is read from Redis again once a second) at least 10x a plain GET:
**${l1Hit.toFixed(1)}x**.`,
  };
}
