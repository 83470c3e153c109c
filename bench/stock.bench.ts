// Inventory.reserve next to a raw EVALSHA of a plain Lua check-and-decrement script, and PostgresInventory.reserve
// next to a bare `UPDATE … WHERE stock >= 1`, each pair at the same concurrency, never sold out; and, in the
// same run, Inventory.reserve after sell-out: a new reservationId answered in process, a retry from Redis.
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import pg from "pg";
import { Inventory, MAX_QUANTITY, PostgresInventory } from "../src/stock/index.js";
import { compare, ratio, table, type BenchContext, type BenchSection } from "./lib.js";
import { clusterSection } from "./stock-cluster.js";

// A plain Lua check-and-decrement of one counter, the usual textbook flash-sale script.
const SEED_LUA = `if (redis.call('exists', KEYS[1]) == 1) then
  local stock = tonumber(redis.call('get', KEYS[1]));
  if (stock == -1) then return 1; end;
  if (stock > 0) then
    redis.call('incrby', KEYS[1], -1);
    return stock;
  end;
  return 0;
end;
return -1;`;

/**
 * Waits (with a deadline) until `inv` answers new ids for "gone" in process: it reads the SKU's ids once after
 * the first SOLD_OUT. 1,000 calls in under 20 ms cannot be 1,000 round trips.
 */
async function inSoldOutMode(inv: Inventory): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (let k = 0; ; k++) {
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++)
      await inv.reserve("gone", { userId: "probe", reservationId: `probe-${k}-${i}` });
    if (performance.now() - t0 < 20) return;
    if (Date.now() > deadline) throw new Error("the sold-out SKU is never answered in process");
  }
}

export default async function stockBench(ctx: BenchContext): Promise<BenchSection> {
  const redis = new Redis(ctx.redisUrl);
  const prefix = `bench${randomBytes(4).toString("hex")}`;
  const inventory = new Inventory(redis, { prefix });
  const unbatched = new Inventory(redis, { prefix, batch: false });
  // Another process's view of a sold-out SKU: its own connection and subscriber, as in a deployment.
  const buyerConn = new Redis(ctx.redisUrl);
  const subscriber = new Redis(ctx.redisUrl);
  const buyer = new Inventory(buyerConn, { prefix, subscriber });
  await inventory.setStock("gone", 100, { perUserLimit: 1 });
  for (let i = 0; i < 100; i++)
    await inventory.reserve("gone", { userId: `w${i}`, reservationId: `won-${i}` });
  await inSoldOutMode(buyer);
  const seedKey = `{${prefix}:seed}:stock`;
  const sha = (await redis.script("LOAD", SEED_LUA)) as string;
  const concurrency = 64;

  const redisRows = await compare(ctx, [
    {
      name: "plain Lua decrement, EVALSHA",
      concurrency,
      setup: async () => void (await redis.set(seedKey, 1_000_000_000)),
      fn: () => redis.evalsha(sha, 1, seedKey),
    },
    {
      name: "Inventory.reserve",
      concurrency,
      setup: () => inventory.setStock("sku", MAX_QUANTITY, { perUserLimit: MAX_QUANTITY, holdMs: 900_000 }),
      fn: (i) => inventory.reserve("sku", { userId: `u${i % 50_000}`, reservationId: `r${i}` }),
    },
    {
      // What the harness itself costs per call: the ceiling any in-process row can reach on this machine.
      name: "harness floor (a resolved promise)",
      concurrency,
      fn: () => Promise.resolve(),
    },
    {
      name: "sold out, new reservationId (in process)",
      concurrency,
      fn: (i) => buyer.reserve("gone", { userId: `u${i % 50_000}`, reservationId: `new-${i}` }),
    },
    {
      name: "sold out, retry of a won reservation (Redis)",
      concurrency,
      fn: (i) => buyer.reserve("gone", { userId: `w${i % 100}`, reservationId: `won-${i % 100}` }),
    },
    {
      name: "Inventory.reserve, batch: false",
      concurrency,
      setup: () => unbatched.setStock("sku2", MAX_QUANTITY, { perUserLimit: MAX_QUANTITY, holdMs: 900_000 }),
      fn: (i) => unbatched.reserve("sku2", { userId: `u${i % 50_000}`, reservationId: `r${i}` }),
    },
  ]);
  await buyer.close();
  buyerConn.disconnect();
  subscriber.disconnect();
  for (const sku of ["sku", "sku2", "gone"]) {
    const k = inventory.keys(sku);
    await redis.del(k.stock, k.holds, k.events);
  }
  await redis.del(seedKey);
  await redis.quit();

  // PostgreSQL: a private database, a bare hot-row UPDATE next to PostgresInventory.reserve, 64 callers each
  // on one 16-connection pool (the bare row measured no faster with 64 connections: its updates queue on the
  // row's lock, one commit at a time, however many connections wait).
  const dbName = `fsk_bench_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: ctx.databaseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const url = new URL(ctx.databaseUrl);
  url.pathname = `/${dbName}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 16 });
  pool.on("error", () => {}); // the DROP … WITH (FORCE) below ends idle connections
  const stock = new PostgresInventory(pool);
  const oneByOne = new PostgresInventory(pool, { batch: false });
  await stock.migrate();
  await pool.query("CREATE TABLE product (id int PRIMARY KEY, stock int NOT NULL)");
  await pool.query("INSERT INTO product VALUES (1, 1000000000)");
  await stock.setStock("sku", MAX_QUANTITY, { perUserLimit: MAX_QUANTITY });
  await stock.setStock("sku2", MAX_QUANTITY, { perUserLimit: MAX_QUANTITY });
  const sqlRows = await compare(ctx, [
    {
      name: "bare UPDATE … WHERE stock >= 1",
      concurrency,
      fn: () => pool.query("UPDATE product SET stock = stock - 1 WHERE id = 1 AND stock >= 1"),
    },
    {
      name: "PostgresInventory.reserve",
      concurrency,
      fn: (i) => stock.reserve("sku", { userId: `u${i % 50_000}`, reservationId: `r${i}` }),
    },
    {
      name: "PostgresInventory.reserve, batch: false",
      concurrency,
      fn: (i) => oneByOne.reserve("sku2", { userId: `u${i % 50_000}`, reservationId: `r${i}` }),
    },
  ]);
  await pool.end();
  await admin.query(`DROP DATABASE ${dbName} WITH (FORCE)`);
  await admin.end();

  const r = ratio(redisRows, "Inventory.reserve", "plain Lua decrement, EVALSHA");
  const soldOut = redisRows.find((x) => x.name === "sold out, new reservationId (in process)")!.opsPerSec;
  const floor = ratio(
    redisRows,
    "sold out, new reservationId (in process)",
    "harness floor (a resolved promise)",
  );
  const s = ratio(sqlRows, "PostgresInventory.reserve", "bare UPDATE … WHERE stock >= 1");
  const cluster = await clusterSection(ctx); // one hot SKU in 1 and in 3 buckets on a local 3-master cluster
  return {
    title: "stock: Inventory.reserve (on sale and sold out) and PostgresInventory.reserve",
    body: `Both through one ioredis connection (Redis) or a 16-connection \`pg.Pool\` (PostgreSQL), stock never
runs out. \`Inventory.reserve\` does the window check, idempotency lookup, per-user limit, check-and-decrement,
reservation record, hold index and a stream event in its one script; the plain script only checks and decrements one counter.
Calls for one SKU that arrive in the same tick share one script call (\`batch\`, on by default; each is still
applied atomically, in order, with its own result); the \`batch: false\` row sends one script call each.

${table(redisRows, "plain Lua decrement, EVALSHA")}

Goal: at least 0.8x the raw script. Measured: **${r.toFixed(2)}x**.

After sell-out, \`reserve\` with a new \`reservationId\` is answered \`SOLD_OUT\` in process, with no Redis command,
from a second Inventory (its own connection and subscriber) that read the SKU's 100 reservation ids once; a
retry of one of those reservations still goes to Redis for its replay. Goal for the in-process row: at least
1,000,000/s. Measured: **${Math.round(soldOut).toLocaleString("en-US")}/s**, ${floor.toFixed(2)}x the harness floor row
(the harness's own per-call cost, two clock reads and a latency sample, is in every row).

${table(sqlRows, "bare UPDATE … WHERE stock >= 1")}

The bare row is the seed's \`UPDATE product SET stock = stock - 1 WHERE id = 1 AND stock >= 1\`, one autocommit
statement per call: every call takes the hot row's lock and holds it through its own commit, so the row moves
one commit at a time. \`PostgresInventory.reserve\` does more per reservation (idempotency look-up, window,
per-user row, reservation row, the same conditional decrement), but calls for one SKU made in the same tick
share one statement (group commit, up to 64 a statement; each still decided on its own, in order, with its own
result), so one lock and one commit serve them all; the \`batch: false\` row sends one statement per call.
Goal: at least 3x the bare UPDATE at 64 concurrent callers. Measured: **${s.toFixed(2)}x**.

${cluster}`,
  };
}
