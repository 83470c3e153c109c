// The package as users get it, checked after `npm run build`: the packed tarball's contents (no tests, source
// maps, sources, lua/ or sql/: the scripts are embedded in dist), no machine paths in package.json, publint
// and "are the types wrong" on the tarball (types under node10, node16 from ESM and CJS, and bundler), and a
// lockfile that `npm install` leaves as it is.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const tmp = path.join(root, ".tmp", "package-check");
rmSync(tmp, { recursive: true, force: true });
mkdirSync(tmp, { recursive: true });

const problems = [];
const run = (cmd, args, cwd = root) =>
  execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });

// 1. What the tarball holds.
const [packed] = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", tmp]));
const tarball = path.join(tmp, packed.filename);
const files = packed.files.map((f) => f.path);
const allowed = /^(dist\/.+\.(js|cjs|d\.ts|d\.cts)|package\.json|README\.md|LICENSE|CHANGELOG\.md)$/;
for (const file of files) {
  if (!allowed.test(file)) problems.push(`tarball: unexpected file ${file}`);
}
for (const required of ["package.json", "README.md", "LICENSE", "dist/index.js", "dist/index.cjs"]) {
  if (!files.includes(required)) problems.push(`tarball: missing ${required}`);
}
console.log(
  `tarball: ${files.length} files, ${(packed.size / 1024).toFixed(1)} kB packed, ${(packed.unpackedSize / 1024).toFixed(1)} kB unpacked`,
);

// 2. No machine paths or tool settings of this machine in package.json.
const manifest = readFileSync(path.join(root, "package.json"), "utf8");
const pkg = JSON.parse(manifest);
if (/"(\/(home|root|usr|opt|work|tmp|var)\/|[A-Z]:\\\\)/.test(manifest)) {
  problems.push("package.json: contains an absolute path");
}
// A binary path for the tests' Redis belongs in the environment (REDISMS_SYSTEM_BINARY), not in the package.
if (pkg.redisMemoryServer?.systemBinary !== undefined) {
  problems.push("package.json: redisMemoryServer.systemBinary is a path on one machine");
}

// 3. publint and attw on the tarball itself.
try {
  run("npx", ["--no-install", "publint", "run", tarball, "--strict"]);
  console.log("publint: ok");
} catch {
  problems.push("publint: failed (output above)");
}
try {
  run("npx", ["--no-install", "attw", tarball, "--format", "ascii", "--profile", "strict"]);
  console.log("attw: ok (node10, node16 ESM and CJS, bundler)");
} catch (err) {
  process.stdout.write(err.stdout ?? "");
  problems.push("attw: types are wrong (output above)");
}

// 4. `npm install` must not rewrite the lockfile: resolve package.json against it in a scratch folder.
const lockDir = path.join(tmp, "lock");
mkdirSync(lockDir);
for (const f of ["package.json", "package-lock.json"])
  copyFileSync(path.join(root, f), path.join(lockDir, f));
run(
  "npm",
  ["install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
  lockDir,
);
const before = readFileSync(path.join(root, "package-lock.json"), "utf8");
const after = readFileSync(path.join(lockDir, "package-lock.json"), "utf8");
if (before !== after) {
  problems.push(
    "package-lock.json: `npm install` rewrites it; run `npm install` and commit the lockfile (diff: .tmp/package-check/lock)",
  );
} else {
  console.log("package-lock.json: unchanged by npm install");
}

if (problems.length) {
  for (const p of problems) console.error(`✗ ${p}`);
  process.exit(1);
}
console.log("package: ok");
