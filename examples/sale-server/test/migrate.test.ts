// Server processes started together (`--processes N`) migrate the same database at once. Two concurrent
// CREATE TABLE IF NOT EXISTS can both miss the table, and one then fails on PostgreSQL's catalog index (seen as
// a server that never started): the catalog's migration runs one at a time.
import { afterAll, beforeAll, expect, it } from "vitest";
import { Redis } from "ioredis";
import pg from "pg";
import { Catalog } from "../src/catalog.js";
import { startRedis } from "../src/infra.js";
import { startPostgres } from "./support.js";

let redis: Awaited<ReturnType<typeof startRedis>>;
let client: Redis;
beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
});
afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});

it("migrates once when six processes start together, every time", async () => {
  for (let round = 0; round < 5; round++) {
    const db = await startPostgres();
    // One pool each, as separate processes would have.
    const pools = Array.from({ length: 6 }, () => new pg.Pool({ connectionString: db.url, max: 2 }));
    // Dropping the database ends what a pool still holds: an idle client's error is expected then.
    for (const p of pools) p.on("error", () => undefined);
    try {
      const results = await Promise.allSettled(pools.map((p) => new Catalog(p, client, "m").migrate()));
      expect(results.filter((r) => r.status === "rejected")).toEqual([]);
      const { rows } = await pools[0]!.query("SELECT count(*)::int AS n FROM products");
      expect(rows).toEqual([{ n: 0 }]);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
      await db.stop();
    }
  }
});
