// Inventory.reserve next to a raw EVALSHA of a plain Lua check-and-decrement script, and PostgresInventory.reserve
// next to a bare `UPDATE … WHERE stock >= 1`, each pair at the same concurrency, never sold out.
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import pg from "pg";
import { Inventory, MAX_QUANTITY, PostgresInventory } from "../src/stock/index.js";
import { compare, ratio, table, type BenchContext, type BenchSection } from "./lib.js";

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

export default async function stockBench(ctx: BenchContext): Promise<BenchSection> {
  const redis = new Redis(ctx.redisUrl);
  const prefix = `bench${randomBytes(4).toString("hex")}`;
  const inventory = new Inventory(redis, { prefix });
  const unbatched = new Inventory(redis, { prefix, batch: false });
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
      name: "Inventory.reserve, batch: false",
      concurrency,
      setup: () => unbatched.setStock("sku2", MAX_QUANTITY, { perUserLimit: MAX_QUANTITY, holdMs: 900_000 }),
      fn: (i) => unbatched.reserve("sku2", { userId: `u${i % 50_000}`, reservationId: `r${i}` }),
    },
  ]);
  for (const sku of ["sku", "sku2"]) {
    const k = inventory.keys(sku);
    await redis.del(k.stock, k.holds, k.events);
  }
  await redis.del(seedKey);
  await redis.quit();

  // PostgreSQL: a private database, a bare hot-row UPDATE next to PostgresInventory.reserve.
  const dbName = `fsk_bench_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: ctx.databaseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const url = new URL(ctx.databaseUrl);
  url.pathname = `/${dbName}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 16 });
  pool.on("error", () => {}); // the DROP … WITH (FORCE) below ends idle connections
  const stock = new PostgresInventory(pool);
  await stock.migrate();
  await pool.query("CREATE TABLE product (id int PRIMARY KEY, stock int NOT NULL)");
  await pool.query("INSERT INTO product VALUES (1, 1000000000)");
  await stock.setStock("sku", MAX_QUANTITY, { perUserLimit: MAX_QUANTITY });
  const sqlRows = await compare(ctx, [
    {
      name: "bare UPDATE … WHERE stock >= 1",
      concurrency: 16,
      fn: () => pool.query("UPDATE product SET stock = stock - 1 WHERE id = 1 AND stock >= 1"),
    },
    {
      name: "PostgresInventory.reserve",
      concurrency: 16,
      fn: (i) => stock.reserve("sku", { userId: `u${i % 50_000}`, reservationId: `r${i}` }),
    },
  ]);
  await pool.end();
  await admin.query(`DROP DATABASE ${dbName} WITH (FORCE)`);
  await admin.end();

  const r = ratio(redisRows, "Inventory.reserve", "plain Lua decrement, EVALSHA");
  const s = ratio(sqlRows, "PostgresInventory.reserve", "bare UPDATE … WHERE stock >= 1");
  return {
    title: "stock: Inventory.reserve and PostgresInventory.reserve",
    body: `Both through one ioredis connection (Redis) or a 16-connection \`pg.Pool\` (PostgreSQL), stock never
runs out. \`Inventory.reserve\` does the window check, idempotency lookup, per-user limit, check-and-decrement,
reservation record, hold index and a stream event in its one script; the plain script only checks and decrements one counter.
Calls for one SKU that arrive in the same tick share one script call (\`batch\`, on by default; each is still
applied atomically, in order, with its own result); the \`batch: false\` row sends one script call each.

${table(redisRows, "plain Lua decrement, EVALSHA")}

Goal: at least 0.8x the raw script. Measured: **${r.toFixed(2)}x**.

${table(sqlRows, "bare UPDATE … WHERE stock >= 1")}

\`PostgresInventory.reserve\` runs one PL/pgSQL call (reservation row, per-user row, the same conditional UPDATE)
against the bare hot-row UPDATE: **${s.toFixed(2)}x**.`,
  };
}
