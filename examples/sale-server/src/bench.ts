// `npm run bench` (in this folder; `npm run bench:example` at the root): the buy path of the sale server
// (session cookie → in-process checks → RateLimits → SaleGate.verify → Inventory.reserve → 202) side by side
// with a bare Fastify route that runs only the article's plain decrement script (src/bare.ts), on the same
// Redis, in alternating rounds, driven by autocannon from this process; the sale server at 1 process and at
// N processes on one port (`--processes`); and the CPU each request costs: the server's processes (/proc,
// Linux), this process (autocannon, the load generator), Redis (INFO cpu and commandstats).
//   ROUNDS (5) DURATION_S (5) PROCESSES (2: the many-process candidate); the ratios are medians of the rounds' ratios
//   CONNECTIONS (256): a sale's crowd is thousands of clients at once; fewer connections measure a quieter
//                 server, in which fewer requests share a Redis call (try 32 to see it)
//   REDIS_URL (default: a private redis-server, so nothing else shares it)
//   DATABASE_URL (default: a fresh database on postgres://postgres@127.0.0.1:5432, dropped at the end)
//   REDIS_AUTO_PIPELINING=0  the sale server's command connection without auto-pipelining (see infra.ts)
//   BARE_EMPTY=0  leave out the fourth candidate, the bare route given an empty POST
// The goal's baseline is the bare route given the buy's requests (session cookie, X-Forwarded-For, JSON body
// with the token), which it parses and ignores: the same traffic, only the handler differs. The bare route
// given an empty POST is printed too (it saves the load generator and the HTTP parser most of their work).
//   CHILD_NODE_ARGS  Node flags for the servers, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
// Every buy is a new user (own session cookie, own X-Forwarded-For through a trusted loopback proxy) with a
// valid single-use purchase token, so each one passes all the checks and reserves a unit; the stock is never
// sold out (a sold-out SKU is answered in process, which would flatter the path). The API-wide limit is
// raised so that it does not cap the run; the per-user and per-IP limits are checked as usual.
import { sign } from "@fastify/cookie";
import autocannon from "autocannon";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { PurchaseTokens } from "flash-sale-kit/gate";
import { Inventory } from "flash-sale-kit/stock";
import { Redis } from "ioredis";
import pg from "pg";
import { PLAIN_DECREMENT_LUA } from "./bare.js";
import { startChild, startServerChild, type ServerChild } from "./child.js";
import { startRedis } from "./infra.js";
import { sessionValue, SESSION_TTL_MS } from "./session.js";

const env = process.env;
const ROUNDS = Number(env.ROUNDS ?? 5);
const DURATION_S = Number(env.DURATION_S ?? 5);
const CONNECTIONS = Number(env.CONNECTIONS ?? 256);
const PROCESSES = Number(env.PROCESSES ?? 2);
const BARE = fileURLToPath(new URL("./bare.ts", import.meta.url));

interface RedisCpu {
  /** Seconds of CPU the Redis process used (user + system). */
  readonly cpuS: number;
  /** Microseconds spent in each command (commandstats `usec`; a script's includes its inner commands). */
  readonly usec: Record<string, number>;
  /** Calls of each command (a script's inner commands count too). */
  readonly calls: Record<string, number>;
}

async function redisCpu(redis: Redis): Promise<RedisCpu> {
  const cpu = await redis.info("cpu");
  const num = (k: string) => Number(new RegExp(`^${k}:([\\d.]+)`, "m").exec(cpu)?.[1] ?? 0);
  const usec: Record<string, number> = {};
  const calls: Record<string, number> = {};
  for (const line of (await redis.info("commandstats")).split("\n")) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line.trim());
    if (m) {
      usec[m[1]!] = Number(m[3]);
      calls[m[1]!] = Number(m[2]);
    }
  }
  return { cpuS: num("used_cpu_user") + num("used_cpu_sys"), usec, calls };
}

/**
 * CPU seconds (user + system) used so far by `pid` and its descendants that are alive (Linux /proc; 0
 * elsewhere): a server child and, with --processes, its cluster workers.
 */
function treeCpuS(pid: number): number {
  let procs: { pid: number; ppid: number; ticks: number }[];
  try {
    procs = readdirSync("/proc")
      .filter((d) => /^\d+$/.test(d))
      .flatMap((d) => {
        try {
          // Fields after the command name (which may hold spaces): state ppid … utime(14) stime(15).
          const f = readFileSync(`/proc/${d}/stat`, "utf8").split(") ").at(-1)!.split(" ");
          return [{ pid: Number(d), ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) }];
        } catch {
          return []; // exited meanwhile
        }
      });
  } catch {
    return 0;
  }
  const tree = new Set([pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of procs)
      if (!tree.has(p.pid) && tree.has(p.ppid)) {
        tree.add(p.pid);
        grew = true;
      }
  }
  return procs.filter((p) => tree.has(p.pid)).reduce((s, p) => s + p.ticks, 0) / 100;
}

const SCRIPT_COMMANDS = ["evalsha", "eval", "fcall"];
const scriptUsec = (a: RedisCpu, b: RedisCpu) =>
  SCRIPT_COMMANDS.reduce((s, c) => s + (b.usec[c] ?? 0) - (a.usec[c] ?? 0), 0);
const scriptCalls = (a: RedisCpu, b: RedisCpu) =>
  SCRIPT_COMMANDS.reduce((s, c) => s + (b.calls[c] ?? 0) - (a.calls[c] ?? 0), 0);

interface Round {
  readonly ok: number;
  readonly other: Record<string, number>;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  /** Redis CPU per successful request, µs: the whole process, and in scripts. */
  readonly redisUs: number;
  readonly scriptUs: number;
  /** Script calls per successful request (several requests share one call when they are batched). */
  readonly scriptCalls: number;
  /** Every command's calls per successful request (a script's inner commands included), the busiest first. */
  readonly commands: string;
  /** CPU per successful request, µs, of the server's processes, and of this process (the load generator). */
  readonly serverUs: number;
  readonly clientUs: number;
}

async function cannon(
  serverPid: number,
  url: URL,
  path: string,
  setup: ((r: autocannon.Request) => autocannon.Request) | undefined,
  seconds: number,
  probe: Redis,
  okStatus: number,
): Promise<Round> {
  const before = await redisCpu(probe);
  const serverBefore = treeCpuS(serverPid);
  const clientBefore = process.cpuUsage();
  const result = await autocannon({
    url: url.origin,
    connections: CONNECTIONS,
    duration: seconds,
    requests: [{ method: "POST", path, ...(setup && { setupRequest: setup }) }],
  });
  const client = process.cpuUsage(clientBefore);
  const serverS = treeCpuS(serverPid) - serverBefore;
  const after = await redisCpu(probe);
  const codes = Object.entries(result.statusCodeStats ?? {}).map(([k, v]) => [k, v.count ?? 0] as const);
  const ok = codes.find(([k]) => Number(k) === okStatus)?.[1] ?? 0;
  const other = Object.fromEntries(codes.filter(([k]) => Number(k) !== okStatus));
  if (result.errors) other.errors = result.errors;
  return {
    ok,
    other,
    rps: ok / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    redisUs: ok ? ((after.cpuS - before.cpuS) * 1e6) / ok : 0,
    scriptUs: ok ? scriptUsec(before, after) / ok : 0,
    scriptCalls: ok ? scriptCalls(before, after) / ok : 0,
    commands: Object.entries(after.calls)
      .map(([c, n]) => [c, (n - (before.calls[c] ?? 0)) / (ok || 1)] as const)
      .filter(([, n]) => n >= 0.01)
      .sort((x, y) => y[1] - x[1])
      .map(([c, n]) => `${c} ${n.toFixed(2)}`)
      .join(", "),
    serverUs: ok ? (serverS * 1e6) / ok : 0,
    clientUs: ok ? (client.user + client.system) / ok : 0,
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function privateDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  if (env.DATABASE_URL) return { url: env.DATABASE_URL, drop: async () => {} };
  const admin = "postgres://postgres@127.0.0.1:5432/postgres";
  const name = `fsk_bench_${randomBytes(4).toString("hex")}`;
  const run = async (sql: string) => {
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await run(`CREATE DATABASE ${name}`);
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => run(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

const ownRedis = env.REDIS_URL ? undefined : await startRedis(env);
const redisUrl = env.REDIS_URL ?? ownRedis!.url;
const probe = new Redis(redisUrl);
const db = await privateDatabase();
const prefix = `bench${randomBytes(4).toString("hex")}`;
const secrets = {
  TOKEN_SECRET: randomBytes(32).toString("hex"),
  SESSION_SECRET: randomBytes(32).toString("hex"),
  ADMIN_KEY: randomBytes(16).toString("hex"),
};
const serverEnv = {
  REDIS_URL: redisUrl,
  DATABASE_URL: db.url,
  PREFIX: prefix,
  ...secrets,
  TRUST_PROXY: "127.0.0.1/32,::1/128",
  ORDER_WORKER: "0",
  DEMO_SALE: "0",
  LIMITS: JSON.stringify({ api: [1_000_000, 1_000_000] }),
  ...(env.REDIS_AUTO_PIPELINING && { REDIS_AUTO_PIPELINING: env.REDIS_AUTO_PIPELINING }),
};
const children: ServerChild[] = [];
const sku = "bench-phone";
try {
  const bareKey = `{${prefix}:bare}:stock`;
  await probe.set(bareKey, 1_000_000_000);
  const bare = await startChild(BARE, [], { REDIS_URL: redisUrl, KEY: bareKey });
  children.push(bare);
  const one = await startServerChild(serverEnv, 1);
  children.push(one);
  const many = await startServerChild(serverEnv, PROCESSES);
  children.push(many);
  const admin = await fetch(new URL("/api/admin/sales", one.url), {
    method: "POST",
    headers: { "content-type": "application/json", "x-admin-key": secrets.ADMIN_KEY },
    body: JSON.stringify({
      sku,
      name: "Bench Phone",
      priceCents: 100,
      stock: 1_000_000_000,
      startsAt: Date.now() - 60_000,
    }),
  });
  if (admin.status !== 201) throw new Error(`create the sale: ${admin.status}`);
  for (const s of [one, many]) {
    const deadline = performance.now() + 30_000;
    while (!(await s.command("knows-sale", sku)).every((k) => k === true)) {
      if (performance.now() > deadline) throw new Error("a server process never learned of the sale");
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  // Buyers are minted before each round, not while it runs (minting is the harness's work, not the
  // server's, and on a small machine it would take CPU from the server): a session cookie signed with the
  // servers' secret (what POST /api/session sets) and a purchase token (what POST /api/purchase-token returns
  // after the CAPTCHA), both HMACs. autocannon takes the next unused one for each request, so every buy is
  // still a new user with a valid cookie and a single-use token; should a round outrun its pool, the rest
  // are minted on the fly (and counted).
  const tokens = new PurchaseTokens(probe, { secret: secrets.TOKEN_SECRET, ttlMs: 600_000, prefix });
  let buyer = 0;
  const redisNow = async () => {
    const [s, us] = await probe.time();
    return { ms: Number(s) * 1000 + Number(us) / 1000, at: performance.now() };
  };
  let clock = await redisNow();
  const mint = (): { headers: Record<string, string>; body: string } => {
    const n = ++buyer;
    const userId = `member-b${n}`;
    const now = Math.round(clock.ms + (performance.now() - clock.at));
    const cookie = sign(sessionValue(userId, now + SESSION_TTL_MS), secrets.SESSION_SECRET);
    const { token } = tokens.issueAt({ saleId: sku, sku, userId }, now);
    return {
      headers: {
        "content-type": "application/json",
        cookie: `fsk_session=${encodeURIComponent(cookie)}`,
        "x-forwarded-for": `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
      },
      body: JSON.stringify({ sku, token }),
    };
  };
  let pool: ReturnType<typeof mint>[] = [];
  let mintedLive = 0;
  const prepareBuyers = async (count: number) => {
    clock = await redisNow();
    pool = Array.from({ length: count }, mint).reverse(); // popped from the end: in minted order
    mintedLive = 0;
  };
  const buySetup = (req: autocannon.Request): autocannon.Request => {
    let b = pool.pop();
    if (b === undefined) {
      mintedLive++;
      b = mint();
    }
    return { ...req, headers: b.headers, body: b.body };
  };

  const candidates = [
    {
      name: "bare Fastify route, plain decrement script, the buy's requests (1 process)",
      pid: bare.pids[0]!,
      url: bare.url,
      path: "/bare/buy",
      setup: buySetup,
      ok: 202,
    },
    {
      name: "buy path: session, limits, token, reserve (1 process)",
      pid: one.pids[0]!,
      url: one.url,
      path: "/api/buy",
      setup: buySetup,
      ok: 202,
    },
    {
      name: `buy path: session, limits, token, reserve (${PROCESSES} processes)`,
      pid: many.pids[0]!,
      url: many.url,
      path: "/api/buy",
      setup: buySetup,
      ok: 202,
    },
    ...(env.BARE_EMPTY === "0"
      ? []
      : [
          {
            name: "bare Fastify route, plain decrement script, an empty POST (1 process)",
            pid: bare.pids[0]!,
            url: bare.url,
            path: "/bare/buy",
            setup: undefined,
            ok: 202,
          },
        ]),
  ];
  console.log(
    `buy path vs bare route: ${ROUNDS} rounds of ${DURATION_S} s each, ${CONNECTIONS} connections (autocannon in this process, buyers minted before each round), Redis ${redisUrl}`,
  );
  // Buyers to mint before a round: half as many again as the fastest round of that candidate so far did.
  const fastest = candidates.map(() => 20_000);
  const run = async (i: number, seconds: number) => {
    const c = candidates[i]!;
    if (c.setup) await prepareBuyers(Math.ceil(fastest[i]! * seconds * 1.5) + 1_000);
    const round = await cannon(c.pid, c.url, c.path, c.setup, seconds, probe, c.ok);
    fastest[i] = Math.max(fastest[i]!, round.rps);
    return { round, mintedLive: c.setup ? mintedLive : 0 };
  };
  // A short warm-up of each (JIT, connections, scripts loaded), not counted.
  for (const i of candidates.keys()) await run(i, 1);
  const rounds: Round[][] = candidates.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [i, c] of candidates.entries()) {
      const { round, mintedLive: live } = await run(i, DURATION_S);
      rounds[i]!.push(round);
      console.log(
        `  round ${r + 1} ${c.name}: ${round.rps.toFixed(0)}/s; CPU per request: server ${round.serverUs.toFixed(0)} µs, load generator ${round.clientUs.toFixed(0)} µs, Redis ${round.redisUs.toFixed(0)} µs (${round.scriptCalls.toFixed(2)} script calls; commands: ${round.commands})${live ? `; ${live} buyers minted during the round` : ""}${Object.keys(round.other).length ? ` (other answers: ${JSON.stringify(round.other)})` : ""}`,
      );
    }
  }

  // Redis CPU of one reservation script alone: Inventory.reserve from here, as the server calls it.
  const inv = new Inventory(probe, { prefix: `${prefix}x` });
  await inv.setStock("alone", 1_000_000, { perUserLimit: 1 });
  const K = 5_000;
  const a = await redisCpu(probe);
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < K) {
        const i = next++;
        await inv.reserve("alone", { userId: `u${i}`, reservationId: `r${i}` });
      }
    }),
  );
  const b = await redisCpu(probe);
  const reserveUs = scriptUsec(a, b) / K;
  await inv.close();
  // And of the plain decrement script alone, the same way.
  const sha = (await probe.script("LOAD", PLAIN_DECREMENT_LUA)) as string;
  const c = await redisCpu(probe);
  next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next++ < K) await probe.evalsha(sha, 1, bareKey);
    }),
  );
  const plainUs = scriptUsec(c, await redisCpu(probe)) / K;

  const rows = candidates.map((c, i) => {
    const rs = rounds[i]!;
    return {
      name: c.name,
      rps: median(rs.map((r) => r.rps)),
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      redisUs: median(rs.map((r) => r.redisUs)),
      scriptUs: median(rs.map((r) => r.scriptUs)),
      serverUs: median(rs.map((r) => r.serverUs)),
      clientUs: median(rs.map((r) => r.clientUs)),
      refused: rs.reduce((s, r) => s + Object.values(r.other).reduce((x, y) => x + y, 0), 0),
    };
  });
  const ratio = (i: number, j: number) => median(rounds[i]!.map((r, k) => r.rps / rounds[j]![k]!.rps));
  const buyVsBare = ratio(1, 0);
  const manyVsOne = ratio(2, 1);
  const buyVsEmpty = candidates.length > 3 ? ratio(1, 3) : undefined;
  console.log(`
| candidate | requests/s (median) | p50 ms | p99 ms | server CPU per request, µs | load generator CPU per request, µs | Redis CPU per request, µs (process / in scripts) | other answers |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.map((r) => `| ${r.name} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.serverUs.toFixed(0)} | ${r.clientUs.toFixed(0)} | ${r.redisUs.toFixed(1)} / ${r.scriptUs.toFixed(1)} | ${r.refused} |`).join("\n")}

buy path / bare route given the same requests (1 process each, median of the rounds' ratios): ${buyVsBare.toFixed(2)}x (goal >= 0.5x) ${buyVsBare >= 0.5 ? "ok" : "BELOW"}${buyVsEmpty === undefined ? "" : `; / bare route given an empty POST: ${buyVsEmpty.toFixed(2)}x`}
buy path at ${PROCESSES} processes / at 1: ${manyVsOne.toFixed(2)}x (goal > 1) ${manyVsOne > 1 ? "ok" : "NOT MORE"}
Redis CPU of one reservation script (Inventory.reserve alone, commandstats usec): ${reserveUs.toFixed(1)} µs; of the plain decrement script: ${plainUs.toFixed(1)} µs
machine: ${(await import("node:os")).cpus().length} cores, load average ${(await import("node:os")).loadavg()[0]!.toFixed(1)} at the end`);
} finally {
  for (const c of children.reverse()) await c.stop().catch(() => undefined);
  if (!ownRedis) {
    // A shared Redis keeps nothing of this run.
    for await (const keys of probe.scanStream({ match: `*${prefix}*`, count: 1000 }) as AsyncIterable<
      string[]
    >)
      if (keys.length) await probe.unlink(...keys);
  }
  probe.disconnect();
  await db.drop().catch(() => undefined);
  await ownRedis?.stop();
}
process.exit(0);
