// Test helpers of the example: a key prefix per test, a private PostgreSQL database on the machine's server,
// and the clean-up of every key a test wrote in the machine's (shared) Redis.
import { randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import pg from "pg";

/** The machine's Redis, shared with other test runs: a test deletes every key it wrote there. */
export const SHARED_REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const ADMIN_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** A fresh key prefix: every key the app writes contains it, so a test can find and delete its own keys. */
export function randomPrefix(label: string): string {
  return `${label}${randomBytes(6).toString("hex")}`;
}

/**
 * Deletes every key containing `prefix` from the shared Redis and returns how many keys with it are left
 * afterwards (a test asserts 0). Keys are found with SCAN, never KEYS, since the server is shared.
 */
export async function deleteKeys(prefix: string, url = SHARED_REDIS_URL): Promise<number> {
  const redis = new Redis(url, { lazyConnect: true });
  await redis.connect();
  try {
    const scan = async () => {
      const found: string[] = [];
      for await (const keys of redis.scanStream({ match: `*${prefix}*`, count: 1000 }) as AsyncIterable<
        string[]
      >)
        found.push(...keys);
      return found;
    };
    const keys = await scan();
    for (let i = 0; i < keys.length; i += 500) await redis.unlink(...keys.slice(i, i + 500));
    return (await scan()).length;
  } finally {
    redis.disconnect();
  }
}

export interface PrivateDatabase {
  readonly url: string;
  stop(): Promise<void>;
}

/** A fresh database `fsk_<random>` on the machine's PostgreSQL; `stop()` drops it. */
export async function startPostgres(): Promise<PrivateDatabase> {
  const name = `fsk_${randomBytes(5).toString("hex")}`;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: ADMIN_URL });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    // WITH (FORCE) ends the connections the app's pool has not closed yet.
    stop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

/** Anything with Fastify's `inject` (a SaleApp's `app`). */
interface Injectable {
  inject(o: {
    method: "POST";
    url: string;
    payload: object;
  }): PromiseLike<{ statusCode: number; cookies: { name: string; value: string }[] }>;
}

/** Signs `user` in through POST /api/session and returns the `cookie` header that carries the session. */
export async function signIn(app: Injectable, user: string): Promise<string> {
  const res = await app.inject({ method: "POST", url: "/api/session", payload: { name: user } });
  const c = res.cookies.find((k) => k.name === "fsk_session");
  if (res.statusCode !== 200 || c === undefined) throw new Error(`sign-in of ${user}: ${res.statusCode}`);
  return `fsk_session=${c.value}`;
}

/** A reply as the API tests read it: the status and the JSON body. */
export interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown> & { error?: { code: string } };
}

/**
 * Requests to an app (`app()`: the app of a suite's `beforeAll`) as its users, through Fastify's inject: each
 * user signs in once and every request carries that user's session cookie (`null`: no cookie), plus `headers`.
 */
export function asUsers(app: () => FastifyInstance) {
  const cookies = new Map<string, string>();
  /** The session cookie of `user` (signed in on first use). */
  const cookieOf = async (user: string): Promise<string> => {
    let c = cookies.get(user);
    if (c === undefined) cookies.set(user, (c = await signIn(app(), user)));
    return c;
  };
  const call = async (
    method: "GET" | "POST",
    url: string,
    user: string | null,
    body?: object,
    headers: Record<string, string> = {},
  ): Promise<Answer> => {
    const res = await app().inject({
      method,
      url,
      headers: { ...(user !== null && { cookie: await cookieOf(user) }), ...headers },
      ...(body && { payload: body }),
    });
    return { status: res.statusCode, body: res.json() as Answer["body"] };
  };
  return { call, cookieOf };
}
