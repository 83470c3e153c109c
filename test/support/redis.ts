// A private redis-server per test file (redis-memory-server on the installed binary), and random prefixes so
// tests never need a flush.
import { randomBytes } from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";
import { execFileSync } from "node:child_process";
import { RedisMemoryServer } from "redis-memory-server";

// redis-memory-server runs the installed binary and never downloads or builds one (set here, not in the
// published package.json, so that no machine path ships).
process.env.REDISMS_SYSTEM_BINARY ||= execFileSync("sh", ["-c", "command -v redis-server"], {
  encoding: "utf8",
}).trim();
process.env.REDISMS_DISABLE_POSTINSTALL ||= "1";

export interface PrivateRedis {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  /** A new client; closed by `stop()`. */
  client(options?: RedisOptions): Redis;
  /** Disconnects every client made here and stops the server. */
  stop(): Promise<void>;
  /** Stops the server process but keeps the handle (for outage tests); `start()` brings it back. */
  server: RedisMemoryServer;
}

export async function startRedis(args: string[] = []): Promise<PrivateRedis> {
  const server = await RedisMemoryServer.create({
    instance: { args: ["--save", "", "--appendonly", "no", ...args] },
  });
  const host = await server.getHost();
  const port = await server.getPort();
  const clients: Redis[] = [];
  return {
    host,
    port,
    url: `redis://${host}:${port}`,
    server,
    client(options = {}) {
      const c = new Redis({ host, port, maxRetriesPerRequest: 3, ...options });
      clients.push(c);
      return c;
    },
    async stop() {
      await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
      await server.stop();
    },
  };
}

/** A fresh key prefix, so every test works in its own keyspace. */
export function randomPrefix(label = "t"): string {
  return `${label}${randomBytes(6).toString("hex")}`;
}

/** Every key and its dump (type + value), for "changes nothing" assertions. */
export async function keyspace(redis: Redis, pattern = "*"): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const keys = (await redis.keys(pattern)).sort();
  for (const key of keys) {
    const dump = await redis.dump(key);
    out[key] =
      `${await redis.type(key)}:${dump === null ? "" : Buffer.from(dump).toString("base64")}:${await redis.pttl(key)}`;
  }
  return out;
}
