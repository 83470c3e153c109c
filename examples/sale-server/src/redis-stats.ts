// Redis commands counted by the server itself (INFO commandstats), for "what did these requests cost Redis".
// Commands run by scripts are counted too (a reserve is one EVALSHA plus the commands inside it).
import type { Redis } from "ioredis";

export type CommandCounts = Record<string, number>;

/** Calls per command since the server started (or since CONFIG RESETSTAT). */
export async function commandCounts(redis: Redis): Promise<CommandCounts> {
  const out: CommandCounts = {};
  for (const line of (await redis.info("commandstats")).split("\n")) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** `after - before` per command, without the INFO calls that took the readings. */
export function countsDelta(before: CommandCounts, after: CommandCounts): CommandCounts {
  const out: CommandCounts = {};
  for (const [cmd, n] of Object.entries(after)) {
    const d = n - (before[cmd] ?? 0);
    if (d > 0 && cmd !== "info") out[cmd] = d;
  }
  return out;
}

export const total = (c: CommandCounts): number => Object.values(c).reduce((a, b) => a + b, 0);
