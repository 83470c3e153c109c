// The load acceptance: 5,000 buy attempts from 2,000 users against 100 units, through the whole buy path,
// on the embedded servers and on the machine's Redis and PostgreSQL: exactly 100 orders, nothing oversold,
// no user with two orders, and after the payment timeout cancels the unpaid ones, conservation holds.
import { describe, expect, it } from "vitest";
import { runLoad, summary } from "../src/load.js";
import { startPostgres } from "../../../test/support/postgres.js";
import { randomPrefix } from "../../../test/support/redis.js";

describe.each([
  { name: "embedded redis-server and PGlite", real: false },
  { name: "the machine's Redis and PostgreSQL", real: true },
])("load ($name)", ({ real }) => {
  it("sells exactly the stock, once per user, and gives back what was not paid", async () => {
    const db = real ? await startPostgres(10) : undefined;
    try {
      const r = await runLoad({
        requests: 5000,
        users: 2000,
        units: 100,
        concurrency: 64,
        payFraction: 0.3,
        paymentTimeoutMs: 30_000,
        prefix: randomPrefix("load"),
        env: real
          ? { REDIS_URL: process.env.REDIS_URL ?? "redis://127.0.0.1:6379", DATABASE_URL: db!.url }
          : {},
      });
      console.log(summary(r));
      expect(r.durationMs).toBeLessThan(30_000); // else cancelled units could be sold again during the run
      expect(r.reserved).toBe(100);
      expect(r.before.orders.total).toBe(100);
      expect(r.oversold).toBe(0);
      expect(r.before.duplicateUsers).toBe(0);
      expect(r.after.duplicateUsers).toBe(0);
      expect(r.paid).toBe(30);
      expect(r.after.orders).toMatchObject({ total: 100, paid: 30, cancelled: 70, pending: 0 });
      expect(r.after.stock).toEqual({ initial: 100, available: 70, held: 0, confirmed: 30 });
      expect(r.conservation).toBe(true);
      expect(r.ok).toBe(true);
    } finally {
      await db?.stop();
    }
  }, 240_000);
});
