// Build: ESM + CJS + type declarations for the root and every module subpath.
import { defineConfig } from "tsup";

export const modules = [
  "stock",
  "lock",
  "cache",
  "ratelimit",
  "gate",
  "queue",
  "outbox",
  "orders",
  "metrics",
] as const;

export default defineConfig({
  entry: {
    index: "src/index.ts",
    ...Object.fromEntries(modules.map((m) => [`${m}/index`, `src/${m}/index.ts`])),
  },
  format: ["esm", "cjs"],
  dts: true,
  // No source maps in the package: the bundle is unminified, one file a module, and readable as shipped.
  sourcemap: false,
  clean: true,
  splitting: true,
  treeshake: true,
  target: "node20",
  external: ["ioredis", "pg", "@electric-sql/pglite", "amqplib", "prom-client", "@opentelemetry/api"],
});
