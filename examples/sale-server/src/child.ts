// Starts the sale server (src/main.ts) as a child process with `--control`, for the load test and the
// benchmark: they drive it over HTTP from their own process, as real clients do, and use the IPC channel
// only for what HTTP must not offer (see control.ts).
import { fork, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import type { ControlCommand, ControlReady, ControlReply } from "./control.js";

const HERE = fileURLToPath(new URL("..", import.meta.url));
const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));

export interface ServerChild {
  readonly url: URL;
  readonly adminKey: string;
  readonly processes: number;
  readonly pids: readonly number[];
  /** Sends a command to every server process; resolves with each one's result. */
  command(op: ControlCommand["op"], sku?: string): Promise<unknown[]>;
  /** SIGTERM, then waits for the exit (SIGKILL after 15 s). */
  stop(): Promise<void>;
}

/**
 * Starts `processes` server processes on one port (a free one). `env` is the servers' whole environment
 * on top of PATH and the Redis binary settings (REDIS_URL is required; DATABASE_URL when processes > 1).
 */
export async function startServerChild(
  env: Record<string, string>,
  processes = 1,
  timeoutMs = 120_000,
): Promise<ServerChild> {
  return startChild(MAIN, ["--control", "--processes", String(processes)], env, processes, timeoutMs);
}

/**
 * Forks `script` (a TypeScript file of this example, through tsx) with an IPC channel and waits for its
 * `{ type: "ready", url }` message.
 */
export async function startChild(
  script: string,
  args: readonly string[],
  env: Record<string, string>,
  processes = 1,
  timeoutMs = 120_000,
): Promise<ServerChild> {
  const adminKey = env.ADMIN_KEY ?? randomBytes(16).toString("hex");
  const inherited: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    REDISMS_SYSTEM_BINARY: process.env.REDISMS_SYSTEM_BINARY,
    REDISMS_DISABLE_POSTINSTALL: "1",
  };
  const child: ChildProcess = fork(script, [...args], {
    cwd: HERE,
    // tsx, as `npm start` uses: inside the repository it resolves flash-sale-kit to the sources (tsconfig
    // paths), like the tests.
    // CHILD_NODE_ARGS: more Node flags for the child, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile
    // the servers under the benchmark (cluster workers inherit them).
    execArgv: ["--import", "tsx", ...(process.env.CHILD_NODE_ARGS?.split(" ").filter(Boolean) ?? [])],
    env: { ...inherited, HOST: "127.0.0.1", PORT: "0", ...env, ADMIN_KEY: adminKey },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const ready = await new Promise<ControlReady>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the sale server did not start in time")), timeoutMs);
    child.on("message", (m: { type?: string } & ControlReady) => {
      if (m.type !== "ready") return;
      clearTimeout(timer);
      resolve(m);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the sale server exited at start (${code})`));
    });
  });
  let next = 0;
  const command = (op: ControlCommand["op"], sku?: string) =>
    new Promise<unknown[]>((resolve, reject) => {
      const id = ++next;
      const on = (r: ControlReply) => {
        if (r?.id !== id) return;
        child.off("message", on);
        if (!r.ok) return reject(new Error(`${op}: ${r.error}`));
        resolve(processes > 1 ? (r.result as unknown[]) : [r.result]);
      };
      child.on("message", on);
      child.send({ id, op, ...(sku !== undefined && { sku }) } satisfies ControlCommand);
    });
  return {
    url: new URL(ready.url),
    adminKey,
    processes,
    pids: [child.pid ?? 0],
    command,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
