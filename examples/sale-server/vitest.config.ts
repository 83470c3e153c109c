// The example's tests. They import the package by name, as a user does; inside this repository the name
// resolves to the library's sources (../../src), so the tests need no build and always run the current code.
// A copy outside the repository drops the aliases and gets the installed package.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const src = (p: string) => fileURLToPath(new URL(`../../src/${p}`, import.meta.url));
const inRepo = existsSync(src("index.ts"));

export default defineConfig({
  resolve: {
    alias: inRepo
      ? [
          { find: /^flash-sale-kit$/, replacement: src("index.ts") },
          { find: /^flash-sale-kit\/(\w+)$/, replacement: src("$1/index.ts") },
        ]
      : [],
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Chromium and the load test each want a core: one file at a time.
    fileParallelism: false,
    pool: "forks",
  },
});
