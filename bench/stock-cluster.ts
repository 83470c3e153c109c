// The cluster part of `npm run bench -- stock`: on a local 3-master Redis Cluster, Inventory.reserve of one
// hot SKU in one bucket (one slot, one master) next to the same SKU in `buckets: 3`, and where each master's
// script time (INFO commandstats, usec of EVALSHA + EVAL) goes; then a sale of a 3-bucket SKU to a crowd
// larger than its stock, with its books checked.
import { randomBytes } from "node:crypto";
import type { Cluster, Redis } from "ioredis";
import { Inventory, MAX_QUANTITY, type ReserveResult } from "../src/stock/index.js";
import { startCluster } from "../test/support/cluster.js";
import { compare, ratio, table, type BenchContext } from "./lib.js";

/** Script calls and microseconds (EVALSHA + EVAL) of one node since its last CONFIG RESETSTAT. */
async function scriptStats(node: Redis): Promise<{ calls: number; usec: number }> {
  const info = await node.info("commandstats");
  let calls = 0;
  let usec = 0;
  for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+),usec=(\d+)/gm)) {
    calls += Number(m[1]);
    usec += Number(m[2]);
  }
  return { calls, usec };
}

/** Runs `total` calls of `fn` with `concurrency` workers, then returns each master's share of script time. */
async function shares(
  masters: Redis[],
  total: number,
  concurrency: number,
  fn: (i: number) => Promise<unknown>,
): Promise<{ usec: number[]; calls: number[]; perCallUs: number }> {
  await Promise.all(masters.map((m) => m.config("RESETSTAT")));
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) await fn(next++);
    }),
  );
  const stats = await Promise.all(masters.map(scriptStats));
  const usec = stats.map((s) => s.usec);
  return {
    usec,
    calls: stats.map((s) => s.calls),
    perCallUs: usec.reduce((a, b) => a + b, 0) / total,
  };
}

const pct = (xs: number[]) => {
  const total = xs.reduce((a, b) => a + b, 0) || 1;
  return xs.map((x) => `${((100 * x) / total).toFixed(1)}%`).join(" / ");
};

/** The markdown of the cluster section. */
export async function clusterSection(ctx: BenchContext): Promise<string> {
  const cluster = await startCluster({ masters: 3 });
  try {
    const redis: Cluster = cluster.client();
    const prefix = `bench${randomBytes(4).toString("hex")}`;
    const inv = new Inventory(redis, { prefix });
    const opts = { perUserLimit: MAX_QUANTITY, holdMs: 900_000 };
    await inv.setStock("one", MAX_QUANTITY, opts);
    await inv.setStock("three", MAX_QUANTITY, { ...opts, buckets: 3 });
    // The client knows the masters once it has the slot map (after its first command).
    const masters = redis.nodes("master");
    if (masters.length !== 3) throw new Error(`expected 3 masters, the client sees ${masters.length}`);
    const concurrency = 64;
    const rows = await compare(ctx, [
      {
        name: "Inventory.reserve, buckets: 1",
        concurrency,
        fn: (i) => inv.reserve("one", { userId: `u${i % 50_000}`, reservationId: `r${i}` }),
      },
      {
        name: "Inventory.reserve, buckets: 3",
        concurrency,
        fn: (i) => inv.reserve("three", { userId: `u${i % 50_000}`, reservationId: `r${i}` }),
      },
    ]);
    const n = 30_000;
    const one = await shares(masters, n, concurrency, (i) =>
      inv.reserve("one", { userId: `s${i % 50_000}`, reservationId: `s${i}` }),
    );
    const three = await shares(masters, n, concurrency, (i) =>
      inv.reserve("three", { userId: `s${i % 50_000}`, reservationId: `s${i}` }),
    );

    // A sale: 30,000 units in 3 buckets, 40,000 calls from 20,000 users (limit 2, some retries), two processes.
    const other = new Inventory(cluster.client(), { prefix });
    await inv.setStock("sale", 30_000, { buckets: 3, perUserLimit: 2 });
    await other.snapshot("sale"); // each process meets the SKU before the opening
    const results: ReserveResult[] = [];
    const sold = await shares(masters, 40_000, concurrency, async (i) => {
      const r = await (i % 2 ? inv : other).reserve("sale", {
        userId: `u${i % 20_000}`,
        reservationId: `u${i % 20_000}-r${i % 36_000}`,
      });
      results.push(r);
    });
    const sale = sold.usec;
    const won = new Set<string>();
    for (const r of results) if (r.ok) won.add(r.reservationId);
    const perUser = new Map<string, number>();
    for (const rid of won) perUser.set(rid.split("-")[0]!, (perUser.get(rid.split("-")[0]!) ?? 0) + 1);
    const snap = await inv.snapshot("sale");
    const maxUser = Math.max(...perUser.values());
    const balanced =
      snap !== null && snap.available + snap.held + snap.confirmed === snap.initial && snap.available === 0;
    const maxShare = Math.max(...sale) / (sale.reduce((a, b) => a + b, 0) || 1);
    const maxShareOn = Math.max(...three.usec) / (three.usec.reduce((a, b) => a + b, 0) || 1);

    for (const sku of ["one", "three", "sale"]) {
      const k = inv.keys(sku);
      await redis.del(k.stock, k.holds, k.events);
      const { meta, buckets } = inv.bucketKeys(sku, 3);
      await redis.del(meta);
      for (const b of buckets) for (const key of Object.values(b)) await redis.del(key);
    }
    const r = ratio(rows, "Inventory.reserve, buckets: 3", "Inventory.reserve, buckets: 1");
    return `### On a 3-master Redis Cluster: one hot SKU in 1 bucket and in 3

A local cluster (3 \`redis-server\` masters on this machine, \`redis-cli --cluster create\`), one ioredis
\`Cluster\` client, ${concurrency} concurrent callers, stock never runs out. With \`buckets: 1\` the SKU is one slot on
one master; with \`buckets: 3\` its buckets sit on the 3 masters and each user's calls go to the user's home
bucket.

${table(rows, "Inventory.reserve, buckets: 1")}

\`buckets: 3\` against \`buckets: 1\`: **${r.toFixed(2)}x**. Every process here (the 3 masters and the client)
shares the machine's cores; the gain of buckets is the Redis CPU per master, below, which moves the ceiling of one
SKU from one Redis core to N.

Where the script time goes (\`INFO commandstats\`, usec of \`evalsha\` + \`eval\` per master, ${n.toLocaleString("en-US")}
reservations each):

| SKU | master 1 / 2 / 3 | script calls per master | Redis script µs per reservation |
| --- | --- | --- | --- |
| \`buckets: 1\` | ${pct(one.usec)} | ${one.calls.join(" / ")} | ${one.perCallUs.toFixed(1)} |
| \`buckets: 3\` | ${pct(three.usec)} | ${three.calls.join(" / ")} | ${three.perCallUs.toFixed(1)} |

Busiest master with \`buckets: 3\`: **${(100 * maxShareOn).toFixed(1)}%** of the script time (goal: at most 45%).

A sale of a \`buckets: 3\` SKU: 30,000 units, 40,000 calls from 20,000 users (per-user limit 2, 4,000 of
them retries), ${concurrency} callers through two Inventories on their own connections: sold
**${won.size.toLocaleString("en-US")}** of 30,000, most units held by one user **${maxUser}** (limit 2), books ${balanced ? "**balanced**" : "**NOT balanced**"}
(available ${snap?.available}, held ${snap?.held}); script time per master ${pct(sale)} (busiest
**${(100 * maxShare).toFixed(1)}%**, borrowing near the end included).`;
  } finally {
    await cluster.stop();
  }
}
