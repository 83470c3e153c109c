// Differential: Inventory (Redis, batched and unbatched, and with in-process answers) and PostgresInventory
// (PostgreSQL), driven by the same
// seeded random operations (setStock with windows and holds, batches of reserves, confirm, release, expire),
// give the same answer to every call and the same snapshot after each one.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { Inventory, PostgresInventory, type StockStore } from "../../src/stock/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";
import { startPostgres, type PrivateDatabase } from "../support/postgres.js";

let srv: PrivateRedis;
let redis: Redis;
let db: PrivateDatabase;
let sql: PostgresInventory;
let subscriber: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
  subscriber = srv.client();
  db = await startPostgres(4);
  sql = new PostgresInventory(db.pool);
  await sql.migrate();
});
afterAll(async () => {
  await srv?.stop();
  await db?.stop();
});

function rng(seed: number) {
  let s = seed >>> 0;
  return (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

type Op =
  | { t: "set"; q: number; limit: number; hold?: number; starts?: number; ends?: number }
  | { t: "reserve"; batch: { user: string; qty: number; rid: string }[] }
  | { t: "confirm"; rid: string }
  | { t: "release"; rid: string }
  | { t: "expire" };

function genOps(seed: number): Op[] {
  const r = rng(seed);
  const ops: Op[] = [{ t: "set", q: [-1, 0, 1, 2, 3, 5, 8][r(7)]!, limit: 1 + r(3) }];
  for (let i = 0; i < 30; i++) {
    const k = r(10);
    if (k === 0) {
      const w = r(6);
      const now = Date.now();
      ops.push({
        t: "set",
        q: [-1, 0, 1, 2, 3, 5, 8][r(7)]!,
        limit: 1 + r(3),
        ...(r(3) === 0 && { hold: 1 }),
        ...(r(3) === 1 && { hold: 3_600_000 }),
        ...(w === 0 && { starts: now + 3_600_000 }),
        ...(w === 1 && { ends: now - 3_600_000 }),
        ...(w === 2 && { starts: now - 3_600_000, ends: now + 3_600_000 }),
      });
    } else if (k <= 5) {
      const n = 1 + r(4);
      const batch = [];
      for (let j = 0; j < n; j++) batch.push({ user: `u${r(3)}`, qty: 1 + r(3), rid: `r${r(8)}` });
      ops.push({ t: "reserve", batch });
    } else if (k <= 7) ops.push({ t: "confirm", rid: `r${r(8)}` });
    else if (k <= 8) ops.push({ t: "release", rid: `r${r(8)}` });
    else ops.push({ t: "expire" });
  }
  return ops;
}

/** Waits until the subscriber listens on the prefix's change channel, and its reply is in. */
async function subscribedTo(prefix: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const [, n] = (await redis.pubsub("NUMSUB", `${prefix}:restock`)) as [string, number];
    if (Number(n) > 0) break;
    if (Date.now() > deadline) throw new Error("never subscribed");
    await new Promise((r) => setTimeout(r, 5));
  }
  await subscriber.ping().catch(() => undefined); // a subscriber answers PING too; it follows SUBSCRIBE's reply
}

/** Script calls so far, less one per HSCAN: a load of ids is one HSCAN (of these small SKUs) and one script. */
async function scriptCalls(): Promise<number> {
  const info = await redis.info("commandstats");
  const calls = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
  return calls("evalsha") + calls("eval") - calls("hscan");
}

async function settle<T>(p: Promise<T>): Promise<unknown> {
  try {
    return await p;
  } catch (e) {
    return { error: (e as { code?: string }).code ?? String(e) };
  }
}

async function run(store: StockStore, sku: string, ops: Op[], concurrent: boolean): Promise<unknown[]> {
  const log: unknown[] = [];
  for (const op of ops) {
    if (op.t === "set")
      log.push(
        await settle(
          store.setStock(sku, op.q, {
            perUserLimit: op.limit,
            ...(op.hold !== undefined && { holdMs: op.hold }),
            ...(op.starts !== undefined && { startsAt: op.starts }),
            ...(op.ends !== undefined && { endsAt: op.ends }),
          }),
        ),
      );
    else if (op.t === "reserve") {
      const call = (b: { user: string; qty: number; rid: string }) =>
        settle(store.reserve(sku, { userId: b.user, quantity: b.qty, reservationId: b.rid }));
      if (concurrent) log.push(await Promise.all(op.batch.map(call)));
      else {
        const out = [];
        for (const b of op.batch) out.push(await call(b));
        log.push(out);
      }
      await new Promise((r) => setTimeout(r, 4)); // holds of 1 ms are all due by the next operation
    } else if (op.t === "confirm") log.push(await settle(store.confirm(sku, op.rid)));
    else if (op.t === "release") log.push(await settle(store.release(sku, op.rid)));
    else log.push(await settle(store.expireHolds(sku)));
    log.push(await store.snapshot(sku));
  }
  return log;
}

describe("Inventory vs PostgresInventory", () => {
  it("same answers for the same random operations (batched Redis, unbatched Redis, SQL)", async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const ops = genOps(seed);
      const sku = `sku-${seed}`;
      const a = await run(new Inventory(redis, { prefix: randomPrefix(), localCacheMs: 0 }), sku, ops, true);
      const b = await run(
        new Inventory(redis, { prefix: randomPrefix(), localCacheMs: 0, batch: false }),
        sku,
        ops,
        false,
      );
      const c = await run(sql, `${randomPrefix()}-${sku}`, ops, false);
      expect(a, `seed ${seed} batched vs unbatched\n${JSON.stringify(ops)}`).toEqual(b);
      expect(b, `seed ${seed} redis vs sql\n${JSON.stringify(ops)}`).toEqual(c);
    }
  }, 240_000); // 120 sequences against Redis and PGlite: minutes on a busy machine

  it("in-process answers (sold out with ids, the window on the Redis clock) change no answer", async () => {
    let redisScripts = 0;
    let localScripts = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const ops = genOps(seed);
      const sku = `sku-${seed}`;
      let mark = await scriptCalls();
      const a = await run(new Inventory(redis, { prefix: randomPrefix(), localCacheMs: 0 }), sku, ops, true);
      redisScripts += (await scriptCalls()) - mark;
      const prefix = randomPrefix();
      const local = new Inventory(srv.client(), { prefix, subscriber, localCacheMs: 60_000 });
      await subscribedTo(prefix);
      mark = await scriptCalls();
      const d = await run(local, sku, ops, true);
      localScripts += (await scriptCalls()) - mark;
      await local.close();
      expect(d, `seed ${seed} in-process answers vs Redis's\n${JSON.stringify(ops)}`).toEqual(a);
    }
    // The same operations cost fewer script calls (so some were answered in process), not counting the
    // reads of ids.
    expect(localScripts).toBeLessThan(redisScripts);
  }, 240_000);
});
