// `npm run bench [-- module …]`: runs bench/<module>.bench.ts for each module (all by default), writes each
// section to bench/results/<module>.md and assembles BENCHMARKS.md from every results file.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import type { BenchContext, BenchSection } from "./lib.js";

const here = new URL(".", import.meta.url).pathname;
const ORDER = ["stock", "lock", "cache", "ratelimit", "gate", "queue", "outbox", "metrics"];
const available = readdirSync(here)
  .filter((f) => f.endsWith(".bench.ts"))
  .map((f) => f.slice(0, -".bench.ts".length))
  .sort((a, b) => (ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99));
const wanted = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const modules = wanted.length ? wanted : available;

const ctx: BenchContext = {
  redisUrl: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
  databaseUrl: process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
  roundMs: Number(process.env.BENCH_ROUND_MS ?? 1000),
  rounds: Number(process.env.BENCH_ROUNDS ?? 7),
};

function redisVersion(): string {
  try {
    return (
      execFileSync("redis-server", ["--version"])
        .toString()
        .match(/v=(\S+)/)?.[1] ?? "?"
    );
  } catch {
    return "?";
  }
}

for (const m of modules) {
  if (!available.includes(m)) throw new Error(`no bench/${m}.bench.ts (have: ${available.join(", ")})`);
  console.log(`\n## ${m}`);
  const mod = (await import(join(here, `${m}.bench.ts`))) as {
    default: (c: BenchContext) => Promise<BenchSection>;
  };
  const started = new Date().toISOString();
  const section = await mod.default(ctx);
  const text = `## ${section.title}\n\n_Measured ${started.slice(0, 16).replace("T", " ")} UTC with \`npm run bench -- ${m}\`._\n\n${section.body.trim()}\n`;
  writeFileSync(join(here, "results", `${m}.md`), text);
  console.log(text);
}

const parts = available
  .map((m) => join(here, "results", `${m}.md`))
  .filter((f) => existsSync(f))
  .map((f) => readFileSync(f, "utf8").trim());
const cpu = cpus()[0]?.model ?? "?";
writeFileSync(
  join(here, "..", "BENCHMARKS.md"),
  `# Benchmarks

Produced by \`npm run bench\` (one module: \`npm run bench -- <module>\`), which measures each candidate
side by side in the same process, against the same server, in alternating rounds
(${ctx.rounds} rounds of ${ctx.roundMs} ms each, closed loop with a fixed number of concurrent callers).
ops/s and latencies are each candidate's median round; a ratio is the median over rounds of the two
candidates' throughputs in the same round, which cancels most of the drift of a shared machine. Numbers
are from one machine and only comparable within a table.

Machine: ${cpus().length} × ${cpu}, Node ${process.version}, Redis ${redisVersion()} on loopback.

${parts.join("\n\n")}
`,
);
console.log("\nwrote BENCHMARKS.md");
process.exit(0);
