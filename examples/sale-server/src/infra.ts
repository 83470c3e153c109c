// Connections for the example: the real servers when REDIS_URL / DATABASE_URL are set, else a private
// redis-server (redis-memory-server on the installed binary) and an in-process PGlite database.
import { execFileSync } from "node:child_process";
import { PGlite } from "@electric-sql/pglite";
import { Redis } from "ioredis";
import pg from "pg";
import { RedisMemoryServer } from "redis-memory-server";
import type { SqlClient } from "flash-sale-kit";

export interface Infra {
  /** Commands (scripts, reads, writes); auto-pipelined unless REDIS_AUTO_PIPELINING=0. */
  readonly redis: Redis;
  /** Makes another connection to the same Redis (subscriber mode, blocking stream reads). */
  readonly connect: () => Redis;
  readonly db: SqlClient;
  readonly redisUrl: string;
  readonly databaseLabel: string;
  close(): Promise<void>;
}

/** A private redis-server (the installed binary, nothing saved to disk). */
export async function startRedis(
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ readonly url: string; stop(): Promise<unknown> }> {
  const server = await RedisMemoryServer.create({
    instance: { args: ["--save", "", "--appendonly", "no"] },
    // The installed redis-server; redis-memory-server would otherwise download and compile one.
    binary: { systemBinary: env.REDISMS_SYSTEM_BINARY || installedRedisServer() },
  });
  return { url: `redis://${await server.getHost()}:${await server.getPort()}`, stop: () => server.stop() };
}

export async function startInfra(env: NodeJS.ProcessEnv = process.env): Promise<Infra> {
  const closers: (() => Promise<unknown>)[] = [];
  let redisUrl = env.REDIS_URL;
  if (!redisUrl) {
    const server = await startRedis(env);
    redisUrl = server.url;
    closers.push(() => server.stop());
  }
  const url = redisUrl;
  const made: Redis[] = [];
  const connect = (autoPipelining = false) => {
    const c = new Redis(url, { maxRetriesPerRequest: 2, enableAutoPipelining: autoPipelining });
    made.push(c);
    return c;
  };
  // The command connection auto-pipelines: the commands issued during one turn of the event loop (many
  // requests' scripts, under load) leave in one write and come back in one read, instead of one socket
  // write each. The other connections (subscriber) do not need it.
  const redis = connect(env.REDIS_AUTO_PIPELINING !== "0");

  let db: SqlClient;
  let databaseLabel: string;
  if (env.DATABASE_URL) {
    const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: 10 });
    pool.on("error", () => {});
    db = pool;
    databaseLabel = env.DATABASE_URL.replace(/\/\/[^@]*@/, "//");
    closers.push(() => pool.end());
  } else {
    const lite = new PGlite();
    await lite.waitReady;
    db = lite;
    databaseLabel = "PGlite (in memory)";
    closers.push(() => lite.close());
  }
  return {
    redis,
    connect,
    db,
    redisUrl: url,
    databaseLabel,
    async close() {
      await Promise.all(made.map((c) => c.quit().catch(() => c.disconnect())));
      for (const close of closers.reverse()) await close().catch(() => undefined);
    },
  };
}

function installedRedisServer(): string {
  try {
    return execFileSync("sh", ["-c", "command -v redis-server"]).toString().trim();
  } catch {
    throw new Error("no redis-server on PATH: install Redis, or set REDIS_URL to a running server");
  }
}
