// Invariant 3 (a retried call returns the first outcome) with in-process answers on and no subscriber (the
// default configuration): a reservation made in another process after a restock there, retried in a
// process that learned "sold out" / "not started" a moment earlier, still gets its replay: without a
// subscriber nothing tells this process of the restock, so a caller's id always goes to Redis.
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { Inventory } from "../../src/stock/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let admin: Redis;
beforeAll(async () => {
  srv = await startRedis();
  admin = srv.client();
});
afterAll(async () => srv?.stop());

async function scriptCalls(): Promise<number> {
  const info = await admin.info("commandstats");
  let n = 0;
  for (const m of info.matchAll(/cmdstat_(evalsha|eval):calls=(\d+)/g)) n += Number(m[2]);
  return n;
}

/** Probes `inv` with id-less calls until one is answered with no script call (the flag is up). */
async function untilLocal(inv: Inventory, sku: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    const before = await scriptCalls();
    await inv.reserve(sku, { userId: `probe${i}` });
    if ((await scriptCalls()) === before) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error("never answered in process");
}

it("a reservation made in B after B restocked is replayed at A, not refused SOLD_OUT in process", async () => {
  const prefix = randomPrefix();
  // Two processes without a subscriber (the README's default). The same happens with the default
  // localCacheMs (1000 ms) whenever the retry comes within a second; 30 s keeps the test deterministic.
  const a = new Inventory(srv.client(), { prefix, localCacheMs: 30_000 });
  const b = new Inventory(srv.client(), { prefix });
  await b.setStock("s", 1);
  expect((await b.reserve("s", { userId: "u1", reservationId: "r1" })).ok).toBe(true);
  await untilLocal(a, "s"); // A knows: sold out, and every id
  await b.setStock("s", 2); // one more unit, in B
  const r2 = await b.reserve("s", { userId: "u2", reservationId: "r2" });
  expect(r2).toEqual({ ok: true, reservationId: "r2", remaining: 0 });
  // The client's retry of r2 lands on A (a load balancer):
  expect(await a.reserve("s", { userId: "u2", reservationId: "r2" })).toEqual(r2);
  await Promise.all([a.close(), b.close()]);
});

it("a reservation made in B after B opened the sale is replayed at A, not refused NOT_STARTED in process", async () => {
  const prefix = randomPrefix();
  const a = new Inventory(srv.client(), { prefix, localCacheMs: 30_000 });
  const b = new Inventory(srv.client(), { prefix });
  const [s] = await admin.time();
  const now = Number(s) * 1000;
  await b.setStock("s", 5, { startsAt: now + 3_600_000 });
  await untilLocal(a, "s"); // A knows: not started, and the (empty) set of ids
  await b.setStock("s", 5, { startsAt: now - 3_600_000 }); // B opens the sale now
  const r1 = await b.reserve("s", { userId: "u1", reservationId: "r1" });
  expect(r1).toEqual({ ok: true, reservationId: "r1", remaining: 4 });
  expect(await a.reserve("s", { userId: "u1", reservationId: "r1" })).toEqual(r1);
  await Promise.all([a.close(), b.close()]);
});
