// Free TCP ports on 127.0.0.1 for servers the tests start themselves.
//
// A port found free here is bound by a child process a little later. Two things can take it in between:
// the kernel, which hands ports of its ephemeral range (ip_local_port_range, 32768-60999 by default) to
// every outgoing connection the tests open, and another vitest worker picking the same number. So the
// ports come from below the ephemeral range (bus port p + 10000 included), and each worker
// (VITEST_POOL_ID) draws from its own slice of it.
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/** The first port of the kernel's ephemeral range (Linux), else the IANA one. */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > 20_000) return low;
  } catch {
    // not Linux
  }
  return 49152;
}

const BASE = 10_000;
const SLICES = 8;

/** This worker's ports: [from, from + size), with from + size + 10000 below the ephemeral range. */
function slice(): { from: number; size: number } {
  const span = ephemeralLow() - 10_000 - BASE;
  const size = Math.floor(span / SLICES);
  const pool = Number(process.env.VITEST_POOL_ID ?? "1");
  const index = Number.isInteger(pool) && pool > 0 ? (pool - 1) % SLICES : 0;
  return { from: BASE + index * size, size };
}

/** A port p such that p and p + 10000 (Redis Cluster's bus port) are both free. */
export async function freeClusterPort(taken: Set<number>): Promise<number> {
  const { from, size } = slice();
  for (;;) {
    const p = from + Math.floor(Math.random() * size);
    if (taken.has(p) || taken.has(p + 10000)) continue;
    if ((await isFree(p)) && (await isFree(p + 10000))) {
      taken.add(p);
      taken.add(p + 10000);
      return p;
    }
  }
}
