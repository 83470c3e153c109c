// The benchmark's baseline (src/bench.ts): a bare Fastify server with one route that runs only the article's
// plain check-and-decrement Lua script on the same Redis, nothing else (no session, no limits, no token, no
// reservation record). Started as a child process with an IPC channel; reports { type: "ready", url }.
//   REDIS_URL (required), PORT (0: a free one), KEY the counter (set by the benchmark)
import Fastify from "fastify";
import { Redis } from "ioredis";

/** The textbook flash-sale script: decrement one counter if it is positive (as bench/stock.bench.ts). */
export const PLAIN_DECREMENT_LUA = `if (redis.call('exists', KEYS[1]) == 1) then
  local stock = tonumber(redis.call('get', KEYS[1]));
  if (stock == -1) then return 1; end;
  if (stock > 0) then
    redis.call('incrby', KEYS[1], -1);
    return stock;
  end;
  return 0;
end;
return -1;`;

if (import.meta.url === `file://${process.argv[1]}`) {
  const env = process.env;
  const redis = new Redis(env.REDIS_URL ?? "redis://127.0.0.1:6379");
  const key = env.KEY ?? "{bare}:stock";
  const sha = (await redis.script("LOAD", PLAIN_DECREMENT_LUA)) as string;
  const app = Fastify();
  app.post("/bare/buy", async (_req, reply) => {
    const left = (await redis.evalsha(sha, 1, key)) as number;
    return left > 0 ? reply.code(202).send({ remaining: left - 1 }) : reply.code(409).send({ left });
  });
  const url = await app.listen({ port: Number(env.PORT ?? 0), host: "127.0.0.1" });
  const stop = async () => {
    await app.close();
    redis.disconnect();
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop());
  process.once("disconnect", () => void stop());
  process.send?.({ type: "ready", url, pid: process.pid });
}
