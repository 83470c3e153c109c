import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const src = (p: string) => fileURLToPath(new URL(`./src/${p}`, import.meta.url));

export default defineConfig({
  // Code that imports the package by name, as users do, runs against the sources.
  resolve: {
    alias: [
      { find: /^flash-sale-kit$/, replacement: src("index.ts") },
      { find: /^flash-sale-kit\/(\w+)$/, replacement: src("$1/index.ts") },
    ],
  },
  test: {
    // The library's tests only: each example is a package of its own, tested in its own CI step
    // (.ci/examples runs `npm test` in each example folder).
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    // Set-up starts servers and PGlite databases: on a busy machine that alone can take a minute.
    hookTimeout: 180_000,
    // Two cores: two files at a time, each with its own private redis-server.
    maxWorkers: 2,
    pool: "forks",
    reporters: ["default"],
  },
});
