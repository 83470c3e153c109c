// Build: ESM + CJS + type declarations for the root and every module subpath.
import { defineConfig } from "tsup";

export const modules = ["core", "stock", "lock", "cache", "ratelimit", "gate", "outbox"] as const;

export default defineConfig({
  entry: {
    index: "src/index.ts",
    ...Object.fromEntries(modules.map((m) => [`${m}/index`, `src/${m}/index.ts`])),
  },
  format: ["esm", "cjs"],
  dts: true,
  sourcemap: true,
  clean: true,
  splitting: true,
  treeshake: true,
  target: "node20",
  external: ["ioredis", "pg", "@electric-sql/pglite", "amqplib"],
});
