// RedisStreamConsumer and RedisStreamPublisher on a local 3-master Redis Cluster: a group per stream key, streams
// spread over several nodes, reclaim and dead letters in each stream's own slot.
import type { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/errors.js";
import {
  RedisStreamConsumer,
  RedisStreamPublisher,
  defaultDeadLetterStream,
  readStreamedMessage,
  type StreamEntry,
} from "../../src/outbox/index.js";
import { readStockEvent } from "../../src/orders/index.js";
import { Inventory } from "../../src/stock/index.js";
import { startCluster, type LocalCluster } from "../support/cluster.js";
import { randomPrefix } from "../support/redis.js";
import { sleep, until } from "./helpers.js";

let cluster: LocalCluster;
let redis: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ masters: 3 });
  redis = cluster.client();
});
afterAll(async () => cluster?.stop());

async function slot(key: string): Promise<number> {
  return Number(await redis.cluster("KEYSLOT", key));
}

/** The port of the master serving a slot. */
async function nodeOf(key: string): Promise<number> {
  const s = await slot(key);
  const slots = (await redis.cluster("SLOTS")) as unknown as [number, number, [string, number]][];
  const range = slots.find(([from, to]) => s >= from && s <= to);
  return range![2][1];
}

describe("RedisStreamConsumer on Redis Cluster", () => {
  it("consumes Inventory event streams living on different nodes, each entry once", async () => {
    const inventory = new Inventory(redis, { prefix: randomPrefix() });
    const skus = Array.from({ length: 8 }, (_, i) => `sku-${i}`);
    const streams = skus.map((s) => inventory.keys(s).events);
    expect(new Set(await Promise.all(streams.map(nodeOf))).size).toBeGreaterThanOrEqual(2);
    for (const sku of skus) await inventory.setStock(sku, 100, { perUserLimit: 10 });
    let events = 0;
    for (let i = 0; i < 200; i++) {
      const sku = skus[i % skus.length]!;
      await inventory.reserve(sku, { userId: `u${i % 13}`, reservationId: `r${i}` });
      events++;
      if (i % 4 === 0) {
        await inventory.release(sku, `r${i}`);
        events++;
      }
    }
    const seen = new Map<string, StreamEntry>();
    const consumer = new RedisStreamConsumer(redis, {
      streams,
      group: "orders",
      consumer: "w1",
      batchSize: 20,
      handler: async (e) => {
        const key = `${e.stream}/${e.id}`;
        expect(seen.has(key)).toBe(false);
        seen.set(key, e);
        readStockEvent(e);
      },
    });
    await consumer.start();
    await until(() => seen.size === events, 20_000, "every event");
    await consumer.stop();
    expect([...seen.values()].every((e) => e.deliveries === 1)).toBe(true);
    for (const stream of streams) {
      const summary = (await redis.call("XPENDING", stream, "orders")) as [number];
      expect(Number(summary[0])).toBe(0);
    }
  });

  it("reclaims and dead-letters in the stream's own slot", async () => {
    const publisher = new RedisStreamPublisher(redis, { prefix: randomPrefix() });
    const topics = ["alpha", "bravo", "charlie", "delta"];
    const streams = topics.map((t) => publisher.streamKey(t));
    for (const stream of streams)
      expect(await slot(defaultDeadLetterStream(stream))).toBe(await slot(stream));
    const consumer = new RedisStreamConsumer(redis, {
      streams,
      group: "g",
      consumer: "heir",
      claimIdleMs: 150,
      maxDeliveries: 2,
      handler: async (e) => {
        const m = readStreamedMessage<{ poison?: boolean }>(e);
        if (m.payload.poison) throw new Error(`poison ${m.id}`);
      },
    });
    await consumer.runOnce(); // groups
    for (const [i, topic] of topics.entries()) {
      await publisher.publish({ id: `ok-${i}`, topic, key: null, payload: {}, attempt: 1, createdAt: 0 });
      await publisher.publish({
        id: `bad-${i}`,
        topic,
        key: null,
        payload: { poison: true },
        attempt: 1,
        createdAt: 0,
      });
    }
    // A consumer that reads everything and dies.
    for (const stream of streams) {
      await redis.call("XREADGROUP", "GROUP", "g", "ghost", "COUNT", 10, "STREAMS", stream, ">");
    }
    await sleep(200);
    const totals = { delivered: 0, acked: 0, failed: 0, deadLettered: 0 };
    for (let i = 0; i < 10 && totals.deadLettered < 4; i++) {
      const r = await consumer.runOnce();
      for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += r[k];
      await sleep(60);
    }
    expect(totals).toEqual({ delivered: 8, acked: 4, failed: 4, deadLettered: 4 });
    for (const [i, stream] of streams.entries()) {
      const letters = await redis.xrange(defaultDeadLetterStream(stream), "-", "+");
      expect(letters).toHaveLength(1);
      const fields = letters[0]![1];
      expect(fields[fields.indexOf("id") + 1]).toBe(`bad-${i}`);
      expect(fields[fields.indexOf("dead.error") + 1]).toBe(`Error: poison bad-${i}`);
      expect(fields[fields.indexOf("dead.deliveries") + 1]).toBe("2");
    }
  });

  it("refuses a dead-letter key in another slot, naming the option, before touching Redis", async () => {
    const stream = `${randomPrefix()}:orders`; // no hash tag: the whole key decides the slot
    const elsewhere = (s: string) => `dead:${s}`;
    expect(await slot(elsewhere(stream))).not.toBe(await slot(stream));
    const options = { group: "g", consumer: "c", handler: async () => {}, deadLetterStream: elsewhere };
    // Known streams: the constructor refuses.
    expect(() => new RedisStreamConsumer(redis, { ...options, streams: [stream] })).toThrow(
      expect.objectContaining({ name: "InvalidArgumentError", argument: "deadLetterStream" }),
    );
    // Streams from a function: the round refuses, before creating the group (nothing written).
    const consumer = new RedisStreamConsumer(redis, { ...options, streams: () => [stream] });
    const err = await consumer.runOnce().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err).toMatchObject({ argument: "deadLetterStream" });
    expect((err as Error).message).toContain("slot");
    expect(() => consumer.deadLetterStream(stream)).toThrow(InvalidArgumentError);
    expect(await redis.exists(stream)).toBe(0);
  });

  it("accepts a custom dead-letter key in the stream's slot and dead-letters there", async () => {
    const publisher = new RedisStreamPublisher(redis, { prefix: randomPrefix() });
    const stream = publisher.streamKey("orders");
    const dlq = (s: string) => `${s}:poison`;
    expect(await slot(dlq(stream))).toBe(await slot(stream));
    const consumer = new RedisStreamConsumer(redis, {
      streams: [stream],
      group: "g",
      consumer: "c",
      maxDeliveries: 1,
      deadLetterStream: dlq,
      handler: async () => {
        throw new Error("poison");
      },
    });
    await publisher.publish({ id: "p-1", topic: "orders", key: null, payload: {}, attempt: 1, createdAt: 0 });
    expect(await consumer.runOnce()).toEqual({ delivered: 1, acked: 0, failed: 1, deadLettered: 1 });
    expect(await redis.xlen(dlq(stream))).toBe(1);
  });
});
