// Every ```ts block of README.md and docs/*.md, type-checked against the built package and run to exit.
// Run after `npm run build`: the blocks import "flash-sale-kit" by name, which resolves (package
// self-reference through the exports map) to dist/, so they are checked against the declarations and code
// users get. Each block then runs with tsx against the Redis at 127.0.0.1:6379 (and the PostgreSQL database
// `test` at 127.0.0.1:5432 for blocks that use it), with a timeout; it must exit 0 and leave no keys behind.
// A block opened with ```ts no-run is a fragment: type-checked only.
// Usage: node scripts/check-docs.mjs [file.md …]
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const out = path.join(root, ".tmp", "docs-check");
const TIMEOUT_MS = 180_000;
const REDIS = ["-h", "127.0.0.1", "-p", "6379"];
const DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test";

if (!existsSync(path.join(root, "dist", "index.js"))) {
  console.error("check-docs: run `npm run build` first (the blocks are checked against dist/)");
  process.exit(1);
}

const docs = readdirSync(path.join(root, "docs"), { withFileTypes: true })
  .filter((d) => d.isFile() && d.name.endsWith(".md"))
  .map((d) => `docs/${d.name}`)
  .sort();
const sources = process.argv.length > 2 ? process.argv.slice(2) : ["README.md", ...docs];

// 1. Extract the blocks, each into a file of its own named after where it is.
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const blocks = [];
for (const source of sources) {
  const lines = readFileSync(path.join(root, source), "utf8").split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(ts|typescript)(\s+.*)?$/.exec(lines[i]);
    if (!open) continue;
    const flags = (open[2] ?? "").trim().split(/\s+/);
    const start = i + 1;
    let end = start;
    while (end < lines.length && lines[end] !== "```") end++;
    const name = `${source.replace(/[/.]/g, "_")}_L${start}.ts`;
    // `export {}` keeps each block a module of its own (top-level await, no clashing names).
    writeFileSync(path.join(out, name), `${lines.slice(start, end).join("\n")}\nexport {};\n`);
    blocks.push({ source, line: start, file: name, run: !flags.includes("no-run") });
    i = end;
  }
}
console.log(`check-docs: ${blocks.length} blocks in ${sources.length} files`);

// 2. Type-check them all at once, as a user's strict NodeNext project would.
writeFileSync(
  path.join(out, "tsconfig.json"),
  JSON.stringify(
    {
      compilerOptions: {
        target: "ES2022",
        lib: ["ES2023", "DOM"],
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        esModuleInterop: true,
        types: ["node"],
        typeRoots: [path.join(root, "node_modules", "@types")],
      },
      include: ["*.ts"],
    },
    null,
    2,
  ),
);
const where = new Map(blocks.map((b) => [b.file, b]));
let failures = 0;
const tsc = spawnSync(
  process.execPath,
  [path.join(root, "node_modules", "typescript", "bin", "tsc"), "-p", out],
  {
    encoding: "utf8",
  },
);
if (tsc.status !== 0) {
  // Point each error at the Markdown line it comes from.
  for (const line of `${tsc.stdout}${tsc.stderr}`.split("\n")) {
    const m = /^(?:.*\/)?([^/(]+\.ts)\((\d+),(\d+)\): (.*)$/.exec(line);
    const block = m && where.get(m[1]);
    if (block) console.error(`${block.source}:${block.line + Number(m[2]) - 1}: ${m[4]}`);
    else if (line.trim()) console.error(line);
  }
  failures++;
  console.error("check-docs: type errors (above)");
}

// 3. Run each block to exit; it must leave the shared Redis as it found it.
const redisKeys = () =>
  new Set(
    execFileSync("redis-cli", [...REDIS, "--scan"], { encoding: "utf8" })
      .split("\n")
      .filter(Boolean),
  );
const tsx = path.join(root, "node_modules", "tsx", "dist", "cli.mjs");
for (const block of blocks) {
  if (!block.run) continue;
  const before = redisKeys();
  const started = Date.now();
  const res = spawnSync(process.execPath, [tsx, path.join(out, block.file)], {
    cwd: out,
    encoding: "utf8",
    timeout: TIMEOUT_MS,
    killSignal: "SIGKILL",
    env: { ...process.env, DATABASE_URL, REDIS_URL: "redis://127.0.0.1:6379" },
  });
  const ms = Date.now() - started;
  const label = `${block.source}:${block.line}`;
  if (res.error?.code === "ETIMEDOUT" || res.signal) {
    console.error(`✗ ${label}: did not exit within ${TIMEOUT_MS / 1000} s`);
    failures++;
  } else if (res.status !== 0) {
    console.error(`✗ ${label}: exit ${res.status}\n${res.stdout}${res.stderr}`);
    failures++;
  } else {
    const left = [...redisKeys()].filter((k) => !before.has(k));
    if (left.length) {
      console.error(`✗ ${label}: left ${left.length} keys in Redis: ${left.slice(0, 5).join(", ")}`);
      failures++;
    } else {
      console.log(`✓ ${label} (${ms} ms)`);
    }
  }
}
const skipped = blocks.filter((b) => !b.run).length;
if (failures) {
  console.error(`check-docs: ${failures} failures`);
  process.exit(1);
}
console.log(`check-docs: all blocks type-check; ${blocks.length - skipped} ran to exit, ${skipped} no-run`);
