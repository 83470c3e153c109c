// Many clients at once: mutual exclusion with exact invariants, and how fast a waiter gets a released lock.
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { SpinLock, type LockHandle } from "../../src/lock/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let admin: Redis;
beforeAll(async () => {
  srv = await startRedis();
  admin = srv.client();
});
afterAll(async () => srv?.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Acquirer {
  acquire(resource: string): Promise<Pick<LockHandle, "fence" | "release">>;
}

/**
 * `clients` × `rounds` acquisitions over `resources`; each critical section records entry and exit (one
 * process, so JavaScript's event order is a total order) and does a read-modify-write on Redis that a
 * second occupant would corrupt.
 */
async function crowd(lockers: Acquirer[], rounds: number, resources: number, prefix: string) {
  const occupant = new Map<string, number>();
  const lastFence = new Map<string, number>();
  let overlaps = 0;
  let fenceRegressions = 0;
  await Promise.all(
    lockers.map(async (locker, client) => {
      for (let i = 0; i < rounds; i++) {
        const resource = `res-${(client * 7 + i * 3 + (i % 5)) % resources}`;
        const handle = await locker.acquire(resource);
        if (occupant.has(resource)) overlaps++;
        occupant.set(resource, client);
        if (handle.fence <= (lastFence.get(resource) ?? 0)) fenceRegressions++;
        lastFence.set(resource, handle.fence);
        const counter = `{${prefix}:${resource}}:count`;
        const n = Number(await admin.get(counter));
        if (i % 4 === 0) await sleep(1);
        await admin.set(counter, n + 1);
        if (occupant.get(resource) !== client) overlaps++;
        occupant.delete(resource);
        await handle.release();
      }
    }),
  );
  let counted = 0;
  for (let r = 0; r < resources; r++) counted += Number(await admin.get(`{${prefix}:res-${r}}:count`));
  return { overlaps, fenceRegressions, counted };
}

describe("SpinLock under contention", () => {
  it("8 clients × 2,000 acquisitions over 10 resources: 0 overlaps, fences increase, no lost update", async () => {
    const prefix = randomPrefix();
    const lockers = Array.from(
      { length: 8 },
      // separate connections and instances: only Redis can keep them apart; half wake by pub/sub
      (_, i) =>
        new SpinLock(srv.client(), {
          prefix,
          ttlMs: 10_000,
          retryDelayMs: 20,
          subscriber: i % 2 === 0 ? srv.client() : undefined,
        }),
    );
    const r = await crowd(lockers, 2_000, 10, prefix);
    expect(r).toEqual({ overlaps: 0, fenceRegressions: 0, counted: 16_000 });
    let fences = 0;
    for (let i = 0; i < 10; i++) fences += Number(await admin.get(lockers[0]!.keys(`res-${i}`).fence));
    expect(fences).toBe(16_000);
  }, 120_000);

  it("the detector catches a lock that does not exclude (control)", async () => {
    const prefix = randomPrefix();
    let fence = 0;
    const broken: Acquirer = {
      acquire: async () => ({ fence: ++fence, release: async () => true }),
    };
    const r = await crowd([broken, broken, broken, broken], 50, 2, prefix);
    expect(r.overlaps).toBeGreaterThan(0);
    expect(r.counted).toBeLessThan(200);
  });
});

describe("hand-off after a release", () => {
  const subscribed = new Set<SpinLock>();
  /** Median ms from the start of `release()` to the waiter holding the lock, over `n` trials. */
  async function handOff(holder: SpinLock, waiter: SpinLock, n: number): Promise<number[]> {
    const times: number[] = [];
    const flag = holder.keys("r").waiters;
    for (let i = 0; i < n; i++) {
      const h = await holder.acquire("r");
      await admin.del(flag);
      const waiting = waiter.acquire("r");
      await sleep(40 + (i % 3) * 7); // the waiter has failed and is pausing
      // wait until a subscribed waiter has flagged the lock (its attempt after the acknowledgement)
      for (let w = 0; w < 100 && subscribed.has(waiter) && (await admin.exists(flag)) === 0; w++)
        await sleep(10);
      const t0 = performance.now();
      await h.release();
      const next = await waiting;
      times.push(performance.now() - t0);
      await next.release();
    }
    return times;
  }

  it("a waiter in another process (pub/sub subscriber) gets in well under retryDelayMs", async () => {
    const retryDelayMs = 100;
    const prefix = randomPrefix();
    const holder = new SpinLock(srv.client(), { prefix, retryDelayMs });
    const waiter = new SpinLock(srv.client(), { prefix, retryDelayMs, subscriber: srv.client() });
    subscribed.add(waiter);
    const spinner = new SpinLock(srv.client(), { prefix, retryDelayMs });
    const woken = median(await handOff(holder, waiter, 31));
    const spun = median(await handOff(holder, spinner, 15));
    console.info(
      `hand-off median, retryDelayMs ${retryDelayMs}: ${woken.toFixed(2)} ms with a subscriber, ` +
        `${spun.toFixed(2)} ms spinning`,
    );
    expect(woken).toBeLessThan(retryDelayMs / 5);
    expect(spun).toBeGreaterThan(woken);
  }, 60_000);

  it("the flag makes releases publish only while someone waits", async () => {
    const prefix = randomPrefix();
    const lock = new SpinLock(srv.client(), { prefix, subscriber: srv.client() });
    const listener = srv.client();
    let messages = 0;
    await listener.subscribe(lock.keys("r").channel);
    listener.on("message", () => messages++);
    for (let i = 0; i < 5; i++) await (await lock.acquire("r")).release();
    await sleep(100);
    expect(messages).toBe(0);
    expect(await admin.exists(lock.keys("r").waiters)).toBe(0);
    const h = await lock.acquire("r");
    const other = new SpinLock(srv.client(), { prefix, subscriber: srv.client() });
    const waiting = other.acquire("r");
    // the waiter fails once, subscribes, and on the acknowledgement attempts again with the flag
    for (let i = 0; i < 200 && (await admin.exists(lock.keys("r").waiters)) === 0; i++) await sleep(10);
    expect(await admin.exists(lock.keys("r").waiters)).toBe(1);
    await h.release(); // publishes: a waiter is registered
    await (await waiting).release(); // publishes too: the flag outlives its waiter by up to waitFlagMs
    for (let i = 0; i < 100 && messages < 2; i++) await sleep(10);
    expect(messages).toBe(2);
    await sleep(1_000); // max(1000, 4 × retryDelayMs): the flag has expired
    expect(await admin.exists(lock.keys("r").waiters)).toBe(0);
    await (await lock.acquire("r")).release();
    await sleep(100);
    expect(messages).toBe(2);
  });
});

/**
 * A TCP relay to the private Redis, for one client: forwards both ways as is, except that once `arm(marker,
 * onReply, hold)` is called, the first request containing `marker` has its reply held back: `onReply` runs
 * the moment that reply leaves Redis (so the request has certainly run), and the reply goes on after `hold`
 * ms, or with `hold: "next"` together with the next reply in one write (so the client reads both in one go).
 * Replies keep their order.
 */
async function replyRelay() {
  let marker: string | undefined;
  let onReply: (() => void) | undefined;
  let holdFor: number | "next" = 0;
  let armed = false;
  const sockets: Socket[] = [];
  const server: Server = createServer((client) => {
    const upstream = createConnection(srv.port, srv.host);
    sockets.push(client, upstream);
    let tail: Promise<unknown> = Promise.resolve();
    let held: Buffer | undefined;
    client.on("data", (chunk: Buffer) => {
      if (marker !== undefined && chunk.includes(marker)) {
        marker = undefined;
        armed = true;
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (held !== undefined) {
        chunk = Buffer.concat([held, chunk]);
        held = undefined;
      } else if (armed) {
        armed = false;
        const fire = onReply;
        onReply = undefined;
        if (holdFor === "next") held = chunk;
        else {
          const ms = holdFor;
          tail = tail.then(() => sleep(ms));
        }
        fire?.();
        if (held !== undefined) return;
      }
      const out = chunk;
      tail = tail.then(() => {
        if (!client.destroyed) client.write(out);
      });
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const clients: Redis[] = [];
  return {
    /** A client connected through the relay (disconnected by `close`). */
    client() {
      const c = srv.client({ port });
      clients.push(c);
      return c;
    },
    arm(m: string, fire: () => void, hold: number | "next") {
      marker = m;
      onReply = fire;
      holdFor = hold;
    },
    close() {
      for (const c of clients) c.disconnect();
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

describe("a release that lands while a waiter's attempt is in flight", () => {
  it("sends the waiter straight into another attempt instead of a full retry pause", async () => {
    const retryDelayMs = 2_000; // a lost wake-up costs a pause of 1–3 s
    const holdMs = 50; // the in-flight attempt's reply is this late
    const relay = await replyRelay();
    try {
      const prefix = randomPrefix();
      const holder = new SpinLock(srv.client(), { prefix });
      const waiter = new SpinLock(relay.client(), {
        prefix,
        retryDelayMs,
        subscriber: srv.client(),
      });
      // The waiter's attempts once subscribed carry the flag ttl, max(1000, 4 × retryDelayMs): they ask the
      // release to publish, and this marks them on the wire.
      const flagged = `\r\n$4\r\n${4 * retryDelayMs}\r\n`;
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const h = await holder.acquire("r");
        let t0 = 0;
        let releasing: Promise<boolean> | undefined;
        relay.arm(
          flagged,
          () => {
            t0 = performance.now();
            releasing = h.release(); // the flagged attempt ran while held; its reply is on the way
          },
          holdMs,
        );
        const next = await waiter.acquire("r");
        times.push(performance.now() - t0);
        expect(await releasing).toBe(true);
        expect(next.fence).toBe(h.fence + 1);
        await next.release();
      }
      console.info(
        `hand-off after a release during an attempt: ${times.map((t) => t.toFixed(1)).join(", ")} ms`,
      );
      // One more round trip after the held reply (~holdMs), not a pause of 0.5–1.5 × retryDelayMs.
      expect(median(times)).toBeLessThan(retryDelayMs / 4);
      expect(Math.max(...times)).toBeLessThan(retryDelayMs / 2);
    } finally {
      relay.close();
    }
  }, 60_000);

  it("same SpinLock, no subscriber: the release's own wake-up, read with the attempt's reply, is not lost", async () => {
    const retryDelayMs = 1_000; // a lost wake-up costs a pause of 0.5–1.5 s
    const relay = await replyRelay();
    try {
      const lock = new SpinLock(relay.client(), { prefix: randomPrefix(), retryDelayMs });
      const attempt = `\r\n$5\r\n${lock.ttlMs}\r\n`; // an acquire carries the TTL; a release does not
      const times: number[] = [];
      for (let i = 0; i < 3; i++) {
        const h = await lock.acquire("r");
        const waiting = lock.acquire("r");
        await sleep(100); // its first attempt failed; it pauses 0.5–1.5 s (the holder's TTL is 10 s)
        let t0 = 0;
        let releasing: Promise<boolean> | undefined;
        relay.arm(
          attempt,
          () => {
            t0 = performance.now();
            releasing = h.release(); // right behind the attempt, which ran while held
          },
          "next", // both replies reach the client in one read: the wake-up lands during the attempt
        );
        const next = await waiting;
        times.push(performance.now() - t0);
        expect(await releasing).toBe(true);
        expect(next.fence).toBe(h.fence + 1);
        await next.release();
      }
      console.info(
        `hand-off, release read with the attempt's reply: ${times.map((t) => t.toFixed(1)).join(", ")} ms`,
      );
      expect(median(times)).toBeLessThan(retryDelayMs / 4);
      expect(Math.max(...times)).toBeLessThan(retryDelayMs / 2);
    } finally {
      relay.close();
    }
  }, 60_000);

  it("a waiter that leaves after being woken in flight hands the wake-up on to the next waiter", async () => {
    const retryDelayMs = 2_000; // a lost wake-up costs the other waiter a pause of 1–3 s
    const relay = await replyRelay();
    try {
      const prefix = randomPrefix();
      const subscriber = srv.client();
      const holder = new SpinLock(srv.client(), { prefix });
      // Two SpinLocks given one subscriber share its wake-ups: a release message wakes the longest waiter.
      const a = new SpinLock(relay.client(), { prefix, retryDelayMs, subscriber });
      const b = new SpinLock(srv.client(), { prefix, retryDelayMs, subscriber });
      const flagged = `\r\n$4\r\n${4 * retryDelayMs}\r\n`;
      const h = await holder.acquire("r");
      const controller = new AbortController();
      const reason = new Error("client went away");
      let second: Promise<LockHandle> | undefined;
      let t0 = 0;
      let releasing: Promise<boolean> | undefined;
      relay.arm(
        flagged,
        () => {
          // a's flagged attempt ran while held (its reply is held 300 ms); a waits longest.
          releasing = (async () => {
            second = b.acquire("r");
            await sleep(30); // b failed too and pauses 1–3 s
            t0 = performance.now();
            const ok = await h.release(); // the message wakes a, whose attempt is in flight…
            await sleep(50);
            controller.abort(reason); // …and which leaves before attempting again
            return ok;
          })();
        },
        300,
      );
      expect(await a.acquire("r", { signal: controller.signal }).catch((e: unknown) => e)).toBe(reason);
      expect(await releasing).toBe(true);
      const next = await second!;
      const handOff = performance.now() - t0;
      console.info(`hand-off to the other waiter: ${handOff.toFixed(1)} ms`);
      expect(next.fence).toBe(h.fence + 1);
      await next.release();
      expect(handOff).toBeLessThan(retryDelayMs / 4);
    } finally {
      relay.close();
    }
  }, 60_000);
});
