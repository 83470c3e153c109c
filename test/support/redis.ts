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

/**
 * `FSK_TEST_ACL=1` (`npm run test:acl`): every `client()` connects as a least-privilege ACL user that may not
 * run any command of `@dangerous` (DEBUG, KEYS, CONFIG, FLUSHALL, FLUSHDB, …) except INFO, so the library is
 * shown to need none of them. The tests' own inspection and set-up methods of that kind (`keys`, `config`,
 * `debug`, `flushall`, `flushdb`; the library calls none of them) run on a default-user connection, and
 * `stop()` fails when the server's ACL log shows a command refused to the restricted user.
 */
const ACL = process.env.FSK_TEST_ACL === "1";
const ACL_USER = "fsk-app";
const ADMIN_ONLY = ["keys", "config", "debug", "flushall", "flushdb"] as const;

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
  const password = randomBytes(12).toString("hex");
  const admin = ACL ? new Redis({ host, port, maxRetriesPerRequest: 3 }) : undefined;
  if (admin) {
    await admin.call("ACL", "SETUSER", ACL_USER, "reset", "on", `>${password}`, "~*", "&*", "+@all");
    await admin.call("ACL", "SETUSER", ACL_USER, "-@dangerous", "+info");
    await admin.call("ACL", "LOG", "RESET");
  }
  return {
    host,
    port,
    url: `redis://${host}:${port}`,
    server,
    client(options = {}) {
      const auth = admin ? { username: ACL_USER, password } : {};
      const c = new Redis({ host, port, maxRetriesPerRequest: 3, ...auth, ...options });
      if (admin) {
        const own = c as unknown as Record<string, unknown>;
        const root = admin as unknown as Record<string, (...args: unknown[]) => unknown>;
        for (const m of ADMIN_ONLY) own[m] = (...args: unknown[]) => root[m]!.apply(admin, args);
      }
      clients.push(c);
      return c;
    },
    async stop() {
      await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
      let refused: string[] = [];
      if (admin) {
        const log = (await admin.call("ACL", "LOG").catch(() => [])) as unknown[][];
        refused = log
          .map(
            (entry) =>
              Object.fromEntries(
                entry.reduce<[unknown, unknown][]>(
                  (pairs, v, i, all) => (i % 2 === 0 ? [...pairs, [v, all[i + 1]]] : pairs),
                  [],
                ),
              ) as Record<string, unknown>,
          )
          .filter((e) => e.username === ACL_USER)
          .map((e) => `${String(e.reason)} ${String(e.object)}`);
        admin.disconnect();
      }
      await server.stop();
      if (refused.length > 0) {
        throw new Error(`the ACL user ${ACL_USER} was refused: ${[...new Set(refused)].join(", ")}`);
      }
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
