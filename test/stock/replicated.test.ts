// Replicated acknowledgement (`replicated`) and in-doubt settlement (`settleMs`) against a real master with
// one replica: answers wait for WAIT, a short count is IN_DOUBT and a retry with the same id settles it,
// refusals do not wait, one WAIT per batch at most, and a lost reply is settled by the library itself.
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError, RedisUnavailableError } from "../../src/errors.js";
import { Inventory, type InventoryOptions } from "../../src/stock/index.js";
import { startSentinels, type SentinelSetup } from "../support/sentinel.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let setup: SentinelSetup;
let master: Redis;
let admin: Redis;
beforeAll(async () => {
  // A master and one replica, no Sentinel.
  setup = await startSentinels({ replicas: 1, sentinels: 0 });
  master = setup.direct(setup.nodePorts[0]!);
  admin = setup.direct(setup.nodePorts[0]!);
}, 60_000);
afterAll(async () => {
  await setup?.stop();
});

const inventory = (options: InventoryOptions = {}): Inventory =>
  new Inventory(master, { prefix: randomPrefix("rep"), ...options });

async function waitCalls(): Promise<number> {
  const stats = await admin.info("commandstats");
  return Number(/cmdstat_wait:calls=(\d+)/.exec(stats)?.[1] ?? 0);
}

describe("replicated acknowledgement", () => {
  it("validates the options", () => {
    const bad: unknown[] = [
      { replicated: { replicas: 0, timeoutMs: 100 } },
      { replicated: { replicas: 1, timeoutMs: 0 } },
      { replicated: { replicas: 1 } },
      { replicated: { replicas: 1, timeoutMs: 100, extra: 1 } },
      { replicated: 1 },
      { settleMs: -1 },
      { settleMs: 1.5 },
    ];
    for (const options of bad) {
      expect(() => new Inventory(master, options as InventoryOptions)).toThrow(InvalidArgumentError);
    }
  });

  it("answers reserve, confirm and release once the replica has them, and the replica has them", async () => {
    const inv = inventory({ replicated: { replicas: 1, timeoutMs: 2_000 } });
    await inv.setStock("sku", 3, { perUserLimit: 1 });
    const a = await inv.reserve("sku", { userId: "a", reservationId: "ra" });
    const b = await inv.reserve("sku", { userId: "b", reservationId: "rb" });
    expect(a).toEqual({ ok: true, reservationId: "ra", remaining: 2 });
    expect(await inv.reserve("sku", { userId: "a", reservationId: "ra" })).toEqual(a); // replay
    expect(await inv.reserve("sku", { userId: "a" })).toEqual({ ok: false, reason: "LIMIT_REACHED" });
    expect(await inv.confirm("sku", "ra")).toEqual({ ok: true });
    expect(await inv.release("sku", "rb")).toEqual({ ok: true });
    expect(await inv.confirm("sku", "rb")).toEqual({ ok: false, reason: "RELEASED" });
    expect(await inv.release("sku", "ra")).toEqual({ ok: false, reason: "CONFIRMED" });
    expect(await inv.confirm("sku", "nope")).toEqual({ ok: false, reason: "UNKNOWN_RESERVATION" });
    expect(b.ok).toBe(true);
    // What was acknowledged is on the replica (read there, not on the master).
    const replica = setup.direct(setup.nodePorts[1]!);
    const onReplica = new Inventory(replica, { prefix: (inv as unknown as { prefix: string }).prefix });
    expect((await onReplica.reservation("sku", "ra"))?.state).toBe("confirmed");
    expect((await onReplica.reservation("sku", "rb"))?.state).toBe("released");
    const snap = await onReplica.snapshot("sku");
    expect(snap).toMatchObject({ available: 2, held: 0, confirmed: 1, initial: 3 });
    await master.del(...Object.values(inv.keys("sku")));
    await inv.close();
  });

  it("sends at most one WAIT per batch under a crowd, and every answer is exact", async () => {
    const inv = inventory({ replicated: { replicas: 1, timeoutMs: 2_000 } });
    await inv.setStock("sku", 300, { perUserLimit: 1 });
    const before = await waitCalls();
    const scriptsBefore = Number(
      /cmdstat_evalsha:calls=(\d+)/.exec(await admin.info("commandstats"))?.[1] ?? 0,
    );
    const results = await Promise.all(
      Array.from({ length: 400 }, (_, i) => inv.reserve("sku", { userId: `u${i}`, reservationId: `r${i}` })),
    );
    const waits = (await waitCalls()) - before;
    const scripts =
      Number(/cmdstat_evalsha:calls=(\d+)/.exec(await admin.info("commandstats"))?.[1] ?? 0) - scriptsBefore;
    expect(results.filter((r) => r.ok)).toHaveLength(300);
    expect(results.filter((r) => !r.ok && r.reason === "SOLD_OUT")).toHaveLength(100);
    // 400 calls in batches of at most 32: at least 13 script calls; WAITs only for batches that reserved.
    expect(waits).toBeGreaterThan(0);
    expect(waits).toBeLessThanOrEqual(scripts);
    const snap = (await inv.snapshot("sku"))!;
    expect([snap.available, snap.held]).toEqual([0, 300]);
    await master.del(...Object.values(inv.keys("sku")));
    await inv.close();
  });

  it("answers IN_DOUBT on a short count, refusals at once, and setStock throws", async () => {
    // Two replicas asked of a master with one: every WAIT comes back short.
    const inv = inventory({ replicated: { replicas: 2, timeoutMs: 50 } });
    await expect(inv.setStock("sku", 1)).rejects.toBeInstanceOf(RedisUnavailableError);
    // The stock is set on the master all the same (the error says "repeat the call").
    expect(await inv.reserve("sku", { userId: "a", reservationId: "ra" })).toEqual({
      ok: false,
      reason: "IN_DOUBT",
      reservationId: "ra",
    });
    // Refused: wrote nothing, answered without a WAIT.
    const before = await waitCalls();
    expect(await inv.reserve("sku", { userId: "b", reservationId: "rb" })).toEqual({
      ok: false,
      reason: "SOLD_OUT",
    });
    expect(await waitCalls()).toBe(before);
    // Without an id, the generated one comes back with IN_DOUBT.
    const inv2 = new Inventory(master, {
      prefix: (inv as unknown as { prefix: string }).prefix,
      replicated: { replicas: 2, timeoutMs: 50 },
    });
    await master.hset(inv.keys("sku").stock, "available", 1, "initial", 2);
    const noId = await inv2.reserve("sku", { userId: "c" });
    expect(noId).toMatchObject({ ok: false, reason: "IN_DOUBT" });
    const id = (noId as { reservationId: string }).reservationId;
    expect((await inv.reservation("sku", id))?.userId).toBe("c");
    expect(await inv.confirm("sku", "ra")).toEqual({ ok: false, reason: "IN_DOUBT" });
    expect(await inv.release("sku", id)).toEqual({ ok: false, reason: "IN_DOUBT" });
    // The same calls on an Inventory whose count can be met settle them: replays, nothing twice.
    const settled = new Inventory(master, {
      prefix: (inv as unknown as { prefix: string }).prefix,
      replicated: { replicas: 1, timeoutMs: 2_000 },
    });
    expect(await settled.reserve("sku", { userId: "a", reservationId: "ra" })).toMatchObject({ ok: true });
    expect(await settled.confirm("sku", "ra")).toEqual({ ok: true });
    expect(await settled.release("sku", id)).toEqual({ ok: true });
    const snap = (await settled.snapshot("sku"))!;
    expect(snap).toMatchObject({ initial: 2, available: 1, held: 0, confirmed: 1 });
    await master.del(...Object.values(inv.keys("sku")));
    await Promise.all([inv.close(), inv2.close(), settled.close()]);
  });

  it("refuses a SKU split into buckets (not covered yet) rather than acknowledge it unreplicated", async () => {
    const plain = inventory();
    const prefix = (plain as unknown as { prefix: string }).prefix;
    const inv = new Inventory(master, { prefix, replicated: { replicas: 1, timeoutMs: 2_000 } });
    await expect(inv.setStock("hot", 10, { buckets: 2 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await plain.setStock("hot", 10, { buckets: 2 });
    await expect(inv.reserve("hot", { userId: "a", reservationId: "ra" })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    expect((await plain.snapshot("hot"))!.held).toBe(0);
    const keys = plain.bucketKeys("hot", 2);
    await master.del(keys.meta, ...keys.buckets.flatMap((b) => Object.values(b)));
    await Promise.all([plain.close(), inv.close()]);
  });

  it("within settleMs, retries a short count until the replica is back", async () => {
    const inv = inventory({ replicated: { replicas: 1, timeoutMs: 50 }, settleMs: 20_000 });
    await inv.setStock("sku", 5);
    const replicaPid = Number(
      /process_id:(\d+)/.exec(await setup.direct(setup.nodePorts[1]!).info("server"))![1],
    );
    process.kill(replicaPid, "SIGSTOP");
    let answered = false;
    const call = inv.reserve("sku", { userId: "a", reservationId: "ra" }).finally(() => (answered = true));
    // Still waiting while the replica is stopped (WAITs come back short, attempts go on).
    const first = await waitCalls();
    const deadline = Date.now() + 10_000;
    while ((await waitCalls()) < first + 3 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    expect(answered).toBe(false);
    process.kill(replicaPid, "SIGCONT");
    expect(await call).toEqual({ ok: true, reservationId: "ra", remaining: 4 });
    expect((await inv.snapshot("sku"))!.held).toBe(1);
    await master.del(...Object.values(inv.keys("sku")));
    await inv.close();
  });
});

describe("settling a lost reply (settleMs)", () => {
  let srv: PrivateRedis;
  beforeAll(async () => {
    srv = await startRedis();
  });
  afterAll(async () => {
    await srv.stop();
  });

  for (const batch of [true, false]) {
    it(`batch: ${batch}: a call past the command timeout is settled by its id, and applied once`, async () => {
      const redis = srv.client({ commandTimeout: 100, maxRetriesPerRequest: 0 });
      const other = srv.client();
      const prefix = randomPrefix("settle");
      const books = new Inventory(other, { prefix });
      const inv = new Inventory(redis, { prefix, batch, settleMs: 20_000 });
      await books.setStock("sku", 10, { perUserLimit: 1 });
      await other.client("PAUSE", 400, "WRITE");
      const ids = Array.from({ length: 5 }, () => randomUUID());
      const results = await Promise.all(
        ids.map((id) => inv.reserve("sku", { userId: id, reservationId: id })),
      );
      expect(results.map((r) => r.ok)).toEqual([true, true, true, true, true]);
      const snap = (await books.snapshot("sku"))!;
      expect([snap.available, snap.held]).toEqual([5, 5]);
      for (const id of ids) expect(await books.userQuantity("sku", id)).toBe(1);
      await other.del(...Object.values(books.keys("sku")));
      await Promise.all([inv.close(), books.close()]);
    });
  }

  it("answers IN_DOUBT (not an error) when time runs out, and a retry with the id settles it", async () => {
    const redis = srv.client({ commandTimeout: 100, maxRetriesPerRequest: 0 });
    const other = srv.client();
    const prefix = randomPrefix("settle");
    const books = new Inventory(other, { prefix });
    const inv = new Inventory(redis, { prefix, settleMs: 300 });
    await books.setStock("sku", 10, { perUserLimit: 1 });
    await other.client("PAUSE", 1_500, "WRITE");
    const r = await inv.reserve("sku", { userId: "u", reservationId: "r1" });
    expect(r).toEqual({ ok: false, reason: "IN_DOUBT", reservationId: "r1" });
    let again = await inv.reserve("sku", { userId: "u", reservationId: "r1" });
    const deadline = Date.now() + 20_000;
    while (!again.ok && Date.now() < deadline)
      again = await inv.reserve("sku", { userId: "u", reservationId: "r1" });
    expect(again).toMatchObject({ ok: true, reservationId: "r1" });
    expect((await books.snapshot("sku"))!.held).toBe(1);
    await other.del(...Object.values(books.keys("sku")));
    await Promise.all([inv.close(), books.close()]);
  });

  it("still throws at once for errors a retry cannot fix", async () => {
    const redis = srv.client();
    // The longest settleMs: were the error retried, the test would time out.
    const inv = new Inventory(redis, { prefix: randomPrefix("settle"), settleMs: 600_000 });
    await redis.set(inv.keys("sku").holds, "not a zset");
    await redis.hset(inv.keys("sku").stock, "available", 1, "held", 0, "limit", 1, "hold", 0);
    await expect(inv.release("sku", "r")).rejects.toThrow(/WRONGTYPE/);
    await redis.del(...Object.values(inv.keys("sku")));
    await inv.close();
  });
});
