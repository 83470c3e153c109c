// The last lines of each server log in a test deployment's directory, for the error of a start that
// failed (the directory is deleted right after, so this is the only trace of why).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export function logTails(dir: string, lines = 5): string {
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith(".log"))
      .map((f) => {
        const tail = readFileSync(join(dir, f), "utf8").trimEnd().split("\n").slice(-lines).join("\n");
        return `--- ${f}\n${tail}`;
      })
      .join("\n");
  } catch {
    return "";
  }
}

/** `err` with the deployment's log tails appended to its message. */
export function withLogs(err: unknown, dir: string): unknown {
  if (err instanceof Error) err.message += `\n${logTails(dir)}`;
  return err;
}
