// Shared setup of the outbox tests: each suite runs on the machine's PostgreSQL (a private database) and on
// PGlite, with tables under a random name so that tests in one file do not see each other's rows.
import { randomBytes } from "node:crypto";
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import type { SqlClient } from "../../src/internal/sql.js";
import { startPostgres, type PrivateDatabase } from "../support/postgres.js";

export interface Backend {
  readonly name: "PostgreSQL" | "PGlite";
  /** The pool (PostgreSQL) or the PGlite instance. */
  readonly db: SqlClient;
  /** PostgreSQL only: the private database's URL (for child processes and LISTEN clients). */
  readonly url?: string;
  stop(): Promise<void>;
}

export const BACKENDS = [
  {
    name: "PostgreSQL" as const,
    async start(poolSize = 20): Promise<Backend> {
      const pg: PrivateDatabase = await startPostgres(poolSize);
      return { name: "PostgreSQL", db: pg.pool, url: pg.url, stop: () => pg.stop() };
    },
  },
  {
    name: "PGlite" as const,
    async start(): Promise<Backend> {
      const lite = new PGlite();
      await lite.waitReady;
      return { name: "PGlite", db: lite as unknown as SqlClient, stop: () => lite.close() };
    },
  },
];

/** A fresh lower-case table name. */
export function tableName(label: string): string {
  return `${label}_${randomBytes(4).toString("hex")}`;
}

export async function count(db: SqlClient, sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await db.query(sql, params);
  return Number((rows[0] as { n: number | string }).n);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true, or fails after `timeoutMs`. */
export async function until(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Runs a fixture under test/outbox/fixtures in a child Node process (tsx), with an IPC channel. */
export function fixture(
  name: string,
  env: Record<string, string>,
): { child: ChildProcess; next: () => Promise<unknown> } {
  const file = fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
  const child = spawn(process.execPath, ["--import", "tsx", file], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const inbox: unknown[] = [];
  const waiters: ((m: unknown) => void)[] = [];
  child.on("message", (m) => {
    const w = waiters.shift();
    if (w) w(m);
    else inbox.push(m);
  });
  const next = (): Promise<unknown> =>
    new Promise((resolve, reject) => {
      if (inbox.length > 0) return resolve(inbox.shift());
      const timer = setTimeout(() => reject(new Error(`no message from ${name} within 30 s`)), 30_000);
      child.once("exit", (code) => reject(new Error(`${name} exited with ${code}`)));
      waiters.push((m) => {
        clearTimeout(timer);
        resolve(m);
      });
    });
  return { child, next };
}

/** SIGKILLs a child and waits for it to be gone. */
export async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once("exit", r));
  child.kill("SIGKILL");
  await gone;
}
