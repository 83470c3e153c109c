// The diagnostics channels of stock, locks and the outbox: each documented event fires with its documented
// payload (and the outcome set by Node on asyncEnd or error).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { PGlite } from "@electric-sql/pglite";
import { channels, events, type RelayRoundEvent } from "../../src/metrics/index.js";
import { Inventory, PostgresInventory } from "../../src/stock/index.js";
import { LockTimeoutError, SpinLock } from "../../src/lock/index.js";
import { OutboxRelay, PostgresInbox, PostgresOutbox, transaction } from "../../src/outbox/index.js";
import type { SqlClient } from "../../src/internal/sql.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";
import { at, recordEvents, recordTrace } from "./support.js";

let srv: PrivateRedis;
let redis: Redis;
let lite: PGlite;
let db: SqlClient;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
  lite = new PGlite();
  await lite.waitReady;
  db = lite as unknown as SqlClient;
});
afterAll(async () => {
  await srv?.stop();
  await lite?.close();
});

describe("stock channels", () => {
  it("Inventory: reserve, confirm and release payloads and results", async () => {
    const inventory = new Inventory(redis, { prefix: randomPrefix() });
    await inventory.setStock("s", 1);
    const rec = [channels.reserve, channels.confirm, channels.release].map(recordTrace);
    try {
      await inventory.reserve("s", { userId: "u1", reservationId: "r1" });
      await inventory.reserve("s", { userId: "u2", quantity: 1 });
      await inventory.release("s", "r1");
      await inventory.confirm("s", "r1");
    } finally {
      rec.forEach((r) => r.stop());
      await inventory.close();
    }
    const [reserve, confirm, release] = rec.map((r) => r.events);
    expect(at(reserve!, "start")).toEqual([
      { store: "redis", sku: "s", userId: "u1", quantity: 1, reservationId: "r1" },
      { store: "redis", sku: "s", userId: "u2", quantity: 1, reservationId: undefined },
    ]);
    expect(at(reserve!, "asyncEnd").map((p) => p.result)).toEqual([
      { ok: true, reservationId: "r1", remaining: 0 },
      { ok: false, reason: "SOLD_OUT" },
    ]);
    expect(at(release!, "asyncEnd")).toEqual([
      { store: "redis", sku: "s", reservationId: "r1", result: { ok: true } },
    ]);
    expect(at(confirm!, "asyncEnd")).toEqual([
      { store: "redis", sku: "s", reservationId: "r1", result: { ok: false, reason: "RELEASED" } },
    ]);
  });

  it("PostgresInventory: reserve payload with store postgresql", async () => {
    const inventory = new PostgresInventory(db, { tablePrefix: `inv_${randomPrefix().toLowerCase()}` });
    await inventory.migrate();
    await inventory.setStock("s", 1);
    const rec = recordTrace(channels.reserve);
    try {
      await inventory.reserve("s", { userId: "u1", reservationId: "r1" });
    } finally {
      rec.stop();
    }
    expect(at(rec.events, "asyncEnd")).toEqual([
      {
        store: "postgresql",
        sku: "s",
        userId: "u1",
        quantity: 1,
        reservationId: "r1",
        result: { ok: true, reservationId: "r1", remaining: 0 },
      },
    ]);
  });
});

describe("lock.acquire", () => {
  it("publishes kind, resource and wait; a held tryAcquire ends with null, a timeout with an error", async () => {
    const lock = new SpinLock(redis, { prefix: randomPrefix(), ttlMs: 10_000, acquireTimeoutMs: 0 });
    const rec = recordTrace(channels.acquire);
    try {
      const h = await lock.acquire("job");
      expect(await lock.tryAcquire("job")).toBeNull();
      await expect(lock.acquire("job")).rejects.toBeInstanceOf(LockTimeoutError);
      await h.release();
    } finally {
      rec.stop();
    }
    expect(at(rec.events, "start")).toEqual([
      { lock: "spin", resource: "job", wait: true },
      { lock: "spin", resource: "job", wait: false },
      { lock: "spin", resource: "job", wait: true },
    ]);
    const ends = at(rec.events, "asyncEnd");
    expect(ends[0]!.result).toMatchObject({ resource: "job" });
    expect(ends[1]!.result).toBeNull();
    const errors = at(rec.events, "error");
    expect(errors).toHaveLength(1);
    expect(errors[0]!.error).toBeInstanceOf(LockTimeoutError);
  });
});

describe("outbox channels", () => {
  it("publish per message, the relay round with its backlog, and process per inbox message", async () => {
    const table = `ob_${randomPrefix().toLowerCase()}`;
    const outbox = new PostgresOutbox(db, { table });
    await outbox.migrate();
    const inbox = new PostgresInbox(db, { table: `${table}_in` });
    await inbox.migrate();
    for (const id of ["a", "b"])
      await transaction(db, (tx) => outbox.enqueue(tx, { topic: "orders", id, payload: 1 }));
    const relay = new OutboxRelay(outbox, {
      maxAttempts: 1,
      publish: async (m) => {
        if (m.id === "b") throw new Error("broker down");
        await transaction(db, (tx) =>
          inbox.processOnce(tx, { consumer: "shop", messageId: m.id }, async () => {}),
        );
      },
    });
    const publish = recordTrace(channels.publish);
    const processRec = recordTrace(channels.process);
    const rounds = recordEvents<RelayRoundEvent>(events.relayRound);
    try {
      await relay.runOnce();
    } finally {
      publish.stop();
      processRec.stop();
      rounds.stop();
    }
    expect(at(publish.events, "start")).toEqual([
      { messageId: "a", topic: "orders", attempt: 1 },
      { messageId: "b", topic: "orders", attempt: 1 },
    ]);
    expect(at(publish.events, "error").map((p) => (p.error as Error).message)).toEqual(["broker down"]);
    expect(at(processRec.events, "asyncEnd")).toEqual([
      { consumer: "shop", messageId: "a", result: "processed" },
    ]);
    expect(rounds.messages).toEqual([
      { claimed: 2, sent: 1, retried: 0, dead: 1, resent: 0, pending: 0, deadTotal: 1, lagMs: 0 },
    ]);
  });
});
