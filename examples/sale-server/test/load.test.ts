// The load acceptance, on the embedded servers and on the machine's Redis and PostgreSQL: what each phase
// costs Redis (nothing before the start), then 5,000 buy attempts from 2,000 users against 100 units through
// the whole buy path, each buyer through the waiting room first: exactly 100 orders, nothing oversold, no
// user with two orders, the buy route never sees more buys than the room admits, and after the payment
// timeout cancels the unpaid ones, conservation holds.
import { describe, expect, it } from "vitest";
import { runLoad, summary } from "../src/load.js";
import { deleteKeys, randomPrefix, SHARED_REDIS_URL, startPostgres } from "./support.js";

describe.each([
  { name: "embedded redis-server and PGlite", real: false },
  { name: "the machine's Redis and PostgreSQL", real: true },
])("load ($name)", ({ real }) => {
  it("costs Redis nothing where the answer is known, sells exactly the stock, gives back what was not paid", async () => {
    const db = real ? await startPostgres() : undefined;
    const prefix = randomPrefix("load");
    try {
      const r = await runLoad({
        requests: 5000,
        users: 2000,
        units: 100,
        concurrency: 64,
        payFraction: 0.3,
        paymentTimeoutMs: 45_000,
        prefix,
        env: real ? { REDIS_URL: SHARED_REDIS_URL, DATABASE_URL: db!.url } : {},
      });
      console.log(summary(r));
      const phase = (name: RegExp) => r.phases.find((p) => name.test(p.name))!;
      // Page loads and clicks before the start: answered in process, no Redis command at all. Counted on the
      // example's own Redis only: on the shared one, other programs' commands are in the counts too.
      expect(phase(/^before the start/).requests).toBeGreaterThan(1000);
      if (!real) expect(phase(/^before the start/).commands).toEqual({});
      // A client refused by a rate limit, retrying before its next token time: refused in process.
      expect(phase(/^a refused client/).requests).toBeGreaterThan(10);
      if (!real) expect(phase(/^a refused client/).commands).toEqual({});
      // After the sell-out, buys with new reservation ids (valid tokens): SOLD_OUT in process.
      expect(phase(/^after sell-out/).requests).toBe(200);
      if (!real) expect(phase(/^after sell-out/).commands).toEqual({});
      // A successful buy costs Redis something; the figure is printed and documented.
      expect(phase(/^sale: one successful buy/).total).toBeGreaterThan(0);
      expect(r.durationMs).toBeLessThan(45_000); // else cancelled units could be sold again during the run
      expect(r.reserved).toBe(100);
      expect(r.before.orders.total).toBe(100);
      expect(r.oversold).toBe(0);
      expect(r.before.duplicateUsers).toBe(0);
      expect(r.after.duplicateUsers).toBe(0);
      expect(r.paid).toBe(30);
      expect(r.after.orders).toMatchObject({ total: 100, paid: 30, cancelled: 70, pending: 0 });
      expect(r.after.stock).toEqual({ initial: 100, available: 70, held: 0, confirmed: 30 });
      expect(r.conservation).toBe(true);
      // The waiting room (on, 50 a second, burst 20): the buy route never saw more buys than the room admits,
      // and the report has the line's length over time (the crowd of 64 clients forms a line).
      expect(r.room).toBeDefined();
      expect(r.room!.buysAt.length).toBeGreaterThanOrEqual(50);
      expect(r.room!.maxExcess).toBeLessThanOrEqual(0);
      expect(r.room!.queue.length).toBeGreaterThan(0);
      expect(Math.max(...r.room!.queue.map(([, waiting]) => waiting))).toBeGreaterThan(0);
    } finally {
      await db?.stop();
      // The shared Redis keeps nothing of this run (the load writes thousands of keys).
      if (real) expect(await deleteKeys(prefix)).toBe(0);
    }
  }, 300_000);
});
