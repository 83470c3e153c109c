// QuorumLock (Redlock through the `redlock` package) over three private redis-servers: majority votes,
// ownership, using, and what happens when one node, then two, go down.
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from "vitest";
import type { Redis } from "ioredis";
import { InvalidArgumentError, RedisUnavailableError } from "../../src/errors.js";
import { LockLostError, LockTimeoutError, QuorumLock, type LockHandle } from "../../src/lock/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let servers: PrivateRedis[];
let nodes: Redis[];
beforeAll(async () => {
  servers = await Promise.all([startRedis(), startRedis(), startRedis()]);
  nodes = await connected();
});
afterAll(async () => Promise.all(servers.map((s) => s.stop())));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const created: Redis[] = [];
/**
 * Fresh connections to the given nodes (a separate process, as far as the lock can tell), once each is up:
 * a connect on a loaded machine is not a node's answer.
 */
async function connected(which = [0, 1, 2]): Promise<Redis[]> {
  const cs = which.map((i) => {
    const c = servers[i]!.client().on("error", () => {}); // stopped nodes: refused reconnects are expected
    created.push(c);
    return c;
  });
  await Promise.all(cs.map((c) => c.ping()));
  return cs;
}

describe("QuorumLock", () => {
  it("stores the lock on every node, refuses a second owner, releases everywhere; fence is undefined", async () => {
    const prefix = randomPrefix();
    // generous per-node deadlines: this test is about votes, not about a loaded machine's latency
    const lock = new QuorumLock(nodes, { prefix, acquireTimeoutMs: 0, requestTimeoutMs: 1_000 });
    const other = new QuorumLock(await connected(), { prefix, acquireTimeoutMs: 0, requestTimeoutMs: 1_000 });
    const h = await lock.acquire("r");
    expectTypeOf(h).toEqualTypeOf<LockHandle<undefined>>();
    expectTypeOf(h.fence).toEqualTypeOf<undefined>();
    expect(h.fence).toBeUndefined();
    expect(h.resource).toBe("r");
    expect(h.expiresAt).toBeGreaterThan(Date.now() + 9_000);
    const key = lock.keys("r").lock;
    expect(key).toBe(`{${prefix}:r}:lock`);
    // redlock answers once a majority agreed; the last node's write may land a moment later
    for (const n of nodes) await expect.poll(() => n.get(key)).toBe(h.token);
    expect(await other.tryAcquire("r")).toBeNull();
    await expect(other.acquire("r")).rejects.toBeInstanceOf(LockTimeoutError);
    expect(await h.extend(20_000)).toBe(true);
    for (const n of nodes) await expect.poll(() => n.pttl(key)).toBeGreaterThan(19_000);
    expect(await h.release()).toBe(true);
    expect(await h.release()).toBe(false);
    for (const n of nodes) await expect.poll(() => n.exists(key)).toBe(0);
    const again = await other.tryAcquire("r");
    expect(again).not.toBeNull();
    await again!.release();
  });

  it("a stale owner can neither extend nor release the next owner's lock", async () => {
    const prefix = randomPrefix();
    const a = new QuorumLock(nodes, { prefix, ttlMs: 150, requestTimeoutMs: 100 });
    const b = new QuorumLock(await connected(), { prefix, ttlMs: 10_000, requestTimeoutMs: 1_000 });
    const ha = await a.acquire("r");
    await sleep(200);
    const hb = await b.acquire("r");
    expect(await ha.extend()).toBe(false);
    expect(await ha.release()).toBe(false);
    for (const n of nodes) await expect.poll(() => n.get(a.keys("r").lock)).toBe(hb.token);
    await hb.release();
  });

  it("excludes across instances", async () => {
    const prefix = randomPrefix();
    const lockers = await Promise.all(
      Array.from(
        { length: 4 },
        async () => new QuorumLock(await connected(), { prefix, retryDelayMs: 5, requestTimeoutMs: 1_000 }),
      ),
    );
    const occupied = new Set<string>();
    let overlaps = 0;
    let entries = 0;
    await Promise.all(
      lockers.map(async (lock, c) => {
        for (let i = 0; i < 60; i++) {
          await lock.using(`r${(i + c) % 3}`, async () => {
            const r = `r${(i + c) % 3}`;
            if (occupied.has(r)) overlaps++;
            occupied.add(r);
            entries++;
            await sleep(1);
            occupied.delete(r);
          });
        }
      }),
    );
    expect({ overlaps, entries }).toEqual({ overlaps: 0, entries: 240 });
  }, 60_000);

  it("using extends a short lock through a longer routine and aborts when a majority is overwritten", async () => {
    const ttlMs = 600;
    const lock = new QuorumLock(nodes, { prefix: randomPrefix(), ttlMs, requestTimeoutMs: 250 });
    const key = lock.keys("r").lock;
    const out = await lock.using("r", async (signal, handle) => {
      await sleep(1_500); // two and a half TTLs
      // a majority holds it (a node slow to answer on a loaded machine may have missed an extension)
      const holders = (await Promise.all(nodes.map((n) => n.get(key)))).filter((v) => v === handle.token);
      expect(holders.length).toBeGreaterThanOrEqual(2);
      expect(signal.aborted).toBe(false);
      await nodes[0]!.set(key, "x", "PX", 10_000);
      await nodes[1]!.set(key, "x", "PX", 10_000);
      const t0 = performance.now();
      await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
      // within one extension period (ttl - max(ttl / 3, 100) = 400 ms), plus a margin for a loaded machine
      expect(performance.now() - t0).toBeLessThan(400 + 250);
      return signal.reason as unknown;
    });
    expect(out).toBeInstanceOf(LockLostError);
    expect(await nodes[0]!.get(key)).toBe("x");
  });

  it("one node without the key next to one that does not answer decides nothing: unavailable, not refused", async () => {
    const lock = new QuorumLock(nodes, { prefix: randomPrefix(), ttlMs: 5_000, requestTimeoutMs: 200 });
    const h = await lock.acquire("r");
    const key = lock.keys("r").lock;
    for (const n of nodes) await expect.poll(() => n.get(key)).toBe(h.token);
    const admin = await connected([0, 2]);
    await admin[1]!.del(key); // the third node lost it (a restart without persistence)
    expect(await h.extend()).toBe(true); // the other two: still a majority
    await admin[0]!.call("CLIENT", "PAUSE", "400", "ALL"); // and the first one is slow for a moment
    await expect(h.extend()).rejects.toBeInstanceOf(RedisUnavailableError);
    await sleep(450);
    expect(await nodes[0]!.get(key)).toBe(h.token); // still ours where it was
    expect(await nodes[1]!.get(key)).toBe(h.token);
    expect(await h.extend()).toBe(true);
    expect(await h.release()).toBe(true);
  });

  it("validates its arguments", () => {
    expect(() => new QuorumLock([])).toThrow(InvalidArgumentError);
    expect(() => new QuorumLock([nodes[0]!, nodes[0]!])).toThrow(/same client twice/);
    // An even count can tie, and redlock never decides a tie: refused.
    expect(() => new QuorumLock(nodes.slice(0, 2))).toThrow(/odd number/);
    expect(() => new QuorumLock(nodes, null as never)).toThrow(InvalidArgumentError);
    expect(() => new QuorumLock(nodes, { ttlMs: 100, requestTimeoutMs: 100 })).toThrow(/requestTimeoutMs/);
    expect(() => new QuorumLock(nodes, { driftFactor: 0.7 })).toThrow(/driftFactor/);
    expect(() => new QuorumLock(nodes, { subscriber: nodes[0] } as never)).toThrow(
      expect.objectContaining({ name: "InvalidArgumentError", argument: "options.subscriber" }),
    );
  });

  describe("with nodes down", () => {
    it("acquires with one node stopped, and fails within its retry budget with two stopped", async () => {
      const prefix = randomPrefix();
      const budget = { acquireTimeoutMs: 1_000, retryDelayMs: 50, requestTimeoutMs: 250 };
      const lock = new QuorumLock(nodes, { prefix, ...budget });
      await servers[2]!.server.stop();
      try {
        const t0 = Date.now();
        const h = await lock.acquire("r");
        expect(Date.now() - t0).toBeLessThan(budget.acquireTimeoutMs);
        expect(await nodes[0]!.get(lock.keys("r").lock)).toBe(h.token);
        expect(await nodes[1]!.get(lock.keys("r").lock)).toBe(h.token);
        expect(await h.extend()).toBe(true);
        // Another process, its third node down as well: the two that answer say "locked".
        const down = servers[2]!.client().on("error", () => {});
        created.push(down);
        const others = [...(await connected([0, 1])), down];
        expect(await new QuorumLock(others, { prefix, acquireTimeoutMs: 0 }).tryAcquire("r")).toBeNull();
        expect(await h.release()).toBe(true);

        await servers[1]!.server.stop();
        const t1 = Date.now();
        const err = await lock.acquire("r").catch((e: unknown) => e);
        const waited = Date.now() - t1;
        expect(err).toBeInstanceOf(LockTimeoutError);
        expect((err as LockTimeoutError).cause).toBeInstanceOf(RedisUnavailableError);
        expect(waited).toBeGreaterThanOrEqual(budget.acquireTimeoutMs);
        // one attempt may start just before the deadline: it lasts at most two request timeouts
        expect(waited).toBeLessThan(budget.acquireTimeoutMs + 2 * budget.requestTimeoutMs + 500);
        await expect(lock.tryAcquire("r")).rejects.toBeInstanceOf(RedisUnavailableError);
        expect(await nodes[0]!.exists(lock.keys("r").lock)).toBe(0); // the minority's partial lock was cleaned up
      } finally {
        // Back on their ports: the clients reconnect (and replay what they queued), so they can quit cleanly.
        await servers[1]!.server.start();
        await servers[2]!.server.start();
        await Promise.all(created.map((c) => c.ping()));
      }
      // What the clients queued for the dead nodes (an acquire, then redlock's clean-up release) replayed
      // in order on reconnect: no node is left holding a lock nobody owns.
      for (const n of nodes) expect(await n.exists(lock.keys("r").lock)).toBe(0);
    }, 30_000);
  });
});
