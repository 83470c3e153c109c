// The admission rate on Redis time: a room admitting R a second with a burst of B, polled by 4 clients (4
// WaitingRooms on their own connections, as 4 servers would be), never admits more than B + R × (seconds since
// the opening), judged on Redis TIME, whatever the application servers' clocks say (Date.now shifted by
// ±10 minutes, or jumping between the two during the run).
//
// Exact, with no timing tolerance: every pass carries its admission number n and its expiry, and the expiry
// is the admission's Redis time (ms, rounded down) + passTtlMs; so each admission is checked on its own:
// n ≤ B + R × (admittedAt + 1 ms − opensAt).
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { Redis } from "ioredis";
import { redisTimeMs } from "../../src/internal/time.js";
import { WaitingRoom } from "../../src/queue/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());
afterEach(() => {
  vi.useRealTimers();
});

const TEN_MIN = 600_000;

describe.each([
  ["in step with Redis", 0],
  ["10 min ahead", TEN_MIN],
  ["10 min behind", -TEN_MIN],
  ["jumping between 10 min behind and 10 min ahead", "jump"],
] as const)("polled by 4 clients, application clock %s", (_label, skew) => {
  it("admits at most burst + rate × elapsed on Redis time, in line order", async () => {
    const R = 20;
    const B = 10;
    const TTL = 600_000;
    const USERS = 200;
    const WANTED = 40; // 1.5 s of refill after the burst
    const roomId = randomPrefix("rate");
    const opensAt = await redisTimeMs(redis);
    const rooms = Array.from(
      { length: 4 },
      () =>
        new WaitingRoom(srv.client(), {
          roomId,
          secret: "admission-rate-test-secret-32-bytes!",
          opensAt,
          admitPerSecond: R,
          burst: B,
          passTtlMs: TTL,
        }),
    );
    let jumper: NodeJS.Timeout | undefined;
    if (skew !== 0) {
      const real = Date.now();
      vi.useFakeTimers({ toFake: ["Date"], shouldAdvanceTime: true });
      if (skew === "jump") {
        let n = 0;
        jumper = setInterval(() => vi.setSystemTime(real + (n++ % 2 ? TEN_MIN : -TEN_MIN) + 100 * n), 50);
      } else vi.setSystemTime(real + skew);
    }
    // Everyone joins at once (in line order u0, u1, …: one client, one batch), then 4 clients poll.
    const joined = await Promise.all(Array.from({ length: USERS }, (_, i) => rooms[0]!.join(`u${i}`)));
    const tickets = joined.map((j) => {
      if (j.state === "CLOSED" || j.state === "BEFORE_OPENING") throw new Error(j.state);
      return j.ticket;
    });
    const admissions = new Map<number, { user: number; at: number }>();
    const check = (user: number, n: number, expiresAt: number) => {
      const at = expiresAt - TTL;
      const prev = admissions.get(n);
      if (prev !== undefined) expect(prev.user).toBe(user);
      admissions.set(n, { user, at });
    };
    joined.forEach((j, i) => {
      if (j.state === "ADMITTED") check(i, j.admission, j.expiresAt);
    });
    let polls = 0;
    await Promise.all(
      rooms.map(async (room, c) => {
        while (admissions.size < WANTED) {
          // Each client polls the 20 users nearest the head that it looks after.
          const mine: number[] = [];
          for (let i = c; i < USERS && mine.length < 20; i += 4) if (!admitted(i)) mine.push(i);
          const rs = await Promise.all(mine.map((i) => room.status(tickets[i]!, { userId: `u${i}` })));
          polls += rs.length;
          rs.forEach((s, k) => {
            if (s.state === "ADMITTED") check(mine[k]!, s.admission, s.expiresAt);
          });
        }
      }),
    );
    clearInterval(jumper);
    function admitted(i: number): boolean {
      for (const a of admissions.values()) if (a.user === i) return true;
      return false;
    }
    const stats = await rooms[0]!.stats();
    expect(stats.admitted).toBeGreaterThanOrEqual(WANTED);
    // Every admission seen, on Redis time: n ≤ B + R × (its time − opensAt), the time rounded up to the ms.
    for (const [n, { at }] of admissions) {
      expect(n).toBeLessThanOrEqual(B + (R * (at + 1 - opensAt)) / 1000);
    }
    // And the total at the last reading.
    expect(stats.admitted).toBeLessThanOrEqual(B + (R * (stats.now + 1 - opensAt)) / 1000);
    // Admissions went in line order: the n-th admission is u(n-1).
    for (const [n, { user }] of admissions) expect(user).toBe(n - 1);
    // The rate was reached, not just respected: polled all along, the line kept moving.
    expect(stats.admitted).toBeGreaterThanOrEqual(B + (R * (stats.now - opensAt)) / 1000 / 2);
    expect(polls).toBeGreaterThan(WANTED);
    await rooms[0]!.clear();
  });
});
