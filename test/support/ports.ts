// Free TCP ports on 127.0.0.1 for servers the tests start themselves.
import { createServer } from "node:net";

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/** A port p such that p and p + 10000 (Redis Cluster's bus port) are both free. */
export async function freeClusterPort(taken: Set<number>): Promise<number> {
  for (;;) {
    const p = 20000 + Math.floor(Math.random() * 25000);
    if (taken.has(p) || taken.has(p + 10000)) continue;
    if ((await isFree(p)) && (await isFree(p + 10000))) {
      taken.add(p);
      taken.add(p + 10000);
      return p;
    }
  }
}
