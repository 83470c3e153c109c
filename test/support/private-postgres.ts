// A private PostgreSQL server for fault tests (restart, crash) that must not touch the machine's shared
// server: initdb into a temporary directory, postgres on a free port, stopped and deleted by destroy().
// Run as root, the server runs as the `postgres` user (initdb and postgres refuse to run as root).
import { execFile } from "node:child_process";
import { mkdtemp, rm, chown, readdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freeClusterPort } from "./ports.js";

const run = promisify(execFile);

export interface PrivatePostgresServer {
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication). */
  readonly url: string;
  readonly dataDir: string;
  /** Starts the server (again) and waits until it accepts connections. */
  start(): Promise<void>;
  /** Stops the server: `immediate` is a crash (no checkpoint, WAL replay at the next start). */
  stop(mode?: "smart" | "fast" | "immediate"): Promise<void>;
  /** An immediate stop followed by a start: what a crashed and restarted database server looks like. */
  restart(): Promise<void>;
  /** Stops the server if it runs and deletes its directory. */
  destroy(): Promise<void>;
}

/** The directory of PostgreSQL's server binaries: `PG_BIN`, else /usr/lib/postgresql/<15 or newest>/bin. */
export async function postgresBinDir(): Promise<string | undefined> {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = (await readdir(root)).filter((v) => existsSync(join(root, v, "bin", "initdb")));
  if (versions.length === 0) return undefined;
  const pick = versions.includes("15") ? "15" : versions.sort((a, b) => Number(b) - Number(a))[0]!;
  return join(root, pick, "bin");
}

/** Creates a fresh cluster (initdb) and starts it on a free port. */
export async function startPrivatePostgres(): Promise<PrivatePostgresServer> {
  const bin = await postgresBinDir();
  if (bin === undefined) throw new Error("no PostgreSQL server binaries (set PG_BIN)");
  const root = await mkdtemp(join(tmpdir(), "fsk-pg-"));
  const dataDir = join(root, "data");
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const { stdout } = await run("id", ["-u", "postgres"]);
    const { stdout: gid } = await run("id", ["-g", "postgres"]);
    await chown(root, Number(stdout.trim()), Number(gid.trim()));
  }
  // As root: run each binary as postgres (runuser keeps the environment minimal and needs no password).
  const pg = (tool: string, args: string[]) =>
    asRoot
      ? run("runuser", ["-u", "postgres", "--", join(bin, tool), ...args], { cwd: root })
      : run(join(bin, tool), args, { cwd: root });
  await pg("initdb", ["-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
  // Below the ephemeral range, in this worker's slice (see ports.ts).
  const port = await freeClusterPort(new Set());
  const options = [
    `-p ${port}`,
    "-c listen_addresses=127.0.0.1",
    `-k ${root}`,
    "-c fsync=off", // a crash here is a process crash, not a power loss: the OS keeps what was written
    "-c max_connections=50",
  ].join(" ");
  let running = false;
  const server: PrivatePostgresServer = {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dataDir,
    async start() {
      await pg("pg_ctl", ["-D", dataDir, "-l", join(root, "log"), "-o", options, "-w", "-t", "60", "start"]);
      running = true;
    },
    async stop(mode = "fast") {
      await pg("pg_ctl", ["-D", dataDir, "-m", mode, "-w", "-t", "60", "stop"]);
      running = false;
    },
    async restart() {
      await server.stop("immediate");
      await server.start();
    },
    async destroy() {
      if (running) await server.stop("immediate").catch(() => {});
      await rm(root, { recursive: true, force: true });
    },
  };
  try {
    await server.start();
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err;
  }
  return server;
}
