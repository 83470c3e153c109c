// Script calls wait out a slot migration on a Cluster: a multi-key script naming a key the node does not
// hold gets TRYAGAIN for as long as the slot is open, far past ioredis's own 16 redirections; the library
// sends it again until the slot is served (the script then runs once) or its wait runs out (typed error,
// nothing written).
import type { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisUnavailableError } from "../../src/errors.js";
import { LuaScript, isUnserved, untilServed } from "../../src/internal/scripts.js";
import { keySlot } from "../../src/internal/slot.js";
import { startCluster, type LocalCluster } from "../support/cluster.js";
import { randomPrefix } from "../support/redis.js";

// Names a second key that never exists: TRYAGAIN on the source while the slot is open.
const INCR = new LuaScript("test/incr-two", "return redis.call('INCR', KEYS[1])", 2);

let cluster: LocalCluster;
let redis: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ masters: 3 });
  redis = cluster.client();
}, 60_000);
afterAll(async () => cluster?.stop());

const replyError = (message: string): Error => Object.assign(new Error(message), { name: "ReplyError" });

/** TRYAGAIN replies sent by the node on `port` so far. */
async function tryAgains(port: number): Promise<number> {
  const info = await cluster.admin(port).info("errorstats");
  return Number(/errorstat_TRYAGAIN:count=(\d+)/.exec(info)?.[1] ?? 0);
}

/** Opens `slot` for a migration to the next master, moving nothing; returns the source's port and a closer. */
async function openSlot(slot: number): Promise<{ source: number; close: () => Promise<void> }> {
  const source = await cluster.ownerOf(slot);
  const masters = cluster.ports;
  const target = masters[(masters.indexOf(source) + 1) % masters.length]!;
  const [sourceId, targetId] = await Promise.all([
    cluster.admin(source).cluster("MYID"),
    cluster.admin(target).cluster("MYID"),
  ]);
  await cluster.admin(target).cluster("SETSLOT", slot, "IMPORTING", sourceId);
  await cluster.admin(source).cluster("SETSLOT", slot, "MIGRATING", targetId);
  return {
    source,
    // Abandons the migration: the slot stays on the source.
    close: async () => {
      await cluster.admin(source).cluster("SETSLOT", slot, "STABLE");
      await cluster.admin(target).cluster("SETSLOT", slot, "STABLE");
    },
  };
}

describe("isUnserved", () => {
  it("accepts only refusals that prove the command did not run for a migrating slot", () => {
    expect(isUnserved(replyError("TRYAGAIN Multiple keys request during rehashing of slot"))).toBe(true);
    expect(isUnserved(replyError("ASK 3999 127.0.0.1:7001"))).toBe(true);
    expect(isUnserved(replyError("MOVED 3999 127.0.0.1:7001"))).toBe(true);
    const gaveUp = "Too many Cluster redirections. Last error: ";
    expect(isUnserved(new Error(`${gaveUp}ReplyError: TRYAGAIN Multiple keys request`))).toBe(true);
    expect(isUnserved(new Error(`${gaveUp}ReplyError: MOVED 3999 127.0.0.1:7001`))).toBe(true);
    // The command may have run, or the failure is not a migration's.
    expect(isUnserved(new Error(`${gaveUp}Error: Connection is closed.`))).toBe(false);
    expect(isUnserved(replyError("CLUSTERDOWN The cluster is down"))).toBe(false);
    expect(isUnserved(replyError("ERR Error running script"))).toBe(false);
    expect(isUnserved(new Error("TRYAGAIN but not a reply"))).toBe(false);
    expect(isUnserved("TRYAGAIN")).toBe(false);
  });

  it("untilServed passes other errors through at once, and gives up after its wait", async () => {
    let sends = 0;
    const other = replyError("ERR nope");
    await expect(
      untilServed(async () => {
        sends++;
        throw other;
      }),
    ).rejects.toBe(other);
    expect(sends).toBe(1);
    sends = 0;
    const tryAgain = replyError("TRYAGAIN Multiple keys request during rehashing of slot");
    await expect(
      untilServed(async () => {
        sends++;
        throw tryAgain;
      }, 200),
    ).rejects.toBe(tryAgain);
    expect(sends).toBeGreaterThan(1);
  });
});

describe("LuaScript.run on a slot being migrated", () => {
  it("waits until the slot is served again, then runs once", async () => {
    const tag = `{${randomPrefix()}}`;
    const [key, missing] = [`${tag}:n`, `${tag}:missing`];
    await redis.set(key, "0");
    const { source, close } = await openSlot(keySlot(key));
    try {
      const before = await tryAgains(source);
      const call = INCR.run(redis, [key, missing], []);
      // More TRYAGAIN replies than ioredis alone sends for one call (maxRedirections 16): the library resent it.
      const deadline = Date.now() + 20_000;
      while ((await tryAgains(source)) - before < 20 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect((await tryAgains(source)) - before).toBeGreaterThanOrEqual(20);
      expect(await redis.get(key)).toBe("0");
      await close();
      expect(await call).toBe(1);
      expect(await redis.get(key)).toBe("1");
    } finally {
      await close();
      await redis.del(key);
    }
  });

  it("fails with RedisUnavailableError, nothing written, once its wait runs out", async () => {
    const tag = `{${randomPrefix()}}`;
    const [key, missing] = [`${tag}:n`, `${tag}:missing`];
    await redis.set(key, "0");
    const { close } = await openSlot(keySlot(key));
    try {
      const err = await INCR.run(redis, [key, missing], [], { waitMs: 300 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RedisUnavailableError);
      // ioredis's last redirection may be a MOVED from a random node it tried after a TRYAGAIN.
      expect(String((err as Error).message)).toMatch(/Too many Cluster redirections.*(TRYAGAIN|MOVED|ASK)/);
      expect(await redis.get(key)).toBe("0");
    } finally {
      await close();
      await redis.del(key);
    }
  });
});
