// Runs the shop on a random port against the local Redis and PostgreSQL, as a user would, and leaves nothing
// behind: its Redis keys share a random prefix, its tables live in a schema of their own.
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, expect, test } from "vitest";
import { readStreamedMessage, type StreamedMessage } from "flash-sale-kit/outbox";
import { createShop } from "../src/app.js";

const run = `minimal_${randomBytes(6).toString("hex")}`; // the key prefix and the schema
const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const db = new pg.Pool({
  connectionString: process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test",
  options: `-c search_path=${run}`,
});
let shop: Awaited<ReturnType<typeof createShop>>;
let server: Server;
let base = "";

/** A request from the client `ip`, as the load balancer in front of the shop forwards it. */
async function call(path: string, ip: string, body?: unknown) {
  const res = await fetch(base + path, {
    method: body === undefined ? "GET" : "POST",
    headers: { "x-forwarded-for": ip, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
}

/** A stream entry's `[field, value, field, value…]` as pairs. */
function pairs(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

async function scanKeys(): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", `{${run}*`, "COUNT", 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== "0");
  return keys;
}

beforeAll(async () => {
  await db.query(`CREATE SCHEMA ${run}`);
  // Three requests per IP, then one token every 1000 s: the fourth is refused however slow the machine.
  shop = await createShop(redis, db, { prefix: run, perIp: { capacity: 3, refillPerSecond: 0.001 } });
  await shop.inventory.setStock("tee", 10, { perUserLimit: 1 });
  await shop.relay.start();
  server = shop.app.listen(0, "127.0.0.1");
  await once(server, "listening");
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await shop?.relay.stop();
  server?.closeAllConnections();
  if (server) await new Promise((resolve) => server.close(resolve));
  await db.query(`DROP SCHEMA IF EXISTS ${run} CASCADE`);
  const keys = await scanKeys();
  if (keys.length > 0) await redis.del(...keys);
  const left = await scanKeys();
  await db.end();
  redis.disconnect();
  expect(left).toEqual([]);
});

test("a buy reserves a unit and records the order; the same user's second buy is refused", async () => {
  const first = await call("/orders", "198.51.100.1", { sku: "tee", userId: "u1" });
  expect(first.status).toBe(201);
  expect(first.body).toEqual({ orderId: expect.stringMatching(/^[0-9a-f-]{36}$/), remaining: 9 });

  const second = await call("/orders", "198.51.100.1", { sku: "tee", userId: "u1" });
  expect(second).toMatchObject({ status: 409, body: { error: "LIMIT_REACHED" } });

  expect(await call("/stock/tee", "198.51.100.2")).toMatchObject({
    status: 200,
    body: { available: 9, sold: 1 },
  });
  const orders = await db.query("SELECT id, sku, user_id FROM shop_orders");
  expect(orders.rows).toEqual([{ id: first.body.orderId, sku: "tee", user_id: "u1" }]);
});

test("bad input is answered 400 and an unknown SKU 404, with nothing written", async () => {
  const missing = await call("/orders", "198.51.100.3", { sku: "tee" });
  expect(missing.status).toBe(400);
  expect(missing.body).toEqual({ error: "BAD_REQUEST", message: expect.stringMatching(/^userId /) });
  const braces = await call("/orders", "198.51.100.3", { sku: "t{e}e", userId: "u2" });
  expect(braces.status).toBe(400);
  expect(braces.body).toEqual({ error: "BAD_REQUEST", message: expect.stringMatching(/^sku /) });
  const unknown = await call("/orders", "198.51.100.4", { sku: "hat", userId: "u2" });
  expect(unknown.status).toBe(404);
  expect(unknown.body).toEqual({ error: "UNKNOWN_SKU" });
  const written = await db.query("SELECT count(*)::int AS n FROM shop_orders WHERE user_id = 'u2'");
  expect(written.rows).toEqual([{ n: 0 }]);
});

test("a client over its limit is refused with 429 and Retry-After", async () => {
  const ip = "203.0.113.9";
  for (const remaining of [2, 1, 0]) {
    const ok = await call("/stock/tee", ip);
    expect(ok.status).toBe(200);
    expect(ok.headers.get("ratelimit")).toMatch(new RegExp(`^"ip";r=${remaining};t=\\d+$`));
  }
  const refused = await call("/stock/tee", ip);
  expect(refused.status).toBe(429);
  expect(refused.body).toEqual({ error: "Too Many Requests", limit: "ip", retryAfterMs: expect.any(Number) });
  expect(refused.body.retryAfterMs).toBeGreaterThan(0);
  expect(refused.body.retryAfterMs).toBeLessThanOrEqual(1_000_000);
  expect(Number(refused.headers.get("retry-after"))).toBe(
    Math.ceil(Number(refused.body.retryAfterMs) / 1000),
  );
  // Another client is not affected.
  expect((await call("/stock/tee", "203.0.113.10")).status).toBe(200);
});

test("the order's message is relayed from the outbox to its Redis stream", async () => {
  const order = await call("/orders", "198.51.100.5", { sku: "tee", userId: "u3" });
  expect(order.status).toBe(201);
  const orderId = order.body.orderId as string;

  // Wait for the relay's XADD itself (a blocking read from the last entry seen), not for a clock.
  const reader = redis.duplicate();
  const stream = shop.events.streamKey("order-created");
  let last = "0";
  let relayed: StreamedMessage | undefined;
  try {
    while (relayed === undefined) {
      const reply = (await reader.xread("BLOCK", 0, "STREAMS", stream, last)) as [
        string,
        [string, string[]][],
      ][];
      for (const [id, flat] of reply[0]?.[1] ?? []) {
        last = id;
        const m = readStreamedMessage({ fields: Object.fromEntries(pairs(flat)) });
        if (m.id === orderId) relayed = m;
      }
    }
  } finally {
    reader.disconnect();
  }
  expect(relayed).toEqual({
    id: orderId,
    topic: "order-created",
    key: "tee",
    payload: { orderId, sku: "tee", userId: "u3" },
  });
  await shop.relay.stop(); // the round that published it has marked it sent
  expect(await shop.outbox.get(orderId)).toMatchObject({ status: "sent", attempts: 1 });
});
