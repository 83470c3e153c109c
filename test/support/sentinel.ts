// A local Sentinel deployment from the installed redis-server binary: one master, N replicas and M
// Sentinels on random ports, for failover tests. Replication can be delayed by a TCP relay between each
// replica and the master (the bytes from master to replica are held back `replicationDelayMs`), so that a
// master killed with SIGKILL can take acknowledged writes with it, as a crashed host or a partition does.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis, type RedisOptions } from "ioredis";
import { withLogs } from "./logs.js";
import { freeClusterPort } from "./ports.js";

const REDIS_SERVER = process.env.REDISMS_SYSTEM_BINARY ?? "redis-server";

export interface SentinelSetup {
  /** The name the Sentinels monitor. */
  readonly name: string;
  readonly sentinels: { host: string; port: number }[];
  /** Ports of the data nodes: [0] is the first master, then the replicas. */
  readonly nodePorts: number[];
  /** A client through the Sentinels (follows failovers); closed by `stop()`. */
  client(options?: RedisOptions): Redis;
  /** A direct client to one data node; closed by `stop()`. */
  direct(port: number, options?: RedisOptions): Redis;
  /** The port of the current master, as the Sentinels say. */
  masterPort(): Promise<number>;
  /** SIGKILL of one data node's process. */
  kill(port: number): void;
  /**
   * Starts a killed data node again, empty, as a replica of `masterPort` (directly, not through a relay):
   * an operator bringing a crashed host back. Resolves once its link to the master is up.
   */
  restartAsReplica(port: number, masterPort: number): Promise<void>;
  /** Resolves when the Sentinels name a master other than `oldPort` (and it answers as master). */
  waitForFailover(oldPort: number, timeoutMs: number): Promise<number>;
  stop(): Promise<void>;
}

export interface SentinelSetupOptions {
  readonly replicas?: number;
  readonly sentinels?: number;
  /** Hold back the master's replication stream this long on its way to each replica. @default 0 */
  readonly replicationDelayMs?: number;
  /** Sentinel's down-after-milliseconds. @default 1000 */
  readonly downAfterMs?: number;
  /** Extra redis-server arguments for the data nodes (e.g. appendonly). */
  readonly nodeArgs?: string[];
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A relay that passes replica → master at once and master → replica after `delayMs`, in order. */
function delayRelay(listenPort: number, targetPort: number, delayMs: number): Promise<Server> {
  const server = createServer((down: Socket) => {
    const up = connect(targetPort, "127.0.0.1");
    const queue: { at: number; chunk: Buffer }[] = [];
    let timer: NodeJS.Timeout | undefined;
    const flush = (): void => {
      timer = undefined;
      const now = Date.now();
      while (queue.length > 0 && queue[0]!.at <= now) down.write(queue.shift()!.chunk);
      if (queue.length > 0) timer = setTimeout(flush, queue[0]!.at - now);
    };
    up.on("data", (chunk: Buffer) => {
      queue.push({ at: Date.now() + delayMs, chunk });
      timer ??= setTimeout(flush, delayMs);
    });
    down.on("data", (chunk: Buffer) => up.write(chunk));
    const close = (): void => {
      if (timer) clearTimeout(timer);
      up.destroy();
      down.destroy();
    };
    up.on("error", close).on("close", close);
    down.on("error", close).on("close", close);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(listenPort, "127.0.0.1", () => resolve(server));
  });
}

export async function startSentinels(options: SentinelSetupOptions = {}): Promise<SentinelSetup> {
  const { replicas = 2, sentinels = 3, replicationDelayMs = 0, downAfterMs = 1000, nodeArgs = [] } = options;
  const name = "fskmaster";
  const dir = mkdtempSync(join(tmpdir(), "fsk-sentinel-"));
  const taken = new Set<number>();
  const nodePorts: number[] = [];
  for (let i = 0; i <= replicas; i++) nodePorts.push(await freeClusterPort(taken));
  const relayPorts: number[] = [];
  for (let i = 0; i < replicas; i++) relayPorts.push(await freeClusterPort(taken));
  const sentinelPorts: number[] = [];
  for (let i = 0; i < sentinels; i++) sentinelPorts.push(await freeClusterPort(taken));
  const procs = new Map<number, ChildProcess>();
  const relays: Server[] = [];
  const clients: Redis[] = [];
  const masterPort = nodePorts[0]!;

  const startNode = (port: number, extra: string[]): void => {
    const p = spawn(
      REDIS_SERVER,
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        dir,
        "--dbfilename",
        `dump-${port}.rdb`,
        "--appendfilename",
        `aof-${port}.aof`,
        "--appenddirname",
        `aof-${port}`,
        "--save",
        "",
        "--logfile",
        join(dir, `${port}.log`),
        ...nodeArgs,
        ...extra,
      ],
      { stdio: "ignore" },
    );
    procs.set(port, p);
  };

  const stop = async (): Promise<void> => {
    await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
    for (const p of procs.values()) p.kill("SIGKILL");
    await Promise.all(relays.map((r) => new Promise((res) => r.close(res))));
    rmSync(dir, { recursive: true, force: true });
  };

  const ping = (port: number) => async (): Promise<boolean> => {
    const c = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    c.on("error", () => undefined);
    try {
      await c.connect();
      return (await c.ping()) === "PONG";
    } finally {
      c.disconnect();
    }
  };

  try {
    startNode(masterPort, []);
    await waitFor(ping(masterPort), 10_000, `master on ${masterPort}`);
    for (let i = 0; i < replicas; i++) {
      relays.push(await delayRelay(relayPorts[i]!, masterPort, replicationDelayMs));
      // The replica reaches the master through its relay, but announces its own port, so the Sentinels
      // and the master's INFO name it directly.
      startNode(nodePorts[i + 1]!, ["--replicaof", "127.0.0.1", String(relayPorts[i])]);
    }
    for (const port of nodePorts.slice(1)) await waitFor(ping(port), 10_000, `replica on ${port}`);
    await waitFor(
      async () => {
        const c = new Redis({ port: masterPort, lazyConnect: true, maxRetriesPerRequest: 0 });
        try {
          await c.connect();
          const info = await c.info("replication");
          return (info.match(/state=online/g) ?? []).length === replicas;
        } finally {
          c.disconnect();
        }
      },
      20_000,
      "replicas online",
    );
    for (const port of sentinelPorts) {
      const conf = join(dir, `sentinel-${port}.conf`);
      writeFileSync(
        conf,
        [
          `port ${port}`,
          "bind 127.0.0.1",
          `dir ${dir}`,
          `logfile ${join(dir, `sentinel-${port}.log`)}`,
          `sentinel monitor ${name} 127.0.0.1 ${masterPort} ${Math.floor(sentinels / 2) + 1}`,
          `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
          `sentinel failover-timeout ${name} 10000`,
          `sentinel parallel-syncs ${name} 1`,
          "",
        ].join("\n"),
      );
      const p = spawn(REDIS_SERVER, [conf, "--sentinel"], { stdio: "ignore" });
      procs.set(port, p);
    }
    for (const port of sentinelPorts) await waitFor(ping(port), 10_000, `sentinel on ${port}`);
  } catch (err) {
    withLogs(err, dir);
    await stop();
    throw err;
  }

  const sentinelList = sentinelPorts.map((port) => ({ host: "127.0.0.1", port }));
  const askMaster = async (): Promise<number> => {
    for (const s of sentinelList) {
      const c = new Redis({ ...s, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      c.on("error", () => undefined);
      try {
        await c.connect();
        const reply = (await c.call("SENTINEL", "get-master-addr-by-name", name)) as string[] | null;
        if (reply) return Number(reply[1]);
      } catch {
        // try the next Sentinel
      } finally {
        c.disconnect();
      }
    }
    throw new Error("no Sentinel answered");
  };

  return {
    name,
    sentinels: sentinelList,
    nodePorts,
    client(opts = {}) {
      const c = new Redis({ sentinels: sentinelList, name, ...opts });
      clients.push(c);
      return c;
    },
    direct(port, opts = {}) {
      const c = new Redis({ port, ...opts });
      clients.push(c);
      return c;
    },
    masterPort: askMaster,
    kill(port) {
      procs.get(port)?.kill("SIGKILL");
    },
    async restartAsReplica(port, master) {
      // An empty node (its old files are removed) that comes back as a master would be a master with no
      // data; starting it as a replica is what an operator does after a failover.
      rmSync(join(dir, `dump-${port}.rdb`), { force: true });
      rmSync(join(dir, `aof-${port}`), { recursive: true, force: true });
      startNode(port, ["--replicaof", "127.0.0.1", String(master)]);
      await waitFor(
        async () => {
          const c = new Redis({
            port,
            lazyConnect: true,
            maxRetriesPerRequest: 0,
            retryStrategy: () => null,
          });
          c.on("error", () => undefined);
          try {
            await c.connect();
            return (await c.info("replication")).includes("master_link_status:up");
          } finally {
            c.disconnect();
          }
        },
        20_000,
        `replica on ${port}`,
      );
    },
    async waitForFailover(oldPort, timeoutMs) {
      let found = oldPort;
      await waitFor(
        async () => {
          found = await askMaster();
          if (found === oldPort) return false;
          const c = new Redis({ port: found, lazyConnect: true, maxRetriesPerRequest: 0 });
          try {
            await c.connect();
            return (await c.info("replication")).includes("role:master");
          } finally {
            c.disconnect();
          }
        },
        timeoutMs,
        "a failover",
      );
      return found;
    },
    stop,
  };
}
