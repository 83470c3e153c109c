// The public surface, one API Extractor report per entry point (the root and every subpath), read from the
// built declarations in dist/. `npm run api` rewrites the committed reports in api/; `npm run api:check`
// (CI) fails when the built surface differs from them, so the surface only changes on purpose.
// API Extractor takes one entry point per run, so this script runs it once per entry of the exports map.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Extractor, ExtractorConfig } from "@microsoft/api-extractor";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const update = process.argv.includes("--update");
const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));

// Every subpath of the exports map that has types (the ESM declarations; the CJS ones are the same text).
const entries = Object.entries(pkg.exports)
  .filter(([, target]) => typeof target === "object" && target.import?.types)
  .map(([subpath, target]) => ({
    name: subpath === "." ? "flash-sale-kit" : `flash-sale-kit-${subpath.slice(2)}`,
    types: path.join(root, target.import.types),
  }));

const off = { logLevel: "none", addToApiReportFile: false };
// API Extractor writes its reports into .tmp/api/out; this script compares them with (or copies them to) api/
// after dropping the "// (undocumented)" markers, so that adding TSDoc does not count as a surface change.
const outDir = path.join(root, ".tmp", "api", "out");
const tempDir = path.join(root, ".tmp", "api", "temp");
rmSync(path.join(root, ".tmp", "api"), { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
mkdirSync(tempDir, { recursive: true });
mkdirSync(path.join(root, "api"), { recursive: true });
const normalize = (text) =>
  text
    .split(/\r?\n/)
    .filter((line) => !/^\s*\/\/ \(undocumented\)$/.test(line))
    .join("\n");
const changedFiles = [];
let failed = 0;
for (const entry of entries) {
  const config = ExtractorConfig.prepare({
    configObjectFullPath: undefined,
    packageJsonFullPath: path.join(root, "package.json"),
    configObject: {
      projectFolder: root,
      newlineKind: "lf",
      mainEntryPointFilePath: entry.types,
      compiler: {
        overrideTsconfig: {
          compilerOptions: {
            target: "ES2022",
            lib: ["ES2023"],
            module: "NodeNext",
            moduleResolution: "NodeNext",
            strict: true,
            skipLibCheck: true,
            types: ["node"],
          },
          files: [entry.types],
        },
      },
      apiReport: {
        enabled: true,
        reportFileName: entry.name,
        reportFolder: outDir,
        reportTempFolder: tempDir,
        includeForgottenExports: false,
      },
      docModel: { enabled: false },
      dtsRollup: { enabled: false },
      tsdocMetadata: { enabled: false },
      messages: {
        compilerMessageReporting: { default: { logLevel: "error" } },
        extractorMessageReporting: {
          default: { logLevel: "warning", addToApiReportFile: true },
          // No release tags (@public/@beta) in this project: every exported name is public.
          "ae-missing-release-tag": off,
          // TSDoc {@link}s to names of other subpaths are the sources' business, not a surface change.
          "ae-unresolved-link": off,
          // Missing TSDoc is for the linters of the sources; the report tracks the surface only.
          "ae-undocumented": off,
          // A type reachable from the surface but not exported by name shows in the report as such.
          "ae-forgotten-export": { logLevel: "none", addToApiReportFile: true },
        },
        tsdocMessageReporting: { default: off },
      },
    },
  });
  const result = Extractor.invoke(config, {
    localBuild: true,
    showVerboseMessages: false,
    // Only errors: the "report missing/changed" notices concern .tmp, not the committed reports.
    messageCallback: (message) => {
      if (message.logLevel !== "error") message.handled = true;
    },
  });
  const file = `${entry.name}.api.md`;
  const fresh = normalize(readFileSync(path.join(outDir, file), "utf8"));
  const committed = path.join(root, "api", file);
  const differs = !existsSync(committed) || readFileSync(committed, "utf8") !== fresh;
  if (differs) changedFiles.push(file);
  if (differs && update) writeFileSync(committed, fresh);
  if (!result.succeeded) failed++;
  console.log(`${entry.name}: ${result.succeeded ? "ok" : "FAILED"}${differs ? " (differs from api/)" : ""}`);
}
if (update) {
  console.log(`api/: ${changedFiles.length} of ${entries.length} reports rewritten`);
} else if (changedFiles.length) {
  for (const file of changedFiles) {
    const committed = path.join(root, "api", file);
    const fresh = path.join(root, ".tmp", "api", file);
    writeFileSync(fresh, normalize(readFileSync(path.join(outDir, file), "utf8")));
    try {
      execFileSync("diff", ["-u", existsSync(committed) ? committed : "/dev/null", fresh], {
        stdio: "inherit",
      });
    } catch {
      // diff exits 1 when the files differ: its output is the point.
    }
  }
  console.error(
    `The public API differs from the committed report (${changedFiles.join(", ")}). If the change is intended, run \`npm run api\` and commit api/.`,
  );
  process.exit(1);
}
if (failed) process.exit(1);
