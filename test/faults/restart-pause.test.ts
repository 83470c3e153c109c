// Single-node faults against a stampede of reservations: SIGKILL with `appendfsync always` (nothing
// acknowledged is lost), CLIENT PAUSE past the command timeout (a typed error, and a retry with the same id
// applies once), and the script cache flushed again and again (no call fails).
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisUnavailableError } from "../../src/errors.js";
import { Inventory } from "../../src/stock/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

describe("kill -9 with appendfsync always", () => {
  let srv: PrivateRedis;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "fsk-aof-"));
    srv = await startRedis(["--appendonly", "yes", "--appendfsync", "always", "--dir", dir]);
  });
  afterAll(async () => {
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps every acknowledged reservation across a SIGKILL and a restart", async () => {
    const redis = srv.client({ maxRetriesPerRequest: 0, retryStrategy: () => null });
    redis.on("error", () => undefined);
    const prefix = randomPrefix("aof");
    const inventory = new Inventory(redis, { prefix });
    await inventory.setStock("sku", 100_000, { perUserLimit: 1 });
    const acknowledged: string[] = [];
    let failed = 0;
    let killed = false;
    const worker = async (): Promise<void> => {
      while (!killed || acknowledged.length === 0) {
        const id = randomUUID();
        try {
          const r = await inventory.reserve("sku", { userId: id, reservationId: id });
          if (r.ok) acknowledged.push(id);
        } catch {
          failed++;
          if (killed) return;
        }
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    const deadline = Date.now() + 30_000;
    while (acknowledged.length < 300 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    const info = srv.server.getInstanceInfo();
    const proc = info === false ? undefined : info.childProcess;
    expect(proc).toBeDefined();
    killed = true;
    proc!.kill("SIGKILL");
    await Promise.all(workers);
    redis.disconnect();

    // Restart on the same port and directory: the AOF is replayed.
    const again = await startRedis([
      "--appendonly",
      "yes",
      "--appendfsync",
      "always",
      "--dir",
      dir,
      "--port",
      String(srv.port),
    ]);
    try {
      // The server listens on the old port (the last --port wins), not on the one the helper picked.
      const r2 = again.client({ port: srv.port });
      const after = new Inventory(r2, { prefix });
      let missing = 0;
      for (const id of acknowledged) if ((await after.reservation("sku", id)) === null) missing++;
      expect(missing).toBe(0);
      const snap = (await after.snapshot("sku"))!;
      expect(snap.available + snap.held + snap.confirmed).toBe(100_000);
      // Held = acknowledged, plus calls whose reply the kill took (applied, caller saw an error).
      expect(snap.held).toBeGreaterThanOrEqual(acknowledged.length);
      expect(snap.held - acknowledged.length).toBeLessThanOrEqual(failed);
      await after.close();
    } finally {
      await again.stop();
    }
  });
});

describe("CLIENT PAUSE past the command timeout", () => {
  let srv: PrivateRedis;
  beforeAll(async () => {
    srv = await startRedis();
  });
  afterAll(async () => {
    await srv.stop();
  });

  it("gives a typed error, and a retry with the same id applies once", async () => {
    const redis = srv.client({ commandTimeout: 200, maxRetriesPerRequest: 0 });
    const admin = srv.client();
    const prefix = randomPrefix("pause");
    // Set-up and checks on a client without the short timeout (a busy machine can take 200 ms for them).
    const books = new Inventory(admin, { prefix, batch: false });
    const inventory = new Inventory(redis, { prefix, batch: false });
    await books.setStock("sku", 10, { perUserLimit: 1 });
    await admin.client("PAUSE", 1500, "ALL");
    const err = await inventory
      .reserve("sku", { userId: "u1", reservationId: "r1" })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisUnavailableError);
    // Once the pause ends the timed-out call runs: the retry with its id is answered as a replay.
    let retried: Awaited<ReturnType<Inventory["reserve"]>> | undefined;
    const deadline = Date.now() + 20_000;
    while (retried === undefined && Date.now() < deadline) {
      retried = await inventory.reserve("sku", { userId: "u1", reservationId: "r1" }).catch(() => undefined);
    }
    expect(retried?.ok).toBe(true);
    const snap = (await books.snapshot("sku"))!;
    expect([snap.available, snap.held]).toEqual([9, 1]);
    expect(await books.userQuantity("sku", "u1")).toBe(1);
    await Promise.all([inventory.close(), books.close()]);
  });
});

describe("SCRIPT FLUSH again and again during a stampede", () => {
  let srv: PrivateRedis;
  beforeAll(async () => {
    srv = await startRedis();
  });
  afterAll(async () => {
    await srv.stop();
  });

  for (const batch of [true, false]) {
    it(`batch: ${batch}: 10 runs of 500 concurrent reservations, 0 failed calls, exact stock`, async () => {
      const redis = srv.client();
      const admin = new Redis(srv.port, srv.host);
      for (let run = 0; run < 10; run++) {
        const inventory = new Inventory(redis, { prefix: randomPrefix("flush"), batch });
        await inventory.setStock("sku", 300, { perUserLimit: 1 });
        let flushing = true;
        const flusher = (async () => {
          while (flushing) await admin.script("FLUSH");
        })();
        const results = await Promise.allSettled(
          Array.from({ length: 500 }, (_, i) =>
            inventory.reserve("sku", { userId: `u${i}`, reservationId: `r${i}` }),
          ),
        );
        flushing = false;
        await flusher;
        const rejected = results.filter((r) => r.status === "rejected");
        expect(rejected.map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
        const ok = results.filter((r) => r.status === "fulfilled" && r.value.ok).length;
        expect(ok).toBe(300);
        const snap = (await inventory.snapshot("sku"))!;
        expect([snap.available, snap.held]).toEqual([0, 300]);
        await inventory.close();
      }
      admin.disconnect();
    });
  }
});
