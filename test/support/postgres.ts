// A private PostgreSQL database per test file on the machine's server (DATABASE_URL or 127.0.0.1:5432), and
// PGlite for runs without a server.
import { randomBytes } from "node:crypto";
import pg from "pg";

const ADMIN_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export interface PrivateDatabase {
  readonly url: string;
  readonly pool: pg.Pool;
  stop(): Promise<void>;
}

/** Creates a fresh database `fsk_<random>` and a pool on it; `stop()` ends the pool and drops the database. */
export async function startPostgres(poolSize = 10): Promise<PrivateDatabase> {
  const name = `fsk_${randomBytes(5).toString("hex")}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: poolSize });
  // DROP … WITH (FORCE) at teardown ends idle connections that pool.end() has not closed yet.
  pool.on("error", () => {});
  return {
    url: url.toString(),
    pool,
    async stop() {
      await pool.end();
      const a = new pg.Client({ connectionString: ADMIN_URL });
      await a.connect();
      // Other pools a test made have ended too, but their connections may still be closing: FORCE would end
      // them, and a pool without an error listener would raise it as an uncaught error. Wait for them first
      // (a few seconds at most: FORCE ends whatever is left).
      const deadline = Date.now() + 5_000;
      for (;;) {
        const { rows } = await a.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1",
          [name],
        );
        if (rows[0]!.n === 0 || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}
