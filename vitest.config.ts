import { fileURLToPath } from "node:url";
import { configDefaults, defineConfig } from "vitest/config";

const src = (p: string) => fileURLToPath(new URL(`./src/${p}`, import.meta.url));

export default defineConfig({
  // The examples import the package by name, as users do; tests run them against the sources.
  resolve: {
    alias: [
      { find: /^flash-sale-kit$/, replacement: src("index.ts") },
      { find: /^flash-sale-kit\/(\w+)$/, replacement: src("$1/index.ts") },
    ],
  },
  test: {
    include: ["test/**/*.test.ts", "examples/**/*.test.ts"],
    // Installed and tested on its own by .ci/examples, against dist/ (its node_modules holds its own vitest).
    exclude: [...configDefaults.exclude, "examples/minimal/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: two files at a time, each with its own private redis-server.
    maxWorkers: 2,
    pool: "forks",
    reporters: ["default"],
  },
});
