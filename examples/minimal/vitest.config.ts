import { defineConfig } from "vitest/config";

export default defineConfig({
  // Generous: a busy CI machine may take seconds to connect and migrate; no test waits on a clock.
  test: { include: ["test/**/*.test.ts"], testTimeout: 60_000, hookTimeout: 60_000 },
});
