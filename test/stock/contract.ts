// The behaviour every StockStore (Inventory on Redis and on Cluster, PostgresInventory on PostgreSQL and PGlite)
// must show. Each backend's test file calls `stockContract` with its own setup.
import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, ConflictError } from "../../src/errors.js";
import { UNLIMITED, type StockStore } from "../../src/stock/index.js";

export interface ContractOptions {
  /** A store over a fresh namespace (prefix / schema). */
  store: () => StockStore;
  /** Concurrency acceptance size; the SQL backends on PGlite run a smaller crowd. */
  crowd?: { calls: number; users: number; units: number };
  propertyRuns?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sku = () => `sku-${randomUUID().slice(0, 8)}`;

function conserve(s: { initial: number; available: number; held: number; confirmed: number } | null) {
  expect(s).not.toBeNull();
  expect(s!.available).toBeGreaterThanOrEqual(0);
  expect(s!.available + s!.held + s!.confirmed).toBe(s!.initial);
}

export function stockContract(opts: ContractOptions): void {
  const { calls, users, units } = opts.crowd ?? { calls: 2000, users: 500, units: 100 };

  describe("reserve / confirm / release", () => {
    it("reserves, confirms and releases with exact counters", async () => {
      const store = opts.store();
      const s = sku();
      await store.setStock(s, 5, { perUserLimit: 2 });
      const a = await store.reserve(s, { userId: "u1", reservationId: "r1" });
      expect(a).toEqual({ ok: true, reservationId: "r1", remaining: 4 });
      const b = await store.reserve(s, { userId: "u2", quantity: 2 });
      expect(b.ok && b.remaining).toBe(2);
      expect(await store.snapshot(s)).toEqual({
        initial: 5,
        available: 2,
        held: 3,
        confirmed: 0,
        perUserLimit: 2,
      });
      expect(await store.confirm(s, "r1")).toEqual({ ok: true });
      expect(await store.confirm(s, "r1")).toEqual({ ok: true });
      expect(await store.release(s, "r1")).toEqual({ ok: false, reason: "CONFIRMED" });
      if (!b.ok) throw new Error("b failed");
      expect(await store.release(s, b.reservationId)).toEqual({ ok: true });
      expect(await store.release(s, b.reservationId)).toEqual({ ok: true });
      expect(await store.confirm(s, b.reservationId)).toEqual({ ok: false, reason: "RELEASED" });
      expect(await store.snapshot(s)).toEqual({
        initial: 5,
        available: 4,
        held: 0,
        confirmed: 1,
        perUserLimit: 2,
      });
      expect(await store.confirm(s, "nope")).toEqual({ ok: false, reason: "UNKNOWN_RESERVATION" });
      expect(await store.release(s, "nope")).toEqual({ ok: false, reason: "UNKNOWN_RESERVATION" });
    });

    it("counts quantity against the per-user limit: 1 then 1 under limit 2, never 3", async () => {
      const store = opts.store();
      const s = sku();
      await store.setStock(s, 10, { perUserLimit: 2 });
      expect((await store.reserve(s, { userId: "u" })).ok).toBe(true);
      expect((await store.reserve(s, { userId: "u" })).ok).toBe(true);
      expect(await store.reserve(s, { userId: "u" })).toEqual({ ok: false, reason: "LIMIT_REACHED" });
      expect(await store.reserve(s, { userId: "v", quantity: 3 })).toEqual({
        ok: false,
        reason: "LIMIT_REACHED",
      });
      const v = await store.reserve(s, { userId: "v", quantity: 2 });
      expect(v.ok).toBe(true);
      // a release gives the quota back
      if (!v.ok) throw new Error();
      await store.release(s, v.reservationId);
      expect((await store.reserve(s, { userId: "v", quantity: 2 })).ok).toBe(true);
      expect((await store.snapshot(s))!.held).toBe(4);
    });

    it("returns the first outcome for a repeated reservationId and changes nothing", async () => {
      const store = opts.store();
      const s = sku();
      await store.setStock(s, 3, { perUserLimit: 3 });
      const first = await store.reserve(s, { userId: "u", reservationId: "same" });
      await store.reserve(s, { userId: "w" });
      const again = await store.reserve(s, { userId: "u", reservationId: "same" });
      expect(again).toEqual(first);
      expect((await store.snapshot(s))!.available).toBe(1);
      await expect(store.reserve(s, { userId: "other", reservationId: "same" })).rejects.toBeInstanceOf(
        ConflictError,
      );
      await expect(
        store.reserve(s, { userId: "u", quantity: 2, reservationId: "same" }),
      ).rejects.toMatchObject({
        code: "RESERVATION_CONFLICT",
      });
      expect((await store.snapshot(s))!.available).toBe(1);
    });

    it("answers SOLD_OUT, UNKNOWN_SKU, NOT_STARTED and ENDED without writing", async () => {
      const store = opts.store();
      const s = sku();
      await store.setStock(s, 1, { perUserLimit: 5 });
      expect((await store.reserve(s, { userId: "a" })).ok).toBe(true);
      expect(await store.reserve(s, { userId: "b" })).toEqual({ ok: false, reason: "SOLD_OUT" });
      expect(await store.reserve(sku(), { userId: "b" })).toEqual({ ok: false, reason: "UNKNOWN_SKU" });
      const later = sku();
      await store.setStock(later, 5, { startsAt: Date.now() + 3_600_000 });
      expect(await store.reserve(later, { userId: "b" })).toEqual({ ok: false, reason: "NOT_STARTED" });
      const past = sku();
      await store.setStock(past, 5, { startsAt: 1_000, endsAt: 2_000 });
      expect(await store.reserve(past, { userId: "b" })).toEqual({ ok: false, reason: "ENDED" });
      expect(await store.snapshot(later)).toMatchObject({ available: 5, held: 0 });
      expect(await store.snapshot(past)).toMatchObject({
        available: 5,
        held: 0,
        startsAt: 1_000,
        endsAt: 2_000,
      });
      expect(await store.snapshot(sku())).toBeNull();
    });

    it("supports UNLIMITED stock with the per-user limit still applied", async () => {
      const store = opts.store();
      const s = sku();
      await store.setStock(s, UNLIMITED, { perUserLimit: 2 });
      for (let i = 0; i < 20; i++) expect((await store.reserve(s, { userId: `u${i}` })).ok).toBe(true);
      expect(await store.reserve(s, { userId: "u0", quantity: 2 })).toEqual({
        ok: false,
        reason: "LIMIT_REACHED",
      });
      expect(await store.snapshot(s)).toMatchObject({ initial: -1, available: -1, held: 20 });
    });

    it("adjusts a live SKU without losing reservations, and refuses to go below what is committed", async () => {
      const store = opts.store();
      const s = sku();
      await store.setStock(s, 5, { perUserLimit: 5 });
      const r = await store.reserve(s, { userId: "u", quantity: 3 });
      if (!r.ok) throw new Error();
      await store.confirm(s, r.reservationId);
      await store.reserve(s, { userId: "v", quantity: 1 });
      await store.setStock(s, 10, { perUserLimit: 5 });
      expect(await store.snapshot(s)).toMatchObject({ initial: 10, available: 6, held: 1, confirmed: 3 });
      await expect(store.setStock(s, 3, { perUserLimit: 5 })).rejects.toMatchObject({
        code: "STOCK_BELOW_COMMITTED",
      });
      expect(await store.snapshot(s)).toMatchObject({ initial: 10, available: 6, held: 1, confirmed: 3 });
      await store.setStock(s, 4, { perUserLimit: 5 });
      expect(await store.snapshot(s)).toMatchObject({ initial: 4, available: 0, held: 1, confirmed: 3 });
      expect(await store.reserve(s, { userId: "w" })).toEqual({ ok: false, reason: "SOLD_OUT" });
      // the user's count survived the adjustment
      expect(await store.reserve(s, { userId: "u", quantity: 3 })).toEqual({
        ok: false,
        reason: "LIMIT_REACHED",
      });
    });

    it("expires holds by server time; an expired hold confirms as RELEASED", async () => {
      const store = opts.store();
      const s = sku();
      await store.setStock(s, 4, { perUserLimit: 1, holdMs: 150 });
      const ids: string[] = [];
      for (const u of ["a", "b", "c"]) {
        const r = await store.reserve(s, { userId: u });
        if (!r.ok) throw new Error();
        ids.push(r.reservationId);
      }
      expect(await store.confirm(s, ids[0]!)).toEqual({ ok: true });
      expect(await store.expireHolds(s)).toBe(0);
      await sleep(250);
      expect(await store.confirm(s, ids[1]!)).toEqual({ ok: false, reason: "RELEASED" });
      expect(await store.expireHolds(s)).toBe(1);
      expect(await store.expireHolds(s)).toBe(0);
      expect(await store.release(s, ids[2]!)).toEqual({ ok: true });
      expect(await store.snapshot(s)).toMatchObject({ available: 3, held: 0, confirmed: 1 });
      // quotas came back
      expect((await store.reserve(s, { userId: "b" })).ok).toBe(true);
    });

    it("rejects bad input with InvalidArgumentError", async () => {
      const store = opts.store();
      const s = sku();
      await store.setStock(s, 5);
      const bad: [string, () => Promise<unknown>][] = [
        ["negative quantity", () => store.reserve(s, { userId: "u", quantity: -1 })],
        ["zero quantity", () => store.reserve(s, { userId: "u", quantity: 0 })],
        ["fractional quantity", () => store.reserve(s, { userId: "u", quantity: 1.5 })],
        ["NaN quantity", () => store.reserve(s, { userId: "u", quantity: Number.NaN })],
        ["braces in sku", () => store.reserve("a{b}", { userId: "u" })],
        ["braces in user", () => store.reserve(s, { userId: "{u}" })],
        ["control char", () => store.reserve(s, { userId: "u\u0000" })],
        ["whitespace", () => store.reserve(s, { userId: "u v" })],
        ["empty user", () => store.reserve(s, { userId: "" })],
        ["too long", () => store.reserve(s, { userId: "x".repeat(201) })],
        ["bad reservation id", () => store.reserve(s, { userId: "u", reservationId: "a\nb" })],
        ["no options", () => store.reserve(s, undefined as never)],
        ["negative stock", () => store.setStock(s, -2)],
        ["fractional stock", () => store.setStock(s, 2.5)],
        ["zero limit", () => store.setStock(s, 5, { perUserLimit: 0 })],
        ["window reversed", () => store.setStock(s, 5, { startsAt: 2000, endsAt: 1000 })],
        ["zero holdMs", () => store.setStock(s, 5, { holdMs: 0 })],
        ["confirm bad id", () => store.confirm(s, "{x}")],
        ["release bad sku", () => store.release("", "r")],
        ["expire bad limit", () => store.expireHolds(s, { limit: 0 })],
      ];
      for (const [label, call] of bad) {
        await expect(call(), label).rejects.toBeInstanceOf(InvalidArgumentError);
      }
      expect(await store.snapshot(s)).toEqual({
        initial: 5,
        available: 5,
        held: 0,
        confirmed: 0,
        perUserLimit: 1,
      });
    });
  });

  describe("under a crowd", () => {
    it(`${calls} concurrent reserves from ${users} users (20% repeats) against ${units} units: exactly ${units} sold`, async () => {
      const store = opts.store();
      const s = sku();
      await store.setStock(s, units, { perUserLimit: 1 });
      // Each request: a user and a reservationId; 20% reuse an earlier request's id (a client retry).
      const requests: { userId: string; reservationId: string }[] = [];
      for (let i = 0; i < calls; i++) {
        if (i > 0 && i % 5 === 0)
          requests.push({ ...requests[Math.floor(Math.random() * requests.length)]! });
        else requests.push({ userId: `user-${i % users}`, reservationId: `req-${i}` });
      }
      const results = await Promise.all(requests.map((r) => store.reserve(s, r)));
      const won = new Map<string, string>();
      results.forEach((res, i) => {
        if (res.ok) won.set(res.reservationId, requests[i]!.userId);
      });
      expect(won.size).toBe(units);
      expect(new Set(won.values()).size).toBe(units);
      // a repeated id always got the same answer as the original
      const byId = new Map<string, string>();
      results.forEach((res, i) => {
        const key = requests[i]!.reservationId;
        const seen = byId.get(key);
        const mine = JSON.stringify(res.ok ? { ok: true } : res);
        if (seen !== undefined && res.ok) expect(seen).toBe(mine);
        if (res.ok) byId.set(key, mine);
      });
      const snap = await store.snapshot(s);
      expect(snap).toMatchObject({ initial: units, available: 0, held: units, confirmed: 0 });
      conserve(snap);
    });

    it("confirm racing release, 1,000 times: exactly one wins, stock comes back at most once", async () => {
      const store = opts.store();
      const s = sku();
      const n = 1000;
      await store.setStock(s, n, { perUserLimit: 1 });
      const ids: string[] = [];
      for (let i = 0; i < n; i += 50) {
        const batch = await Promise.all(
          Array.from({ length: 50 }, (_, j) =>
            store.reserve(s, { userId: `u${i + j}`, reservationId: `r${i + j}` }),
          ),
        );
        for (const r of batch) if (r.ok) ids.push(r.reservationId);
      }
      expect(ids.length).toBe(n);
      let confirmed = 0;
      let released = 0;
      for (let i = 0; i < n; i += 100) {
        const slice = ids.slice(i, i + 100);
        const outcomes = await Promise.all(
          slice.map(async (id, j) => {
            // Alternate which call is sent first.
            const r1 = j % 2 ? store.release(s, id) : undefined;
            const c = store.confirm(s, id);
            const r2 = store.release(s, id);
            const [co, ro1, ro2] = await Promise.all([c, r1 ?? store.release(s, id), r2]);
            return { c: co.ok, r: ro1.ok || ro2.ok, r1: ro1.ok, r2: ro2.ok };
          }),
        );
        for (const o of outcomes) {
          expect(o.c !== o.r).toBe(true); // exactly one of confirm / release won
          expect(o.r1).toBe(o.r2); // both releases report the same first outcome
          if (o.c) confirmed++;
          else released++;
        }
      }
      const snap = await store.snapshot(s);
      expect(snap).toMatchObject({ available: released, held: 0, confirmed });
      conserve(snap);
    });
  });

  describe("against a model", () => {
    type Op =
      | { t: "reserve"; user: number; qty: number; rid: number; expiring: boolean }
      | { t: "confirm"; rid: number }
      | { t: "release"; rid: number }
      | { t: "expire" };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 4,
        arbitrary: fc.record({
          t: fc.constant("reserve" as const),
          user: fc.nat(4),
          qty: fc.integer({ min: 1, max: 3 }),
          rid: fc.nat(12),
          expiring: fc.boolean(),
        }),
      },
      { weight: 2, arbitrary: fc.record({ t: fc.constant("confirm" as const), rid: fc.nat(12) }) },
      { weight: 2, arbitrary: fc.record({ t: fc.constant("release" as const), rid: fc.nat(12) }) },
      { weight: 1, arbitrary: fc.record({ t: fc.constant("expire" as const) }) },
    );

    it("random interleavings of reserve / confirm / release / expire never diverge from the model", async () => {
      const store = opts.store();
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 0, max: 12 }),
          fc.array(opArb, { maxLength: 25 }),
          async (total, ops) => {
            const s = sku();
            const limit = 3;
            await store.setStock(s, total, { perUserLimit: limit, holdMs: 3_600_000 });
            type Rec = {
              user: number;
              qty: number;
              state: "H" | "C" | "R";
              expiring: boolean;
              remaining: number;
            };
            const m = { available: total, held: 0, confirmed: 0, users: new Map<number, number>() };
            const recs = new Map<number, Rec>();
            const giveBack = (rec: Rec) => {
              rec.state = "R";
              m.held -= rec.qty;
              m.available += rec.qty;
              m.users.set(rec.user, (m.users.get(rec.user) ?? 0) - rec.qty);
            };
            for (const op of ops) {
              if (op.t === "reserve") {
                // Expiring holds get holdMs 1 and are certainly past it by the next operation.
                await store.setStock(s, total, { perUserLimit: limit, holdMs: op.expiring ? 1 : 3_600_000 });
                const got = await store
                  .reserve(s, { userId: `u${op.user}`, quantity: op.qty, reservationId: `r${op.rid}` })
                  .catch((e: { code?: string }) => ({ conflict: e.code }));
                if (op.expiring) await sleep(3);
                const prev = recs.get(op.rid);
                if (prev) {
                  if (prev.user !== op.user || prev.qty !== op.qty)
                    expect(got).toEqual({ conflict: "RESERVATION_CONFLICT" });
                  else
                    expect(got).toEqual({ ok: true, reservationId: `r${op.rid}`, remaining: prev.remaining });
                } else if ((m.users.get(op.user) ?? 0) + op.qty > limit) {
                  expect(got).toEqual({ ok: false, reason: "LIMIT_REACHED" });
                } else if (m.available < op.qty) {
                  expect(got).toEqual({ ok: false, reason: "SOLD_OUT" });
                } else {
                  m.available -= op.qty;
                  m.held += op.qty;
                  m.users.set(op.user, (m.users.get(op.user) ?? 0) + op.qty);
                  recs.set(op.rid, {
                    user: op.user,
                    qty: op.qty,
                    state: "H",
                    expiring: op.expiring,
                    remaining: m.available,
                  });
                  expect(got).toEqual({ ok: true, reservationId: `r${op.rid}`, remaining: m.available });
                }
              } else if (op.t === "confirm") {
                const got = await store.confirm(s, `r${op.rid}`);
                const rec = recs.get(op.rid);
                if (!rec) expect(got).toEqual({ ok: false, reason: "UNKNOWN_RESERVATION" });
                else if (rec.state === "H" && rec.expiring) {
                  giveBack(rec);
                  expect(got).toEqual({ ok: false, reason: "RELEASED" });
                } else if (rec.state === "H") {
                  rec.state = "C";
                  m.held -= rec.qty;
                  m.confirmed += rec.qty;
                  expect(got).toEqual({ ok: true });
                } else
                  expect(got).toEqual(rec.state === "C" ? { ok: true } : { ok: false, reason: "RELEASED" });
              } else if (op.t === "release") {
                const got = await store.release(s, `r${op.rid}`);
                const rec = recs.get(op.rid);
                if (!rec) expect(got).toEqual({ ok: false, reason: "UNKNOWN_RESERVATION" });
                else if (rec.state === "H") {
                  giveBack(rec);
                  expect(got).toEqual({ ok: true });
                } else
                  expect(got).toEqual(rec.state === "R" ? { ok: true } : { ok: false, reason: "CONFIRMED" });
              } else {
                const got = await store.expireHolds(s, { limit: 100 });
                let n = 0;
                for (const rec of recs.values())
                  if (rec.state === "H" && rec.expiring) {
                    giveBack(rec);
                    n++;
                  }
                expect(got).toBe(n);
              }
              const snap = await store.snapshot(s);
              expect(snap).toMatchObject({
                initial: total,
                available: m.available,
                held: m.held,
                confirmed: m.confirmed,
              });
            }
          },
        ),
        { numRuns: opts.propertyRuns ?? 40 },
      );
    });
  });
}
