// `npm start`: the shop on PORT (3000), with Redis at REDIS_URL and PostgreSQL at DATABASE_URL.
import { Redis } from "ioredis";
import pg from "pg";
import { createShop } from "./app.js";

const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const db = new pg.Pool({
  connectionString: process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test",
});
const { app, inventory, relay } = await createShop(redis, db);

if ((await inventory.snapshot("tee")) === null) await inventory.setStock("tee", 100, { perUserLimit: 1 });
await relay.start();
const port = Number(process.env.PORT ?? 3000);
const server = app.listen(port, () => console.log(`shop on http://localhost:${port}/stock/tee`));

const shutdown = async () => {
  server.close();
  await relay.stop(); // finishes the round in flight
  await db.end();
  redis.disconnect();
};
process.once("SIGINT", shutdown).once("SIGTERM", shutdown);
