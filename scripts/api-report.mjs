// The public surface, one API Extractor report per entry point (the root and every subpath), read from the
// built declarations in dist/. `npm run api` rewrites the committed reports in api/; `npm run api:check`
// (CI) fails when the built surface differs from them, so the surface only changes on purpose.
// API Extractor takes one entry point per run, so this script runs it once per entry of the exports map.
import { mkdirSync, readFileSync } from "node:fs";
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
mkdirSync(path.join(root, ".tmp", "api"), { recursive: true });
if (update) mkdirSync(path.join(root, "api"), { recursive: true });
let changed = 0;
let failed = 0;
for (const entry of entries) {
  const config = ExtractorConfig.prepare({
    configObjectFullPath: undefined,
    packageJsonFullPath: path.join(root, "package.json"),
    configObject: {
      projectFolder: root,
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
        reportFolder: path.join(root, "api"),
        reportTempFolder: path.join(root, ".tmp", "api"),
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
  const result = Extractor.invoke(config, { localBuild: update, showVerboseMessages: false });
  if (result.apiReportChanged) changed++;
  if (!result.succeeded) failed++;
  console.log(
    `${entry.name}: ${result.succeeded ? "ok" : "FAILED"}${result.apiReportChanged ? " (report changed)" : ""}`,
  );
}
if (update) {
  console.log(`api/: ${changed} of ${entries.length} reports rewritten`);
} else if (failed || changed) {
  console.error(
    "The public API differs from the committed report (api/*.api.md). If the change is intended, run `npm run api` and commit api/.",
  );
  process.exit(1);
}
if (failed) process.exit(1);
