// A local Redis Cluster from the installed redis-server binary: N masters (and optional replicas) on random
// ports, created with `redis-cli --cluster create`.
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Cluster, Redis, type ClusterOptions } from "ioredis";
import { freeClusterPort } from "./ports.js";

const run = promisify(execFile);
const REDIS_SERVER = process.env.REDISMS_SYSTEM_BINARY ?? "redis-server";

export interface LocalCluster {
  readonly ports: number[];
  readonly nodes: { host: string; port: number }[];
  client(options?: ClusterOptions): Cluster;
  /** Kills one node's process (SIGKILL) — for failover tests. */
  kill(port: number): void;
  stop(): Promise<void>;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export async function startCluster({ masters = 3, replicas = 0 } = {}): Promise<LocalCluster> {
  const dir = mkdtempSync(join(tmpdir(), "fsk-cluster-"));
  const taken = new Set<number>();
  const total = masters * (1 + replicas);
  const ports: number[] = [];
  for (let i = 0; i < total; i++) ports.push(await freeClusterPort(taken));
  const procs = new Map<number, ChildProcess>();
  for (const port of ports) {
    const p = spawn(
      REDIS_SERVER,
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        join(dir, `nodes-${port}.conf`),
        "--cluster-node-timeout",
        "2000",
        "--dir",
        dir,
        "--save",
        "",
        "--appendonly",
        "no",
        "--logfile",
        join(dir, `${port}.log`),
      ],
      { stdio: "ignore" },
    );
    procs.set(port, p);
  }
  const clients: (Cluster | Redis)[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
    for (const p of procs.values()) p.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) {
      await waitFor(
        async () => {
          const c = new Redis({
            port,
            lazyConnect: true,
            maxRetriesPerRequest: 0,
            retryStrategy: () => null,
          });
          try {
            await c.connect();
            return (await c.ping()) === "PONG";
          } finally {
            c.disconnect();
          }
        },
        10_000,
        `redis-server on ${port}`,
      );
    }
    await run("redis-cli", [
      "--cluster",
      "create",
      ...ports.map((p) => `127.0.0.1:${p}`),
      "--cluster-replicas",
      String(replicas),
      "--cluster-yes",
    ]);
    for (const port of ports) {
      await waitFor(
        async () => {
          const c = new Redis({
            port,
            lazyConnect: true,
            maxRetriesPerRequest: 0,
            retryStrategy: () => null,
          });
          try {
            await c.connect();
            const info = await c.cluster("INFO");
            return String(info).includes("cluster_state:ok");
          } finally {
            c.disconnect();
          }
        },
        20_000,
        `cluster_state:ok on ${port}`,
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const nodes = ports.map((port) => ({ host: "127.0.0.1", port }));
  return {
    ports,
    nodes,
    client(options = {}) {
      const c = new Cluster(nodes.slice(0, masters), {
        redisOptions: { maxRetriesPerRequest: 3 },
        ...options,
      });
      clients.push(c);
      return c;
    },
    kill(port) {
      procs.get(port)?.kill("SIGKILL");
    },
    stop,
  };
}
