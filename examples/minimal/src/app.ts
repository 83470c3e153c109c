// An Express shop that existed before flash-sale-kit. The kit adds three things: a rate limit per client IP,
// a stock reservation per order, and the outbox (the order and its message committed together).
import { randomUUID } from "node:crypto";
import express, { type NextFunction, type Request, type Response } from "express";
import type { Redis } from "ioredis";
import type pg from "pg";
import { InvalidArgumentError } from "flash-sale-kit";
import { OutboxRelay, PostgresOutbox, RedisStreamPublisher, transaction } from "flash-sale-kit/outbox";
import { RateLimits, TokenBucket, clientIp, expressRateLimit, ipKey } from "flash-sale-kit/ratelimit";
import { Inventory } from "flash-sale-kit/stock";

const PER_IP = { capacity: 20, refillPerSecond: 5 };

/** `prefix` starts every Redis key the shop writes; `perIp` is the burst and refill of one client IP. */
export async function createShop(redis: Redis, db: pg.Pool, { prefix = "shop", perIp = PER_IP } = {}) {
  const inventory = new Inventory(redis, { prefix });
  const outbox = new PostgresOutbox(db, { table: "shop_outbox" });
  await outbox.migrate();
  await db.query(`CREATE TABLE IF NOT EXISTS shop_orders
    (id text PRIMARY KEY, sku text NOT NULL, user_id text NOT NULL, created_at timestamptz DEFAULT now())`);
  // Delivers every committed message at least once, here to a Redis stream per topic.
  const events = new RedisStreamPublisher(redis, { prefix: `${prefix}-events` });
  const relay = new OutboxRelay(outbox, { publish: events.publish, onError: console.error });
  const limits = new RateLimits<Request>([
    {
      name: "ip",
      bucket: new TokenBucket(redis, { prefix: `${prefix}-ip`, ...perIp }),
      // Behind one load balancer, which appends the client's address to X-Forwarded-For.
      key: (req) => ipKey(clientIp(req, { trustedProxies: 1 })),
    },
  ]);

  const app = express();
  app.use(expressRateLimit({ limits }));
  app.use(express.json());

  app.get("/stock/:sku", async (req, res) => {
    const stock = await inventory.snapshot(req.params.sku);
    if (stock === null) return res.status(404).json({ error: "UNKNOWN_SKU" });
    res.json({ available: stock.available, sold: stock.confirmed });
  });

  app.post("/orders", async (req, res) => {
    const { sku, userId } = (req.body ?? {}) as { sku: string; userId: string };
    const orderId = randomUUID();
    const held = await inventory.reserve(sku, { userId, reservationId: orderId });
    if (!held.ok) return res.status(held.reason === "UNKNOWN_SKU" ? 404 : 409).json({ error: held.reason });
    try {
      await transaction(db, async (tx) => {
        const order = { orderId, sku, userId };
        await tx.query(
          "INSERT INTO shop_orders (id, sku, user_id) VALUES ($1, $2, $3)",
          Object.values(order),
        );
        await outbox.enqueue(tx, { id: orderId, topic: "order-created", key: sku, payload: order });
      });
    } catch (err) {
      await inventory.release(sku, orderId); // no order, so the unit goes back on sale
      throw err;
    }
    // Should the process die before this line, the unit stays held (this stock has no holdMs): never sold twice.
    await inventory.confirm(sku, orderId);
    res.status(201).json({ orderId, remaining: held.remaining });
  });

  // Missing or bad ids (not strings, braces, too long) are refused by the kit before anything is written.
  app.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (!(err instanceof InvalidArgumentError)) return next(err);
    res.status(400).json({ error: "BAD_REQUEST", message: err.message });
  });

  return { app, inventory, outbox, relay, events };
}
