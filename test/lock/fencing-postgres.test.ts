// The stale-owner story end to end: a holder pauses past its TTL, another process takes the lock, and the
// fence makes the stale holder's late write change nothing in PostgreSQL.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { SpinLock } from "../../src/lock/index.js";
import { startPostgres, type PrivateDatabase } from "../support/postgres.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
let db: PrivateDatabase;
beforeAll(async () => {
  [srv, db] = await Promise.all([startRedis(), startPostgres(4)]);
  redis = srv.client();
  await db.pool.query(
    "CREATE TABLE account (id int PRIMARY KEY, balance int NOT NULL, last_fence bigint NOT NULL DEFAULT 0)",
  );
});
afterAll(async () => {
  await srv?.stop();
  await db?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The fenced write from the README: applies only with a fence above every fence seen before. */
async function fencedSet(id: number, balance: number, fence: number): Promise<number> {
  const r = await db.pool.query(
    "UPDATE account SET balance = $2, last_fence = $3 WHERE id = $1 AND last_fence < $3",
    [id, balance, fence],
  );
  return r.rowCount ?? 0;
}

describe("fencing against a stale owner (PostgreSQL)", () => {
  it("a holder that stops extending past its TTL can neither release nor extend, and its write changes no row", async () => {
    await db.pool.query("INSERT INTO account (id, balance) VALUES (1, 100)");
    const prefix = randomPrefix();
    const processA = new SpinLock(srv.client(), { prefix, ttlMs: 200 });
    const processB = new SpinLock(srv.client(), { prefix, ttlMs: 10_000 });

    const a = await processA.acquire("account:1");
    const { rows } = await db.pool.query("SELECT balance FROM account WHERE id = 1");
    const read = rows[0].balance as number; // A reads 100, then pauses (GC, swap…) past its TTL
    await sleep(300);

    const b = await processB.acquire("account:1"); // the lock expired: B gets it
    expect(b.fence).toBeGreaterThan(a.fence);
    expect(await fencedSet(1, 100 - 30, b.fence)).toBe(1); // B withdraws 30

    // A wakes up: it cannot touch B's lock...
    expect(await a.extend()).toBe(false);
    expect(await a.release()).toBe(false);
    expect(await redis.get(processB.keys("account:1").lock)).toBe(b.token);
    expect(await redis.pttl(processB.keys("account:1").lock)).toBeGreaterThan(9_000);
    // ...and its late write, computed from the stale read, is refused by the fence
    expect(await fencedSet(1, read - 50, a.fence)).toBe(0);
    expect((await db.pool.query("SELECT balance, last_fence FROM account WHERE id = 1")).rows[0]).toEqual({
      balance: 70,
      last_fence: String(b.fence),
    });
    expect(await b.release()).toBe(true);
  });

  it("fences keep every write in lock order across many holders", async () => {
    await db.pool.query("INSERT INTO account (id, balance) VALUES (2, 0)");
    const prefix = randomPrefix();
    const lock = new SpinLock(redis, { prefix, ttlMs: 5_000 });
    const fences: number[] = [];
    await Promise.all(
      Array.from({ length: 20 }, () =>
        lock.using("account:2", async (_signal, { fence }) => {
          fences.push(fence);
          const { rows } = await db.pool.query("SELECT balance FROM account WHERE id = 2");
          expect(await fencedSet(2, (rows[0].balance as number) + 1, fence)).toBe(1);
        }),
      ),
    );
    expect(fences).toEqual([...fences].sort((x, y) => x - y));
    expect(new Set(fences).size).toBe(20);
    expect((await db.pool.query("SELECT balance FROM account WHERE id = 2")).rows[0].balance).toBe(20);
  });
});
