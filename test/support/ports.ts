// Free TCP ports on 127.0.0.1 for servers the tests start themselves.
//
// A port found free here is bound by a child process a little later. Two things can take it in between:
// the kernel, which hands ports of its ephemeral range (ip_local_port_range, 32768-60999 by default on
// Linux) to every outgoing connection the tests open, and another vitest worker picking the same number.
// So a server port p is drawn from 10000-19999 and its cluster bus port p + 10000 is then in 20000-29999,
// both below that range, and each worker (VITEST_POOL_ID) draws p from its own eighth of 10000-19999, so
// no two workers' ports (bus ports included) can meet.
import { createServer } from "node:net";

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

const BASE = 10_000;
const SLICES = 8;
const SIZE = 10_000 / SLICES;

/** This worker's server ports: [from, from + SIZE). */
function sliceStart(): number {
  const pool = Number(process.env.VITEST_POOL_ID ?? "1");
  const index = Number.isInteger(pool) && pool > 0 ? (pool - 1) % SLICES : 0;
  return BASE + index * SIZE;
}

/** A port p such that p and p + 10000 (Redis Cluster's bus port) are both free. */
export async function freeClusterPort(taken: Set<number>): Promise<number> {
  const from = sliceStart();
  for (;;) {
    const p = from + Math.floor(Math.random() * SIZE);
    if (taken.has(p) || taken.has(p + 10000)) continue;
    if ((await isFree(p)) && (await isFree(p + 10000))) {
      taken.add(p);
      taken.add(p + 10000);
      return p;
    }
  }
}
