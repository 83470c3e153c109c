// A local Redis Cluster from the installed redis-server binary: N masters (and optional replicas) on random
// ports, created with `redis-cli --cluster create`.
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Cluster, Redis, type ClusterOptions } from "ioredis";
import { withLogs } from "./logs.js";
import { freeClusterPort } from "./ports.js";

const run = promisify(execFile);
const REDIS_SERVER = process.env.REDISMS_SYSTEM_BINARY ?? "redis-server";

export interface LocalCluster {
  readonly ports: number[];
  readonly nodes: { host: string; port: number }[];
  client(options?: ClusterOptions): Cluster;
  /** Kills one node's process (SIGKILL) — for failover tests. */
  kill(port: number): void;
  /** A plain (non-cluster) connection to the node on `port`, for administration commands; closed by stop. */
  admin(port: number): Redis;
  /** The port of the master serving `slot` now (asked of the first node). */
  ownerOf(slot: number): Promise<number>;
  /**
   * Moves `slot` to the master on port `to` the way `redis-cli --cluster reshard` does, but slowly: SETSLOT
   * IMPORTING on the target and MIGRATING on the source, MIGRATE of at most `batchSize` keys at a time with
   * `between()` awaited before each batch and once after the last, then SETSLOT NODE on every master.
   */
  migrateSlot(slot: number, to: number, options?: MigrateOptions): Promise<MigrateReport>;
  stop(): Promise<void>;
}

/** How {@link LocalCluster.migrateSlot} paces a migration. */
export interface MigrateOptions {
  /** Keys per MIGRATE. @default 1 */
  readonly batchSize?: number;
  /** Awaited while the slot is open: before each MIGRATE and once after the last. @default nothing */
  readonly between?: (batch: number) => Promise<void>;
}

/** What {@link LocalCluster.migrateSlot} did. */
export interface MigrateReport {
  readonly slot: number;
  readonly from: number;
  readonly to: number;
  /** Keys moved by MIGRATE (keys created on the target while the slot was open are not counted). */
  readonly keys: number;
  readonly batches: number;
  /** From SETSLOT IMPORTING to the last SETSLOT NODE, measured. */
  readonly openMs: number;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The port of the master that `node` says serves `slot`. */
async function ownerOf(node: Redis, slot: number): Promise<number> {
  const shards = (await node.cluster("SLOTS")) as unknown as [number, number, [string, number]][];
  const owner = shards.find(([a, b]) => slot >= a && slot <= b);
  if (owner === undefined) throw new Error(`slot ${slot} has no owner`);
  return owner[2][1];
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
  let migrating: Promise<unknown> = Promise.resolve();
  // One plain connection per node for the administration commands of migrateSlot.
  const admins = new Map<number, Redis>();
  const admin = (port: number): Redis => {
    let c = admins.get(port);
    if (c === undefined) {
      c = new Redis({ port, maxRetriesPerRequest: 0 });
      // A node a test kills refuses reconnections until stop(): expected, not to be printed.
      c.on("error", () => undefined);
      admins.set(port, c);
      clients.push(c);
    }
    return c;
  };
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
          // Refused until the server listens: an expected error, not one to print.
          c.on("error", () => undefined);
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
          // Refused until the server listens: an expected error, not one to print.
          c.on("error", () => undefined);
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
    // cluster_state:ok comes before every node lists the replicas: wait until each node's CLUSTER SLOTS
    // shows every shard with all of them, so tests can read a shard's replica from it.
    for (const port of ports) {
      await waitFor(
        async () => {
          const slots = (await admin(port).cluster("SLOTS")) as unknown as unknown[][];
          return slots.length >= masters && slots.every((shard) => shard.length === 3 + replicas);
        },
        20_000,
        `every shard with ${replicas} replica(s) in CLUSTER SLOTS of ${port}`,
      );
    }
  } catch (err) {
    withLogs(err, dir);
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
    admin,
    async ownerOf(slot) {
      return ownerOf(admin(ports[0]!), slot);
    },
    async migrateSlot(slot, to, { batchSize = 1, between = async () => undefined } = {}) {
      const first = admin(ports[0]!);
      const from = await ownerOf(first, slot);
      if (from === to) throw new Error(`slot ${slot} is already on ${to}`);
      const source = admin(from);
      const target = admin(to);
      const [sourceId, targetId] = (await Promise.all([source.cluster("MYID"), target.cluster("MYID")])) as [
        string,
        string,
      ];
      const opened = performance.now();
      await target.cluster("SETSLOT", slot, "IMPORTING", sourceId);
      await source.cluster("SETSLOT", slot, "MIGRATING", targetId);
      let keys = 0;
      let batches = 0;
      for (;;) {
        await between(batches);
        const batch = (await source.cluster("GETKEYSINSLOT", slot, batchSize)) as string[];
        if (batch.length === 0) break;
        // One MIGRATE at a time across the cluster: MIGRATE blocks its source until the target answers, so
        // two migrations in opposite directions (or a cycle of three) would each wait on the other.
        const turn = migrating.then(() => source.migrate("127.0.0.1", to, "", 0, 5000, "KEYS", ...batch));
        migrating = turn.catch(() => undefined);
        await turn;
        keys += batch.length;
        batches++;
      }
      // Closing is serialised too. SETSLOT NODE on the importing target bumps its config epoch without
      // consensus; two targets bumping at once can draw the same epoch, and then a master may keep (or take
      // back from a late gossip message) the old owner for good. One close at a time, each waiting until
      // every master agrees on the owner and on the current epoch, keeps the target's epoch the highest.
      let openMs = 0;
      const close = migrating.then(async () => {
        // The target first (it then answers for the slot), then the source, then the others, as redis-cli.
        await target.cluster("SETSLOT", slot, "NODE", targetId);
        await source.cluster("SETSLOT", slot, "NODE", targetId);
        for (const port of ports.slice(0, masters)) {
          if (port !== to && port !== from) await admin(port).cluster("SETSLOT", slot, "NODE", targetId);
        }
        openMs = performance.now() - opened;
        await waitFor(
          async () => {
            const views = await Promise.all(
              ports.slice(0, masters).map(async (port) => {
                const info = String(await admin(port).cluster("INFO"));
                return {
                  owner: await ownerOf(admin(port), slot),
                  epoch: /cluster_current_epoch:(\d+)/.exec(info)?.[1],
                };
              }),
            );
            return views.every((v) => v.owner === to && v.epoch === views[0]!.epoch);
          },
          20_000,
          `every master to see slot ${slot} on ${to}`,
        );
      });
      migrating = close.catch(() => undefined);
      await close;
      return { slot, from, to, keys, batches, openMs };
    },
    stop,
  };
}
