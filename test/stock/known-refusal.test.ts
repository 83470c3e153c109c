// Inventory.knownRefusal: what reserve would refuse in this process, asked without a Redis command and
// without reserving; undefined whenever only Redis can tell (nothing known, a caller's id that may be a
// retry, a change heard from another process).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { InvalidArgumentError } from "../../src/errors.js";
import { Inventory } from "../../src/stock/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let admin: Redis;
beforeAll(async () => {
  srv = await startRedis();
  admin = srv.client();
});
afterAll(async () => srv?.stop());

async function commands(): Promise<number> {
  const info = await admin.info("commandstats");
  let n = 0;
  for (const m of info.matchAll(/cmdstat_([^:]+):calls=(\d+)/g))
    if (m[1] !== "info" && m[1] !== "time") n += Number(m[2]);
  return n;
}

async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("Inventory.knownRefusal", () => {
  it("knows nothing at first, then the sold-out answers reserve would give, with no Redis command", async () => {
    const prefix = randomPrefix();
    const a = new Inventory(srv.client(), { prefix, subscriber: srv.client(), localCacheMs: 60_000 });
    const b = new Inventory(srv.client(), { prefix });
    await until("the subscription", async () => {
      const [, n] = (await admin.pubsub("NUMSUB", `${prefix}:restock`)) as [string, number];
      return Number(n) >= 1;
    });
    expect(a.knownRefusal("s", { userId: "u1", reservationId: "r1" })).toBeUndefined();
    await b.setStock("s", 1, { perUserLimit: 1 });
    const won = await b.reserve("s", { userId: "u1", reservationId: "r1" });
    expect(won.ok).toBe(true);
    // A learns "sold out" from a reply, then reads the ids in the background.
    expect(await a.reserve("s", { userId: "u2", reservationId: "r2" })).toEqual({
      ok: false,
      reason: "SOLD_OUT",
    });
    await until("the ids", () => a.knownRefusal("s", { userId: "u3", reservationId: "r3" }) === "SOLD_OUT");
    const before = await commands();
    expect(a.knownRefusal("s", { userId: "u4", reservationId: "r4" })).toBe("SOLD_OUT");
    expect(a.knownRefusal("s", { userId: "u4" })).toBe("SOLD_OUT");
    expect(a.knownRefusal("s", { userId: "u1" })).toBe("LIMIT_REACHED"); // as Redis checks the cap first
    expect(a.knownRefusal("s", { userId: "u1", reservationId: "r1" })).toBeUndefined(); // a retry: Redis replays it
    expect(await commands()).toBe(before);
    // Nothing was reserved by asking.
    const snap = (await b.snapshot("s"))!;
    expect([snap.available, snap.held]).toEqual([0, 1]);
    // A release in another process is heard: only Redis can tell again.
    expect((await b.release("s", "r1")).ok).toBe(true);
    await until("the change message", () => a.knownRefusal("s", { userId: "u5" }) === undefined);
    expect((await a.reserve("s", { userId: "u5", reservationId: "r5" })).ok).toBe(true);
    await Promise.all([a.close(), b.close()]);
  });

  it("refuses bad input with InvalidArgumentError", () => {
    const inv = new Inventory(admin, { prefix: randomPrefix() });
    expect(() => inv.knownRefusal("a{b}", { userId: "u" })).toThrow(InvalidArgumentError);
    expect(() => inv.knownRefusal("s", { userId: "" })).toThrow(InvalidArgumentError);
    expect(() => inv.knownRefusal("s", { userId: "u", quantity: 0 })).toThrow(InvalidArgumentError);
    expect(() => inv.knownRefusal("s", { userId: "u", quantty: 2 } as never)).toThrow(InvalidArgumentError);
  });
});
