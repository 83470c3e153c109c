// Inventory on a private standalone redis-server: the shared contract, plus what only Redis has (the event
// stream, SCRIPT FLUSH, keyspace-level "changes nothing", a closed connection).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { FlashSaleError, InvalidArgumentError, RedisUnavailableError } from "../../src/errors.js";
import { RedisCommandError } from "../../src/errors.js";
import { Inventory, MAX_HOLD_MS } from "../../src/stock/index.js";
import { keyspace, randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";
import { stockContract } from "./contract.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());

describe("Inventory (standalone Redis)", () => {
  // The contract checks Redis's own answers, so the in-process sold-out flag is off here (tested below).
  stockContract({ store: () => new Inventory(redis, { prefix: randomPrefix(), localCacheMs: 0 }) });

  describe("without batching", () => {
    stockContract({
      store: () => new Inventory(redis, { prefix: randomPrefix(), localCacheMs: 0, batch: false }),
      propertyRuns: 15,
    });
  });

  it("sends the reserves of one tick as one script call per SKU, each with its own result, in order", async () => {
    const inv = new Inventory(redis, { prefix: randomPrefix(), localCacheMs: 0 });
    await inv.setStock("a", 3, { perUserLimit: 2 });
    await inv.setStock("b", 1);
    await redis.config("RESETSTAT");
    const calls = [
      inv.reserve("a", { userId: "u1", reservationId: "r1" }),
      inv.reserve("a", { userId: "u1", reservationId: "r2" }),
      inv.reserve("a", { userId: "u1", reservationId: "r3" }), // third for u1: over the limit of 2
      inv.reserve("a", { userId: "u2", reservationId: "r1" }), // r1 belongs to u1
      inv.reserve("a", { userId: "u1", reservationId: "r1" }), // replay of the first
      inv.reserve("a", { userId: "u3", reservationId: "r4" }),
      inv.reserve("a", { userId: "u4", reservationId: "r5" }), // sold out
      inv.reserve("b", { userId: "u1", reservationId: "r1" }), // another SKU: its own ids
    ];
    const results = await Promise.allSettled(calls);
    const info = await redis.info("commandstats");
    const scriptCalls =
      Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0) +
      Number(/cmdstat_eval:calls=(\d+)/.exec(info)?.[1] ?? 0);
    expect(scriptCalls).toBe(2); // one per SKU
    expect(
      results.map((r) => (r.status === "fulfilled" ? r.value : (r.reason as { code: string }).code)),
    ).toEqual([
      { ok: true, reservationId: "r1", remaining: 2 },
      { ok: true, reservationId: "r2", remaining: 1 },
      { ok: false, reason: "LIMIT_REACHED" },
      "RESERVATION_CONFLICT",
      { ok: true, reservationId: "r1", remaining: 2 },
      { ok: true, reservationId: "r4", remaining: 0 },
      { ok: false, reason: "SOLD_OUT" },
      { ok: true, reservationId: "r1", remaining: 0 },
    ]);
    expect(await inv.snapshot("a")).toMatchObject({ available: 0, held: 3 });
    expect(await inv.userQuantity("a", "u1")).toBe(2);
    const events = await redis.xrange(inv.keys("a").events, "-", "+");
    expect(events.map(([, f]) => f[5])).toEqual(["r1", "r2", "r4"]);
  });

  it("keeps every key of a SKU under one hash tag", async () => {
    const prefix = randomPrefix();
    const inv = new Inventory(redis, { prefix });
    await inv.setStock("s1", 3, { holdMs: 60_000 });
    await inv.reserve("s1", { userId: "u" });
    const keys = await redis.keys(`*${prefix}*`);
    expect(keys.sort()).toEqual(["events", "holds", "stock"].map((k) => `{${prefix}:s1}:${k}`));
  });

  it("appends reserved / confirmed / released events to the SKU's stream", async () => {
    const inv = new Inventory(redis, { prefix: randomPrefix() });
    await inv.setStock("s", 5, { perUserLimit: 2 });
    await inv.reserve("s", { userId: "u1", reservationId: "a" });
    await inv.reserve("s", { userId: "u1", reservationId: "b" });
    await inv.reserve("s", { userId: "u1", reservationId: "c" }); // refused: writes no event
    await inv.confirm("s", "a");
    await inv.release("s", "b");
    await inv.release("s", "b"); // repeat: no second event
    const entries = await redis.xrange(inv.keys("s").events, "-", "+");
    const events = entries.map(([, fields]) => {
      const o: Record<string, string> = {};
      for (let i = 0; i < fields.length; i += 2) o[fields[i]!] = fields[i + 1]!;
      return o;
    });
    expect(events.map((e) => [e.type, e.reservationId, e.cause])).toEqual([
      ["reserved", "a", undefined],
      ["reserved", "b", undefined],
      ["confirmed", "a", undefined],
      ["released", "b", "released"],
    ]);
    expect(events[0]).toMatchObject({ sku: "s", userId: "u1", quantity: "1" });
    expect(Number(events[0]!.at)).toBeGreaterThan(1_700_000_000_000);
  });

  it("reads one reservation back", async () => {
    const inv = new Inventory(redis, { prefix: randomPrefix() });
    await inv.setStock("s", 5, { perUserLimit: 2, holdMs: 60_000 });
    await inv.reserve("s", { userId: "u|1", quantity: 2, reservationId: "a" });
    const a = await inv.reservation("s", "a");
    expect(a).toMatchObject({ reservationId: "a", userId: "u|1", quantity: 2, state: "held", remaining: 3 });
    expect(a!.expiresAt! - Date.now()).toBeGreaterThan(50_000);
    await inv.confirm("s", "a");
    expect(await inv.reservation("s", "a")).toMatchObject({ state: "confirmed" });
    expect(await inv.reservation("s", "nope")).toBeNull();
    await expect(inv.reservation("s", "{x}")).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it("trims the stream when eventsMaxLen is set", async () => {
    const inv = new Inventory(redis, { prefix: randomPrefix(), eventsMaxLen: 10 });
    await inv.setStock("s", 1000, { perUserLimit: 1 });
    for (let i = 0; i < 300; i++) await inv.reserve("s", { userId: `u${i}` });
    expect(await redis.xlen(inv.keys("s").events)).toBeLessThan(300);
  });

  it("keeps working after SCRIPT FLUSH", async () => {
    const inv = new Inventory(redis, { prefix: randomPrefix() });
    await inv.setStock("s", 5);
    expect((await inv.reserve("s", { userId: "a" })).ok).toBe(true);
    await redis.script("FLUSH");
    expect(await redis.script("EXISTS", "0".repeat(40))).toEqual([0]);
    expect((await inv.reserve("s", { userId: "b" })).ok).toBe(true);
    await redis.script("FLUSH");
    expect(await inv.release("s", "nope")).toEqual({ ok: false, reason: "UNKNOWN_RESERVATION" });
    expect(await inv.snapshot("s")).toMatchObject({ available: 3, held: 2 });
  });

  it("writes nothing on bad input or a refusal (whole keyspace compared)", async () => {
    const prefix = randomPrefix();
    const inv = new Inventory(redis, { prefix });
    await inv.setStock("s", 1, { perUserLimit: 1, holdMs: 60_000 });
    await inv.reserve("s", { userId: "a", reservationId: "r0" });
    await inv.setStock("later", 5, { startsAt: Date.now() + 3_600_000 });
    const before = await keyspace(redis, `*${prefix}*`);
    const attempts: (() => Promise<unknown>)[] = [
      () => inv.reserve("s", { userId: "b" }), // sold out
      () => inv.reserve("s", { userId: "a", reservationId: "r1" }), // limit
      () => inv.reserve("later", { userId: "a" }), // not started
      () => inv.reserve("ghost", { userId: "a" }), // unknown SKU
      () => inv.reserve("s", { userId: "a", reservationId: "r0" }), // replay
      () => inv.reserve("s", { userId: "z", reservationId: "r0" }), // conflict
      () => inv.reserve("s", { userId: "a", quantity: -1 }),
      () => inv.reserve("s", { userId: "a", quantity: 0.5 }),
      () => inv.reserve("s{x}", { userId: "a" }),
      () => inv.reserve("s", { userId: "a}" }),
      () => inv.reserve("s", { userId: "a\u0007" }),
      () => inv.reserve("s", { userId: "y".repeat(201) }),
      () => inv.setStock("s", 0), // below committed
      () => inv.setStock("s", -5),
      () => inv.confirm("s", "unknown"),
      () => inv.release("s", "unknown"),
      () => inv.confirm("ghost", "r0"),
      () => inv.expireHolds("s"),
      () => inv.reserve("s", { userId: "b", quantity: null as never }),
      () => inv.reserve("s", null as never),
      () => inv.setStock("s", 3, null as never),
      () => inv.setStock("s", 3, { perUserLimit: null as never }),
      () => inv.expireHolds("s", null as never),
      () => inv.reserve("s\ud800", { userId: "b" }),
      () => inv.reserve("s", { userId: "b\udc00" }),
    ];
    for (const attempt of attempts)
      await attempt().catch((e: unknown) => expect(e).toBeInstanceOf(FlashSaleError));
    expect(await keyspace(redis, `*${prefix}*`)).toEqual(before);
  });

  it("a SKU key of another type fails every script before it writes anything", async () => {
    const prefix = randomPrefix();
    const inv = new Inventory(redis, { prefix, localCacheMs: 0 });
    await inv.setStock("s", 2, { holdMs: 60_000 });
    const r = await inv.reserve("s", { userId: "a" });
    if (!r.ok) throw new Error("setup");
    for (const [key, wrong] of [
      [inv.keys("s").holds, "a string"],
      [inv.keys("s").events, "another string"],
    ] as const) {
      const saved = await redis.dumpBuffer(key);
      await redis.del(key);
      await redis.set(key, wrong);
      const before = await keyspace(redis, `*${prefix}*`);
      for (const call of [
        () => inv.reserve("s", { userId: "b" }),
        () => inv.release("s", r.reservationId),
        () => inv.confirm("s", r.reservationId),
        () => inv.expireHolds("s"),
      ]) {
        await expect(call()).rejects.toThrow(/WRONGTYPE/);
      }
      expect(await keyspace(redis, `*${prefix}*`)).toEqual(before);
      await redis.del(key);
      if (saved) await redis.restore(key, 0, saved);
    }
    expect(await inv.snapshot("s")).toMatchObject({ available: 1, held: 1 });
  });

  it("caps holdMs so that expiry times stay integers in the scripts", async () => {
    const inv = new Inventory(redis, { prefix: randomPrefix() });
    await expect(inv.setStock("s", 1, { holdMs: MAX_HOLD_MS + 1 })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    await inv.setStock("s", 1, { holdMs: MAX_HOLD_MS });
    const r = await inv.reserve("s", { userId: "u" });
    if (!r.ok) throw new Error();
    expect(await inv.confirm("s", r.reservationId)).toEqual({ ok: true });
  });

  it("rejects an invalid prefix or client", () => {
    expect(() => new Inventory(redis, { prefix: "a{b" })).toThrow(InvalidArgumentError);
    expect(() => new Inventory({} as never)).toThrow(InvalidArgumentError);
    expect(() => new Inventory(redis, { eventsMaxLen: 0 })).toThrow(InvalidArgumentError);
    expect(() => new Inventory(redis, { batch: "yes" as never })).toThrow(InvalidArgumentError);
  });

  it("refuses unknown option keys everywhere, before anything is written", async () => {
    const prefix = randomPrefix();
    const inv = new Inventory(redis, { prefix });
    await inv.setStock("s", 2, { holdMs: 60_000 });
    const before = await keyspace(redis, `*${prefix}*`);
    const typo = { perUserLimt: 5 } as never;
    expect(() => new Inventory(redis, { prefix, localCacheMS: 5 } as never)).toThrow(/localCacheMs/);
    await expect(inv.setStock("s", 3, typo)).rejects.toThrow(/did you mean perUserLimit/);
    await expect(inv.reserve("s", { userId: "u", quantiy: 2 } as never)).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    await expect(inv.expireHolds("s", { limt: 5 } as never)).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(() => inv.startHoldSweeper({ skus: ["s"], interval: 5 } as never)).toThrow(InvalidArgumentError);
    expect(() => inv.startHoldSweeper({ skus: ["s"], onError: 5 } as never)).toThrow(InvalidArgumentError);
    expect(() => inv.startHoldSweeper({ skus: ["s"], intervalMs: -1 })).toThrow(InvalidArgumentError);
    expect(() => inv.startHoldSweeper({ skus: ["s"], intervalMs: Number.NaN })).toThrow(InvalidArgumentError);
    // undefined values are ignored, as when an option is read
    await inv.setStock("s", 2, { holdMs: 60_000, perUserLimit: undefined });
    expect(await keyspace(redis, `*${prefix}*`)).toEqual(before);
  });

  it("throws RedisUnavailableError on a closed connection", async () => {
    const c = srv.client();
    const inv = new Inventory(c, { prefix: randomPrefix() });
    await inv.setStock("s", 1);
    await c.quit();
    await expect(inv.reserve("s", { userId: "u" })).rejects.toBeInstanceOf(RedisUnavailableError);
    await expect(inv.snapshot("s")).rejects.toBeInstanceOf(RedisUnavailableError);
    const err = await inv.confirm("s", "r").catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "REDIS_UNAVAILABLE", name: "RedisUnavailableError" });
    expect((err as Error).cause).toBeInstanceOf(Error);
  });

  it("sweeps expired holds in the background", async () => {
    const inv = new Inventory(redis, { prefix: randomPrefix() });
    await inv.setStock("s", 10, { perUserLimit: 1, holdMs: 50 });
    for (let i = 0; i < 5; i++) await inv.reserve("s", { userId: `u${i}` });
    const errors: unknown[] = [];
    const sweeper = inv.startHoldSweeper({
      skus: ["s"],
      intervalMs: 20,
      limit: 2,
      onError: (e) => errors.push(e),
    });
    const deadline = Date.now() + 5000;
    while ((await inv.snapshot("s"))!.held > 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    await sweeper.stop();
    expect(await inv.snapshot("s")).toMatchObject({ available: 10, held: 0 });
    expect(errors).toEqual([]);
  });

  it("the sweeper reports a failing SKU and still sweeps the ones after it", async () => {
    const inv = new Inventory(redis, { prefix: randomPrefix() });
    await inv.setStock("good", 5, { perUserLimit: 1, holdMs: 30 });
    for (let i = 0; i < 3; i++) await inv.reserve("good", { userId: `u${i}` });
    await redis.set(inv.keys("broken").holds, "not a sorted set"); // its sweep fails every round
    const errors: unknown[] = [];
    const sweeper = inv.startHoldSweeper({
      skus: ["broken", "bad sku", "good"],
      intervalMs: 20,
      onError: (e) => errors.push(e),
    });
    const deadline = Date.now() + 5000;
    while ((await inv.snapshot("good"))!.held > 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    await sweeper.stop();
    expect(await inv.snapshot("good")).toMatchObject({ available: 5, held: 0 });
    expect(errors.some((e) => e instanceof RedisCommandError)).toBe(true);
    expect(errors.some((e) => e instanceof InvalidArgumentError)).toBe(true);
  });

  describe("sold-out flag", () => {
    /** Waits until the restock channel of `prefix` has a subscriber on the server, and a moment more. */
    const subscribed = async (prefix: string): Promise<void> => {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const [, n] = (await redis.pubsub("NUMSUB", `${prefix}:restock`)) as [string, number];
        if (Number(n) > 0) break;
        if (Date.now() > deadline) throw new Error("never subscribed");
        await new Promise((r) => setTimeout(r, 10));
      }
      await redis.ping(); // the SUBSCRIBE reply reaches the client before this one comes back
    };
    const evalCalls = async () => {
      const info = await redis.info("commandstats");
      return (
        Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0) +
        Number(/cmdstat_eval:calls=(\d+)/.exec(info)?.[1] ?? 0)
      );
    };

    it("answers SOLD_OUT in process once Redis said 0 left, and clears on a restock message", async () => {
      const prefix = randomPrefix();
      const subscriber = srv.client();
      const local = new Inventory(redis, { prefix, localCacheMs: 60_000, subscriber });
      const other = new Inventory(srv.client(), { prefix, localCacheMs: 0 }); // another process
      await subscribed(prefix); // flags go up only once no restock can be missed
      await other.setStock("s", 1);
      const first = await local.reserve("s", { userId: "a" });
      expect(first.ok).toBe(true);
      expect(await local.reserve("s", { userId: "b" })).toEqual({ ok: false, reason: "SOLD_OUT" });
      // The flag is up once the SKU's reservations (one) are read: from then on no script runs.
      const deadline0 = Date.now() + 10_000;
      for (let n = await evalCalls(); ;) {
        expect(await local.reserve("s", { userId: "b" })).toEqual({ ok: false, reason: "SOLD_OUT" });
        const m = await evalCalls();
        if (m === n) break;
        if (Date.now() > deadline0) throw new Error("the flag never went up");
        n = m;
      }
      const before = await evalCalls();
      for (let i = 0; i < 50; i++) {
        expect(await local.reserve("s", { userId: `c${i}` })).toEqual({ ok: false, reason: "SOLD_OUT" });
      }
      expect(await evalCalls()).toBe(before); // no script ran
      // a caller-chosen id still goes to Redis and gets its first outcome
      if (!first.ok) throw new Error();
      expect(await local.reserve("s", { userId: "a", reservationId: first.reservationId })).toEqual(first);
      // another process releases: the restock message clears the flag
      await other.release("s", first.reservationId);
      const deadline = Date.now() + 5_000;
      let again = await local.reserve("s", { userId: "d" });
      while (!again.ok && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
        again = await local.reserve("s", { userId: "d" });
      }
      expect(again.ok).toBe(true);
      await local.close();
    });

    it("a restock message that overtakes an in-flight SOLD_OUT reply keeps the flag down", async () => {
      const prefix = randomPrefix();
      const subscriber = srv.client();
      const local = new Inventory(redis, { prefix, localCacheMs: 60_000, subscriber });
      await local.setStock("s", 0);
      const pending = local.reserve("s", { userId: "a" });
      // The restock arrives on the subscriber connection before the reply on the command connection.
      subscriber.emit("message", `${prefix}:restock`, "s");
      expect(await pending).toEqual({ ok: false, reason: "SOLD_OUT" });
      await redis.hset(local.keys("s").stock, "initial", 1, "available", 1); // the units that came back
      expect((await local.reserve("s", { userId: "b" })).ok).toBe(true);
      await local.close();
    });

    it("a dropped subscriber connection drops the flags: a restock published meanwhile is not missed", async () => {
      const prefix = randomPrefix();
      const subscriber = srv.client();
      const local = new Inventory(redis, { prefix, localCacheMs: 60_000, subscriber });
      const other = new Inventory(srv.client(), { prefix, localCacheMs: 0 }); // another process
      await subscribed(prefix);
      await other.setStock("s", 1);
      const first = await local.reserve("s", { userId: "a" });
      if (!first.ok) throw new Error("setup");
      expect(await local.reserve("s", { userId: "b" })).toEqual({ ok: false, reason: "SOLD_OUT" }); // flag up
      const closed = new Promise((r) => subscriber.once("close", r));
      await redis.call("CLIENT", "KILL", "TYPE", "pubsub"); // a network blip on the subscriber's connection
      await closed;
      // While it is down, another process gives the unit back: its restock message reaches nobody.
      expect(await other.release("s", first.reservationId)).toEqual({ ok: true });
      expect((await local.reserve("s", { userId: "b" })).ok).toBe(true);
      // Back and subscribed again, flags work as before.
      await subscribed(prefix);
      const deadline = Date.now() + 5_000;
      const before = await evalCalls();
      while (Date.now() < deadline) {
        expect(await local.reserve("s", { userId: "c" })).toEqual({ ok: false, reason: "SOLD_OUT" });
        if ((await evalCalls()) === before) break; // no script ran: the flag is up again
        await new Promise((r) => setTimeout(r, 10));
      }
      const settled = await evalCalls();
      expect(await local.reserve("s", { userId: "d" })).toEqual({ ok: false, reason: "SOLD_OUT" });
      expect(await evalCalls()).toBe(settled);
      await local.close();
    });

    it("forgetting old restock counts (a catalog of over 10,000 SKUs) never lets an overtaken reply raise a flag", async () => {
      const prefix = randomPrefix();
      const subscriber = srv.client();
      const local = new Inventory(redis, { prefix, localCacheMs: 60_000, subscriber });
      const other = new Inventory(srv.client(), { prefix, localCacheMs: 0 }); // another process
      await subscribed(prefix);
      await other.setStock("s", 0); // no units: no restock message, so local has no count for "s"
      const pending = local.reserve("s", { userId: "a" }); // made when "s" had no count
      subscriber.emit("message", `${prefix}:restock`, "s"); // overtakes the SOLD_OUT reply…
      // …and restocks of a big catalog make the counts be forgotten: "s" has none again, as when the call was made
      for (let i = 0; i < 10_000; i++) subscriber.emit("message", `${prefix}:restock`, `other-${i}`);
      expect(await pending).toEqual({ ok: false, reason: "SOLD_OUT" });
      await redis.hset(local.keys("s").stock, "initial", 1, "available", 1); // the units that came back
      expect((await local.reserve("s", { userId: "b" })).ok).toBe(true);
      await local.close();
    });

    it("several Inventories may share one subscriber; closing one keeps the others listening", async () => {
      const prefix = randomPrefix();
      const subscriber = srv.client();
      const a = new Inventory(redis, { prefix, subscriber });
      const b = new Inventory(redis, { prefix, subscriber });
      await subscribed(prefix);
      await a.close();
      await a.close(); // twice is harmless
      const channels = (await redis.pubsub("CHANNELS", `${prefix}:*`)) as string[];
      expect(channels).toEqual([`${prefix}:restock`]);
      await b.close();
      expect(await redis.pubsub("CHANNELS", `${prefix}:*`)).toEqual([]);
    });

    it("without a subscriber the flag times out", async () => {
      const prefix = randomPrefix();
      const local = new Inventory(redis, { prefix, localCacheMs: 150 });
      const other = new Inventory(srv.client(), { prefix, localCacheMs: 0 });
      await other.setStock("s", 0);
      expect(await local.reserve("s", { userId: "a" })).toEqual({ ok: false, reason: "SOLD_OUT" });
      await other.setStock("s", 1);
      expect(await local.reserve("s", { userId: "a" })).toEqual({ ok: false, reason: "SOLD_OUT" }); // flag still up
      await new Promise((r) => setTimeout(r, 200));
      expect((await local.reserve("s", { userId: "a" })).ok).toBe(true);
    });

    it("is cleared by this instance's own release and setStock", async () => {
      const local = new Inventory(redis, { prefix: randomPrefix(), localCacheMs: 60_000 });
      await local.setStock("s", 1);
      const r = await local.reserve("s", { userId: "a" });
      expect(await local.reserve("s", { userId: "b" })).toEqual({ ok: false, reason: "SOLD_OUT" });
      if (!r.ok) throw new Error();
      await local.release("s", r.reservationId);
      expect((await local.reserve("s", { userId: "b" })).ok).toBe(true);
      expect(await local.reserve("s", { userId: "c" })).toEqual({ ok: false, reason: "SOLD_OUT" });
      await local.setStock("s", 2);
      expect((await local.reserve("s", { userId: "c" })).ok).toBe(true);
    });
  });
});
