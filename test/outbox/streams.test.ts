// RedisStreamPublisher and RedisStreamConsumer on a private redis-server (PostgreSQL for the inbox): consumer
// groups, XACK only after the handler's transaction commits, XAUTOCLAIM of stale entries, dead letters after
// maxDeliveries, Inventory's event streams, and a consumer killed mid-handler.
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError, UnexpectedReplyError } from "../../src/errors.js";
import { RedisCommandError } from "../../src/errors.js";
import type { SqlClient } from "../../src/internal/sql.js";
import {
  OutboxRelay,
  PostgresInbox,
  PostgresOutbox,
  RedisStreamConsumer,
  RedisStreamPublisher,
  defaultDeadLetterStream,
  readStreamedMessage,
  transaction,
  type StreamEntry,
} from "../../src/outbox/index.js";
import { readStockEvent } from "../../src/orders/index.js";
import { Inventory } from "../../src/stock/index.js";
import { keyspace, randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";
import { BACKENDS, count, fixture, kill, sleep, tableName, until, type Backend } from "./helpers.js";

let srv: PrivateRedis;
let redis: Redis;
let b: Backend;
let db: SqlClient;
beforeAll(async () => {
  [srv, b] = await Promise.all([startRedis(), BACKENDS[0]!.start(10)]);
  redis = srv.client();
  db = b.db;
});
afterAll(async () => {
  await Promise.all([srv?.stop(), b?.stop()]);
});

const fieldsToObject = (flat: string[]): Record<string, string> => {
  const o: Record<string, string> = {};
  for (let i = 0; i < flat.length; i += 2) o[flat[i]!] = flat[i + 1]!;
  return o;
};

async function pending(stream: string, group: string): Promise<number> {
  const summary = (await redis.call("XPENDING", stream, group)) as [number, ...unknown[]];
  return Number(summary[0]);
}

async function inboxAndEffects() {
  const inbox = new PostgresInbox(db, { table: tableName("ib") });
  await inbox.migrate();
  const effects = tableName("fx");
  await db.query(`CREATE TABLE ${effects} (message_id text NOT NULL)`);
  const apply = (entry: StreamEntry, inside?: () => Promise<void>) =>
    transaction(db, (tx) =>
      inbox.processOnce(tx, { consumer: "fx", messageId: `${entry.stream}/${entry.id}` }, async (t) => {
        await t.query(`INSERT INTO ${effects} (message_id) VALUES ($1)`, [entry.id]);
        await inside?.();
      }),
    );
  return { inbox, effects, apply };
}

describe("RedisStreamPublisher", () => {
  it("writes id, topic, key and JSON payload to a stream per topic, read back by readStreamedMessage", async () => {
    const prefix = randomPrefix();
    const publisher = new RedisStreamPublisher(redis, { prefix });
    expect(publisher.streamKey("orders")).toBe(`{${prefix}:orders}:stream`);
    const base = { attempt: 1, createdAt: 0 };
    await publisher.publish({ ...base, id: "m1", topic: "orders", key: "o1", payload: { n: 1, s: "ü" } });
    await publisher.publish({ ...base, id: "m2", topic: "orders", key: null, payload: [1, 2] });
    await publisher.publish({ ...base, id: "m3", topic: "mail", key: null, payload: "hi" });
    const entries = await redis.xrange(publisher.streamKey("orders"), "-", "+");
    expect(entries.map(([, f]) => readStreamedMessage({ fields: fieldsToObject(f) }))).toEqual([
      { id: "m1", topic: "orders", key: "o1", payload: { n: 1, s: "ü" } },
      { id: "m2", topic: "orders", key: null, payload: [1, 2] },
    ]);
    expect(await redis.xlen(publisher.streamKey("mail"))).toBe(1);
    expect(() => readStreamedMessage({ fields: { id: "x" } })).toThrow(UnexpectedReplyError);
    expect(() => readStreamedMessage({ fields: { id: "x", topic: "t", payload: "{" } })).toThrow(
      UnexpectedReplyError,
    );
  });

  it("serves as a relay's publish, with MAXLEN trimming", async () => {
    const outbox = new PostgresOutbox(db, { table: tableName("ob") });
    await outbox.migrate();
    const prefix = randomPrefix();
    const publisher = new RedisStreamPublisher(redis, { prefix, maxLen: 10 });
    await transaction(db, async (tx) => {
      for (let i = 0; i < 300; i++) await outbox.enqueue(tx, { topic: "t", payload: i });
    });
    const relay = new OutboxRelay(outbox, { batchSize: 300, publish: publisher.publish });
    expect((await relay.runOnce()).sent).toBe(300);
    expect(await redis.xlen(publisher.streamKey("t"))).toBeLessThan(300);
  });
});

describe("RedisStreamConsumer", () => {
  it("delivers every entry once through a group and acknowledges it after the handler", async () => {
    const stream = `${randomPrefix()}:s`;
    for (let i = 0; i < 250; i++) await redis.xadd(stream, "*", "i", String(i));
    const seen: StreamEntry[] = [];
    const consumer = new RedisStreamConsumer(redis, {
      streams: [stream],
      group: "g",
      consumer: "c1",
      batchSize: 100,
      handler: async (e) => void seen.push(e),
    });
    expect(await consumer.runOnce()).toEqual({ delivered: 100, acked: 100, failed: 0, deadLettered: 0 });
    await consumer.runOnce();
    await consumer.runOnce();
    expect(await consumer.runOnce()).toEqual({ delivered: 0, acked: 0, failed: 0, deadLettered: 0 });
    expect(seen.map((e) => Number(e.fields.i))).toEqual(Array.from({ length: 250 }, (_, i) => i));
    expect(seen.every((e) => e.deliveries === 1 && e.stream === stream)).toBe(true);
    expect(await pending(stream, "g")).toBe(0);
  });

  it("acknowledges only after the handler's transaction commits", async () => {
    const { effects, apply } = await inboxAndEffects();
    const stream = `${randomPrefix()}:s`;
    await redis.xadd(stream, "*", "k", "v");
    let release!: () => void;
    const latch = new Promise<void>((r) => (release = r));
    let inside = false;
    const consumer = new RedisStreamConsumer(redis, {
      streams: [stream],
      group: "g",
      consumer: "c1",
      handler: (e) =>
        apply(e, async () => {
          inside = true;
          await latch;
        }),
    });
    const round = consumer.runOnce();
    await until(() => inside, 5_000, "the handler's transaction");
    // Inside the transaction: nothing committed, nothing acknowledged.
    expect(await pending(stream, "g")).toBe(1);
    expect(await count(db, `SELECT count(*) AS n FROM ${effects}`)).toBe(0);
    release();
    expect(await round).toEqual({ delivered: 1, acked: 1, failed: 0, deadLettered: 0 });
    expect(await pending(stream, "g")).toBe(0);
    expect(await count(db, `SELECT count(*) AS n FROM ${effects}`)).toBe(1);
  });

  it("leaves a failed entry pending, redelivers it after claimIdleMs, and applies it once", async () => {
    const { effects, apply } = await inboxAndEffects();
    const stream = `${randomPrefix()}:s`;
    await redis.xadd(stream, "*", "k", "v");
    const deliveries: number[] = [];
    const errors: unknown[] = [];
    const consumer = new RedisStreamConsumer(redis, {
      streams: [stream],
      group: "g",
      consumer: "c1",
      claimIdleMs: 200,
      handler: (e) =>
        apply(e, async () => {
          deliveries.push(e.deliveries);
          if (e.deliveries === 1) throw new Error("database hiccup"); // rolls back inbox row and effect
        }),
      onError: (err) => errors.push(err),
    });
    expect(await consumer.runOnce()).toEqual({ delivered: 1, acked: 0, failed: 1, deadLettered: 0 });
    expect((errors[0] as Error).message).toBe("database hiccup");
    expect(await pending(stream, "g")).toBe(1);
    expect((await consumer.runOnce()).delivered).toBe(0); // not idle long enough yet
    await sleep(250);
    expect(await consumer.runOnce()).toEqual({ delivered: 1, acked: 1, failed: 0, deadLettered: 0 });
    expect(deliveries).toEqual([1, 2]);
    expect(await pending(stream, "g")).toBe(0);
    expect(await count(db, `SELECT count(*) AS n FROM ${effects}`)).toBe(1);
  });

  it("dead-letters an entry after maxDeliveries with its error, while the others flow", async () => {
    const stream = `${randomPrefix()}:s`;
    await redis.xadd(stream, "*", "kind", "poison");
    for (let i = 0; i < 5; i++) await redis.xadd(stream, "*", "kind", "good", "i", String(i));
    let poisonCalls = 0;
    const good: string[] = [];
    const consumer = new RedisStreamConsumer(redis, {
      streams: [stream],
      group: "g",
      consumer: "c1",
      claimIdleMs: 50,
      maxDeliveries: 3,
      handler: async (e) => {
        if (e.fields.kind === "poison") {
          poisonCalls++;
          throw new RangeError("cannot apply");
        }
        good.push(e.fields.i!);
      },
    });
    const first = await consumer.runOnce();
    expect(first).toEqual({ delivered: 6, acked: 5, failed: 1, deadLettered: 0 });
    expect(good).toEqual(["0", "1", "2", "3", "4"]);
    let dead = 0;
    for (let i = 0; i < 20 && dead === 0; i++) {
      await sleep(60);
      dead += (await consumer.runOnce()).deadLettered;
    }
    expect(dead).toBe(1);
    expect(poisonCalls).toBe(3);
    expect(await pending(stream, "g")).toBe(0);
    const letters = await redis.xrange(defaultDeadLetterStream(stream), "-", "+");
    expect(letters).toHaveLength(1);
    const f = fieldsToObject(letters[0]![1]);
    const [[sourceId]] = (await redis.xrange(stream, "-", "+", "COUNT", 1)) as [[string, string[]]];
    expect(f).toEqual({
      kind: "poison",
      "dead.stream": stream,
      "dead.id": sourceId,
      "dead.group": "g",
      "dead.deliveries": "3",
      "dead.error": "RangeError: cannot apply",
    });
  });

  it("a dead-letter key of another type fails the reclaim with a clear error and changes nothing", async () => {
    const stream = `${randomPrefix()}:s`;
    const dlq = defaultDeadLetterStream(stream);
    await redis.xgroup("CREATE", stream, "g", "0", "MKSTREAM");
    const a = await redis.xadd(stream, "*", "n", "a");
    const z = await redis.xadd(stream, "*", "n", "z");
    // A dead consumer left `a` delivered once and `z` twice: `a` is claimed and `z` dead-lettered, in that order.
    await redis.call("XREADGROUP", "GROUP", "g", "ghost", "COUNT", 10, "STREAMS", stream, ">");
    await redis.call("XCLAIM", stream, "g", "ghost", 0, z!);
    await redis.set(dlq, "not a stream");
    const seen: StreamEntry[] = [];
    const consumer = new RedisStreamConsumer(redis, {
      streams: [stream],
      group: "g",
      consumer: "heir",
      claimIdleMs: 50,
      maxDeliveries: 2,
      handler: async (e) => void seen.push(e),
    });
    await sleep(80);
    const before = await keyspace(redis, `*${stream}*`);
    for (let i = 0; i < 2; i++) {
      if (i > 0) await sleep(60); // reclaims run at most every claimIdleMs / 2
      const err = await consumer.runOnce().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RedisCommandError);
      expect((err as Error).message).toContain(
        `WRONGTYPE the dead-letter key ${dlq} holds a string, not a stream; nothing was changed`,
      );
      expect(await keyspace(redis, `*${stream}*`)).toEqual(before);
    }
    const owners = (await redis.call("XPENDING", stream, "g", "-", "+", 10)) as [
      string,
      string,
      number,
      number,
    ][];
    expect(owners.map(([id, owner, , count]) => [id, owner, count])).toEqual([
      [a, "ghost", 1],
      [z, "ghost", 2],
    ]);
    expect(seen).toEqual([]);
    // Once the key is fixed, the same round claims `a` and dead-letters `z`.
    await redis.del(dlq);
    await sleep(60);
    expect(await consumer.runOnce()).toEqual({ delivered: 1, acked: 1, failed: 0, deadLettered: 1 });
    expect(seen.map((e) => [e.id, e.deliveries])).toEqual([[a, 2]]);
    expect(await redis.xlen(dlq)).toBe(1);
  });

  it("a dead-letter key of another type: the last failed delivery stays pending, reported clearly", async () => {
    const stream = `${randomPrefix()}:s`;
    const dlq = defaultDeadLetterStream(stream);
    const id = await redis.xadd(stream, "*", "n", "poison");
    let during: Record<string, string> = {};
    const errors: unknown[] = [];
    const consumer = new RedisStreamConsumer(redis, {
      streams: [stream],
      group: "g",
      consumer: "c",
      maxDeliveries: 1,
      handler: async () => {
        // Overwritten after the round's reclaim checked it, before the dead-letter move.
        await redis.hset(dlq, "not", "a stream");
        during = await keyspace(redis, `*${stream}*`);
        throw new Error("poison");
      },
      onError: (err) => errors.push(err),
    });
    expect(await consumer.runOnce()).toEqual({ delivered: 1, acked: 0, failed: 1, deadLettered: 0 });
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatchObject({ message: "poison" });
    expect(errors[1]).toBeInstanceOf(RedisCommandError);
    expect((errors[1] as Error).message).toContain(
      `WRONGTYPE the dead-letter key ${dlq} holds a hash, not a stream; nothing was changed`,
    );
    expect(await keyspace(redis, `*${stream}*`)).toEqual(during);
    const owners = (await redis.call("XPENDING", stream, "g", "-", "+", 10)) as [
      string,
      string,
      number,
      number,
    ][];
    expect(owners.map(([entry, owner, , count]) => [entry, owner, count])).toEqual([[id, "c", 1]]);
  });

  it("the entries of a batch waiting their turn are not taken over: no double handling, no dead letter", async () => {
    // Ten entries read at once, 100 ms each, claimIdleMs 500: the tail waits longer than claimIdleMs.
    for (const maxDeliveries of [5, 1]) {
      const stream = `{${randomPrefix()}}:s`;
      for (let i = 0; i < 10; i++) await redis.xadd(stream, "*", "n", String(i));
      const handled: string[] = [];
      const common = {
        streams: [stream],
        group: "g",
        batchSize: 10,
        claimIdleMs: 500,
        maxDeliveries,
        handler: async (e: { id: string }) => {
          handled.push(e.id);
          await sleep(100);
        },
      };
      const a = new RedisStreamConsumer(redis, { ...common, consumer: "a" });
      const b = new RedisStreamConsumer(redis, { ...common, consumer: "b" });
      const roundA = a.runOnce();
      await sleep(700);
      const roundB = await b.runOnce(); // finds nothing idle: a keeps its batch
      expect(await roundA).toMatchObject({ delivered: 10, acked: 10 });
      expect(roundB).toMatchObject({ delivered: 0, deadLettered: 0 });
      expect(new Set(handled).size).toBe(10);
      expect(handled).toHaveLength(10);
      expect(await redis.xlen(b.deadLetterStream(stream))).toBe(0);
    }
  });

  it("start() called while stop() drains its round starts again once the stop is done", async () => {
    const stream = `{${randomPrefix()}}:s`;
    await redis.xadd(stream, "*", "n", "1");
    const handled: string[] = [];
    const consumer = new RedisStreamConsumer(redis, {
      streams: [stream],
      group: "g",
      consumer: "c",
      pollIntervalMs: 10,
      handler: async (e) => {
        await sleep(150);
        handled.push(e.id);
      },
    });
    await consumer.start();
    await sleep(50); // the handler is running
    const stopping = consumer.stop();
    await consumer.start();
    await stopping;
    expect(consumer.running).toBe(true);
    await redis.xadd(stream, "*", "n", "2");
    await until(() => handled.length === 2, 5_000, "the entry added after the restart");
    await consumer.stop();
  });

  it("a failed read right after a reclaim does not cost the reclaimed entry one of its maxDeliveries", async () => {
    const stream = `{${randomPrefix()}}:s`;
    let handlerCalls = 0;
    let failRead = false;
    // A client whose next XREADGROUP fails once, as on a connection blip.
    const client = srv.client();
    const call = client.call.bind(client) as (...args: unknown[]) => Promise<unknown>;
    (client as unknown as { call: unknown }).call = (...args: unknown[]) => {
      if (failRead && args[0] === "XREADGROUP") {
        failRead = false;
        return Promise.reject(new Error("read ECONNRESET"));
      }
      return call(...args);
    };
    const consumer = new RedisStreamConsumer(client, {
      streams: [stream],
      group: "g",
      consumer: "c1",
      claimIdleMs: 200,
      maxDeliveries: 2,
      handler: async () => {
        if (++handlerCalls === 1) throw new Error("transient handler failure");
      },
    });
    await consumer.runOnce(); // creates the group
    await redis.xadd(stream, "*", "n", "1");
    expect(await consumer.runOnce()).toMatchObject({ delivered: 1, failed: 1 }); // delivery 1 of 2 fails
    await sleep(250);
    failRead = true;
    await expect(consumer.runOnce()).rejects.toThrow("ECONNRESET"); // reclaimed, handled, then the read fails
    expect(handlerCalls).toBe(2); // the second delivery reached the handler, and succeeded
    for (let i = 0; i < 2; i++) {
      await sleep(250);
      await consumer.runOnce();
    }
    expect(handlerCalls).toBe(2);
    expect(await redis.xlen(consumer.deadLetterStream(stream))).toBe(0);
    expect(await redis.xpending(stream, "g")).toEqual([0, null, null, null]);
  });

  it("reclaims entries a dead consumer left pending (XAUTOCLAIM) and dead-letters the worn-out ones", async () => {
    const stream = `${randomPrefix()}:s`;
    const dlq = `${stream}-dlq`;
    const seen: StreamEntry[] = [];
    const consumer = new RedisStreamConsumer(redis, {
      streams: [stream],
      group: "g",
      consumer: "heir",
      claimIdleMs: 200,
      maxDeliveries: 2,
      deadLetterStream: () => `{${stream}}-dlq`,
      handler: async (e) => void seen.push(e),
    });
    await consumer.runOnce(); // creates the group
    expect(consumer.deadLetterStream(stream)).toBe(`{${stream}}-dlq`);
    const a = await redis.xadd(stream, "*", "n", "a");
    const z = await redis.xadd(stream, "*", "n", "z");
    // A consumer that reads and then dies: entry `a` once, entry `z` twice (already claimed once).
    await redis.call("XREADGROUP", "GROUP", "g", "ghost", "COUNT", 10, "STREAMS", stream, ">");
    await redis.call("XCLAIM", stream, "g", "ghost", 0, z!);
    expect(await consumer.runOnce()).toEqual({ delivered: 0, acked: 0, failed: 0, deadLettered: 0 });
    await sleep(250);
    expect(await consumer.runOnce()).toEqual({ delivered: 1, acked: 1, failed: 0, deadLettered: 1 });
    expect(seen.map((e) => [e.id, e.deliveries, e.fields.n])).toEqual([[a, 2, "a"]]);
    const letters = await redis.xrange(`{${stream}}-dlq`, "-", "+");
    expect(fieldsToObject(letters[0]![1])).toMatchObject({
      n: "z",
      "dead.id": z,
      "dead.deliveries": "2",
      "dead.error": "not acknowledged within 200 ms of its last delivery (the consumer failed or stopped)",
    });
    expect(await pending(stream, "g")).toBe(0);
    expect(await redis.exists(dlq)).toBe(0);
  });

  it("a consumer killed mid-handler: the entry is reclaimed and applied once by another consumer", async () => {
    const { inbox, effects, apply } = await inboxAndEffects();
    const stream = `${randomPrefix()}:s`;
    const entryId = await redis.xadd(stream, "*", "order", "o-1");
    await redis.xgroup("CREATE", stream, "g", "0");
    const { child, next } = fixture("consumer-child.ts", {
      DATABASE_URL: b.url!,
      REDIS_URL: srv.url,
      STREAM: stream,
      GROUP: "g",
      INBOX_TABLE: inbox.table,
      EFFECTS_TABLE: effects,
    });
    try {
      expect(await next()).toEqual({ ready: true });
      expect(await next()).toEqual({ inHandler: entryId });
    } finally {
      await kill(child);
    }
    const seen: StreamEntry[] = [];
    const heir = new RedisStreamConsumer(redis, {
      streams: [stream],
      group: "g",
      consumer: "heir",
      claimIdleMs: 300,
      handler: async (e) => {
        seen.push(e);
        await apply(e);
      },
    });
    await until(async () => (await heir.runOnce()).acked === 1, 10_000, "the reclaim");
    expect(seen.map((e) => [e.id, e.deliveries, e.fields.order])).toEqual([[entryId, 2, "o-1"]]);
    expect(await count(db, `SELECT count(*) AS n FROM ${effects}`)).toBe(1);
    expect(await pending(stream, "g")).toBe(0);
  });

  it("consumes Inventory's event streams, one group per SKU stream", async () => {
    const inventory = new Inventory(redis, { prefix: randomPrefix() });
    const skus = ["a", "b", "c"];
    for (const sku of skus) await inventory.setStock(sku, 50, { perUserLimit: 5 });
    const expected: string[] = [];
    for (let i = 0; i < 30; i++) {
      const sku = skus[i % 3]!;
      const r = await inventory.reserve(sku, { userId: `u${i}`, reservationId: `r${i}` });
      expect(r.ok).toBe(true);
      expected.push(`reserved:${sku}:r${i}:u${i}`);
      if (i % 5 === 0) {
        await inventory.release(sku, `r${i}`);
        expected.push(`released:${sku}:r${i}:u${i}:released`);
      } else if (i % 5 === 1) {
        await inventory.confirm(sku, `r${i}`);
        expected.push(`confirmed:${sku}:r${i}:u${i}`);
      }
    }
    const got: string[] = [];
    const consumer = new RedisStreamConsumer(redis, {
      streams: () => skus.map((s) => inventory.keys(s).events),
      group: "orders",
      consumer: "w1",
      handler: async (e) => {
        const ev = readStockEvent(e);
        expect(ev.quantity).toBe(1);
        expect(ev.at).toBeGreaterThan(1_600_000_000_000);
        got.push([ev.type, ev.sku, ev.reservationId, ev.userId, ev.cause].filter(Boolean).join(":"));
      },
    });
    await consumer.start();
    await until(() => got.length === expected.length, 10_000, "every event");
    await consumer.stop();
    expect(got.sort()).toEqual(expected.sort());
    for (const sku of skus) expect(await pending(inventory.keys(sku).events, "orders")).toBe(0);
    expect(() => readStockEvent({ fields: { type: "other" } })).toThrow(UnexpectedReplyError);
  });

  it('starts a new group at "$" when asked, and recreates a group whose stream was deleted', async () => {
    const stream = `${randomPrefix()}:s`;
    await redis.xadd(stream, "*", "old", "1");
    const seen: string[] = [];
    const errors: unknown[] = [];
    const consumer = new RedisStreamConsumer(redis, {
      streams: [stream],
      group: "late",
      consumer: "c",
      startId: "$",
      handler: async (e) => void seen.push(Object.keys(e.fields)[0]!),
      onError: (err) => errors.push(err),
    });
    await consumer.runOnce();
    await redis.xadd(stream, "*", "new", "1");
    await consumer.runOnce();
    expect(seen).toEqual(["new"]);

    await redis.del(stream);
    await redis.xadd(stream, "*", "reborn", "1");
    await expect(consumer.runOnce()).rejects.toThrow(/NOGROUP/);
    await redis.xadd(stream, "*", "after", "1");
    await consumer.runOnce(); // the group is created again at "$"
    await redis.xadd(stream, "*", "later", "1");
    await consumer.runOnce();
    expect(seen).toEqual(["new", "later"]);
  });

  it("works with a RESP2 client too", async () => {
    const resp2 = srv.client({ protocol: 2 });
    const stream = `${randomPrefix()}:s`;
    await resp2.xadd(stream, "*", "a", "1");
    const seen: string[] = [];
    const consumer = new RedisStreamConsumer(resp2, {
      streams: [stream],
      group: "g",
      consumer: "c",
      handler: async (e) => void seen.push(e.fields.a!),
    });
    expect((await consumer.runOnce()).acked).toBe(1);
    expect(seen).toEqual(["1"]);
  });

  it("stop() finishes the entries of the round in flight", async () => {
    const stream = `${randomPrefix()}:s`;
    for (let i = 0; i < 5; i++) await redis.xadd(stream, "*", "i", String(i));
    let handled = 0;
    const consumer = new RedisStreamConsumer(redis, {
      streams: [stream],
      group: "g",
      consumer: "c",
      batchSize: 5,
      handler: async () => {
        await sleep(30);
        handled++;
      },
    });
    await consumer.start();
    await until(() => handled >= 1, 5_000, "the first entry");
    await consumer.stop();
    expect(consumer.running).toBe(false);
    expect(handled).toBe(5);
    expect(await pending(stream, "g")).toBe(0);
  });

  it("validates options up front, naming the option", () => {
    const handler = async () => {};
    const base = { streams: ["s"], group: "g", consumer: "c", handler };
    const bad: [string, object][] = [
      ["streams", { ...base, streams: "s" }],
      ["group", { ...base, group: "a b" }],
      ["consumer", { ...base, consumer: "" }],
      ["handler", { ...base, handler: 1 }],
      ["batchSize", { ...base, batchSize: 0 }],
      ["claimIdleMs", { ...base, claimIdleMs: 0 }],
      ["maxDeliveries", { ...base, maxDeliveries: 0 }],
      ["startId", { ...base, startId: ">" }],
      ["deadLetterStream", { ...base, deadLetterStream: "x" }],
      ["deadLetterMaxLen", { ...base, deadLetterMaxLen: 0 }],
      ["options.maxDelivery", { ...base, maxDelivery: 3 }],
    ];
    for (const [argument, options] of bad) {
      expect(() => new RedisStreamConsumer(redis, options as never), argument).toThrow(
        expect.objectContaining({ name: "InvalidArgumentError", argument }),
      );
    }
    expect(() => new RedisStreamConsumer({} as never, base)).toThrow(InvalidArgumentError);
    expect(() => new RedisStreamPublisher(redis, { maxlen: 5 } as never)).toThrow(
      expect.objectContaining({ argument: "options.maxlen" }),
    );
  });
});

describe("defaultDeadLetterStream", () => {
  it("stays in the stream's hash slot", () => {
    expect(defaultDeadLetterStream("{fsk:sku-1}:events")).toBe("{fsk:sku-1}:events:dead");
    expect(defaultDeadLetterStream("orders")).toBe("{orders}:dead");
    for (const odd of ["a{}b", "a{b", "a}b"])
      expect(() => defaultDeadLetterStream(odd)).toThrow(InvalidArgumentError);
  });
});
