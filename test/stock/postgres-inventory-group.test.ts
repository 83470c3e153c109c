// PostgresInventory's group commit, on the machine's PostgreSQL (a private database) and on PGlite: calls of one
// SKU made together share one statement and one transaction, yet each is decided on its own, in order, with
// its own result, and a call that fails fails alone.
import { randomUUID } from "node:crypto";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConflictError, DatabaseError, InvalidArgumentError } from "../../src/errors.js";
import type { SqlClient } from "../../src/internal/sql.js";
import { PostgresInventory, type ReserveOptions, type ReserveResult } from "../../src/stock/index.js";
import { startPostgres, type PrivateDatabase } from "../support/postgres.js";

interface Backend {
  readonly db: SqlClient;
  /** A second client on the same database (another process's pool), where the backend has one. */
  readonly other?: SqlClient;
  stop(): Promise<void>;
}

const BACKENDS = [
  {
    name: "PostgreSQL",
    crowd: { calls: 1500, users: 300, units: 200 },
    async start(): Promise<Backend> {
      const pgdb: PrivateDatabase = await startPostgres(16);
      const other = new pg.Pool({ connectionString: pgdb.url, max: 8 });
      other.on("error", () => {});
      return {
        db: pgdb.pool,
        other,
        stop: async () => {
          await other.end();
          await pgdb.stop();
        },
      };
    },
  },
  {
    name: "PGlite",
    crowd: { calls: 400, users: 100, units: 60 },
    async start(): Promise<Backend> {
      const lite = new PGlite();
      await lite.waitReady;
      return { db: lite, stop: () => lite.close() };
    },
  },
];

const newSku = () => `sku-${randomUUID().slice(0, 8)}`;

async function rows<T>(db: SqlClient, sql: string, params: unknown[] = []): Promise<T[]> {
  return (await db.query(sql, params)).rows as T[];
}

/** Runs every call in the same tick (so they share statements) and returns each one's outcome or error. */
function together(
  stock: PostgresInventory,
  sku: string,
  calls: readonly ReserveOptions[],
): Promise<(ReserveResult | Error)[]> {
  return Promise.all(calls.map((c) => stock.reserve(sku, c).catch((e: unknown) => e as Error)));
}

describe.each(BACKENDS)("PostgresInventory group commit ($name)", (backend) => {
  let b: Backend;
  let stock: PostgresInventory;
  beforeAll(async () => {
    b = await backend.start();
    stock = new PostgresInventory(b.db, { tablePrefix: "gc_" });
    await stock.migrate();
  });
  afterAll(async () => b?.stop());

  it("reservations made together share one transaction", async () => {
    const sku = newSku();
    await stock.setStock(sku, 1000, { perUserLimit: 1 });
    const out = await together(
      stock,
      sku,
      Array.from({ length: 64 }, (_, i) => ({ userId: `u${i}`, reservationId: `r${i}` })),
    );
    expect(out.every((r) => !(r instanceof Error) && r.ok)).toBe(true);
    // Rows written by one transaction carry its id in xmin.
    const [t] = await rows<{ n: number; txns: number }>(
      b.db,
      "SELECT count(*)::int AS n, count(DISTINCT xmin::text)::int AS txns FROM gc_reservation WHERE sku = $1",
      [sku],
    );
    expect(t).toEqual({ n: 64, txns: 1 });
    // …and each got its own place in the order: remaining counts down call by call.
    expect(out.map((r) => (r as { remaining: number }).remaining)).toEqual(
      Array.from({ length: 64 }, (_, i) => 999 - i),
    );
  });

  it("each item is decided on its own terms, in order, exactly as one call after another", async () => {
    const calls: ReserveOptions[] = [
      { userId: "u1", reservationId: "x" },
      { userId: "u1", reservationId: "x" }, // replay of the item before
      { userId: "u1", reservationId: "y" },
      { userId: "u1", reservationId: "z" }, // over the cap of 2
      { userId: "u2", reservationId: "x" }, // x belongs to u1: conflict
      { userId: "u2", reservationId: "w", quantity: 2 }, // 1 left: sold out
      { userId: "u2", reservationId: "w", quantity: 1 }, // a refused id is decided afresh
      { userId: "u3", reservationId: "v" }, // nothing left
      { userId: "u1", reservationId: "y" }, // replay, with the remaining of its first success
    ];
    const grouped = newSku();
    const sequential = newSku();
    for (const s of [grouped, sequential]) await stock.setStock(s, 3, { perUserLimit: 2 });
    const got = await together(stock, grouped, calls);
    const want: (ReserveResult | Error)[] = [];
    for (const c of calls) want.push(await stock.reserve(sequential, c).catch((e: unknown) => e as Error));
    const show = (r: ReserveResult | Error) => (r instanceof Error ? r.constructor.name : r);
    expect(got.map(show)).toEqual(want.map(show));
    expect(got.map(show)).toEqual([
      { ok: true, reservationId: "x", remaining: 2 },
      { ok: true, reservationId: "x", remaining: 2 },
      { ok: true, reservationId: "y", remaining: 1 },
      { ok: false, reason: "LIMIT_REACHED" },
      "ConflictError",
      { ok: false, reason: "SOLD_OUT" },
      { ok: true, reservationId: "w", remaining: 0 },
      { ok: false, reason: "SOLD_OUT" },
      { ok: true, reservationId: "y", remaining: 1 },
    ]);
    expect(await stock.snapshot(grouped)).toMatchObject({ available: 0, held: 3 });
  });

  it("a crowd: sold == stock, no user over the cap, and a replay by id returns the same result", async () => {
    const { calls, users, units } = backend.crowd;
    const sku = newSku();
    const cap = 2;
    await stock.setStock(sku, units, { perUserLimit: cap });
    // Quantities of 1 and 2; every fifth call repeats an earlier call (a client retry).
    const requests: { userId: string; reservationId: string; quantity: number }[] = [];
    for (let i = 0; i < calls; i++) {
      if (i % 5 === 4) requests.push({ ...requests[(i * 7919) % requests.length]! });
      else
        requests.push({
          userId: `u${i % users}`,
          reservationId: `r${i}`,
          quantity: 1 + (i % 3 === 0 ? 1 : 0),
        });
    }
    // Waves of calls started together, as a crowd arrives, on two clients where the backend has two.
    const stores = [stock, ...(b.other ? [new PostgresInventory(b.other, { tablePrefix: "gc_" })] : [])];
    const results: (ReserveResult | Error)[] = await Promise.all(
      requests.map((r, i) => stores[i % stores.length]!.reserve(sku, r).catch((e: unknown) => e as Error)),
    );
    expect(results.filter((r) => r instanceof Error)).toEqual([]);
    const won = new Map<string, { userId: string; quantity: number; remaining: number }>();
    results.forEach((r, i) => {
      if (r instanceof Error || !r.ok) return;
      const first = won.get(r.reservationId);
      // Every success of one id is the same reservation.
      if (first !== undefined) expect(r.remaining).toBe(first.remaining);
      else won.set(r.reservationId, { ...requests[i]!, remaining: r.remaining });
    });
    const sold = [...won.values()].reduce((n, w) => n + w.quantity, 0);
    expect(sold).toBe(units); // demand is far above stock: exactly the stock sells
    const perUser = new Map<string, number>();
    for (const w of won.values()) perUser.set(w.userId, (perUser.get(w.userId) ?? 0) + w.quantity);
    expect(Math.max(...perUser.values())).toBeLessThanOrEqual(cap);
    // The books in the database agree.
    expect(await stock.snapshot(sku)).toMatchObject({
      initial: units,
      available: 0,
      held: units,
      confirmed: 0,
    });
    const [db] = await rows<{ n: number; q: number }>(
      b.db,
      "SELECT count(*)::int AS n, coalesce(sum(quantity), 0)::int AS q FROM gc_reservation WHERE sku = $1",
      [sku],
    );
    expect(db).toEqual({ n: won.size, q: units });
    const userRows = await rows<{ user_id: string; quantity: number }>(
      b.db,
      "SELECT user_id, quantity FROM gc_stock_user WHERE sku = $1",
      [sku],
    );
    expect(new Map(userRows.map((u) => [u.user_id, u.quantity]))).toEqual(perUser);
    // A replay of every success, all at once, returns that success and changes nothing.
    const ids = [...won.entries()];
    const replays = await together(
      stock,
      sku,
      ids.map(([id, w]) => ({ userId: w.userId, quantity: w.quantity, reservationId: id })),
    );
    expect(replays).toEqual(ids.map(([id, w]) => ({ ok: true, reservationId: id, remaining: w.remaining })));
    expect(await stock.snapshot(sku)).toMatchObject({ available: 0, held: units });
  });

  it("a mixed batch with bad input rejects only that item, with InvalidArgumentError", async () => {
    const sku = newSku();
    await stock.setStock(sku, 10, { perUserLimit: 1 });
    await stock.reserve(sku, { userId: "owner", reservationId: "taken" });
    const out = await together(stock, sku, [
      { userId: "a", reservationId: "a1" },
      { userId: "b", quantity: 0 },
      { userId: "c", reservationId: "c1" },
      { userId: "{d}" },
      { userId: "e", reservationId: "taken" }, // another user's id
      { userId: "f", reservationId: "x".repeat(201) },
      { userId: "g", reservationId: "g1" },
    ]);
    expect(out[0]).toEqual({ ok: true, reservationId: "a1", remaining: 8 });
    expect(out[1]).toBeInstanceOf(InvalidArgumentError);
    expect(out[2]).toEqual({ ok: true, reservationId: "c1", remaining: 7 });
    expect(out[3]).toBeInstanceOf(InvalidArgumentError);
    expect(out[4]).toBeInstanceOf(ConflictError);
    expect(out[5]).toBeInstanceOf(InvalidArgumentError);
    expect(out[6]).toEqual({ ok: true, reservationId: "g1", remaining: 6 });
    expect(await stock.snapshot(sku)).toMatchObject({ available: 6, held: 4 });
  });

  it("a row the database refuses fails only its own call; the others are applied in order", async () => {
    // A constraint of the user's own, which the library cannot check before: the shared statement fails,
    // so each call runs again alone.
    const s = new PostgresInventory(b.db, { tablePrefix: "gcban_" });
    await s.migrate();
    await b.db.query("ALTER TABLE gcban_stock_user DROP CONSTRAINT IF EXISTS no_banned");
    await b.db.query("ALTER TABLE gcban_stock_user ADD CONSTRAINT no_banned CHECK (user_id <> 'banned')");
    const sku = newSku();
    await s.setStock(sku, 10, { perUserLimit: 1 });
    const out = await together(s, sku, [
      { userId: "a", reservationId: "a1" },
      { userId: "banned", reservationId: "b1" },
      { userId: "c", reservationId: "c1" },
      { userId: "d", reservationId: "d1" },
    ]);
    expect(out[0]).toEqual({ ok: true, reservationId: "a1", remaining: 9 });
    expect(out[1]).toBeInstanceOf(DatabaseError);
    expect(String((out[1] as Error).message)).toMatch(/no_banned/);
    expect(out[2]).toEqual({ ok: true, reservationId: "c1", remaining: 8 });
    expect(out[3]).toEqual({ ok: true, reservationId: "d1", remaining: 7 });
    expect(await s.snapshot(sku)).toMatchObject({ available: 7, held: 3 });
    const [n] = await rows<{ n: number }>(
      b.db,
      "SELECT count(*)::int AS n FROM gcban_reservation WHERE sku = $1",
      [sku],
    );
    expect(n!.n).toBe(3);
  });

  it("group commit next to release, confirm and expiry of the same SKU: no deadlock, the books balance", async () => {
    const sku = newSku();
    const units = 150;
    await stock.setStock(sku, units, { perUserLimit: 3, holdMs: 50 });
    const stores = [stock, ...(b.other ? [new PostgresInventory(b.other, { tablePrefix: "gc_" })] : [])];
    const confirmed = new Set<string>();
    for (let round = 0; round < 4; round++) {
      const reserved = await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          stores[i % stores.length]!.reserve(sku, { userId: `u${i % 40}`, reservationId: `${round}-${i}` }),
        ),
      );
      const ids = reserved.flatMap((r) => (r.ok ? [r.reservationId] : []));
      // Release a third, confirm a third, reserve more and sweep, all at once.
      const settled = await Promise.all([
        ...ids.map((id, k) =>
          k % 3 === 0
            ? stores[k % stores.length]!.release(sku, id).then((r) => ({ id, kind: "release", ok: r.ok }))
            : k % 3 === 1
              ? stores[k % stores.length]!.confirm(sku, id).then((r) => ({ id, kind: "confirm", ok: r.ok }))
              : Promise.resolve({ id, kind: "keep", ok: true }),
        ),
        ...Array.from({ length: 30 }, (_, i) =>
          stores[i % stores.length]!.reserve(sku, { userId: `v${i}`, reservationId: `${round}-v${i}` }).then(
            () => ({ id: "", kind: "more", ok: true }),
          ),
        ),
        stock.expireHolds(sku, { limit: 20 }).then(() => ({ id: "", kind: "sweep", ok: true })),
      ]);
      for (const x of settled) if (x.kind === "confirm" && x.ok) confirmed.add(x.id);
      const snap = (await stock.snapshot(sku))!;
      expect(snap.available + snap.held + snap.confirmed).toBe(units);
      expect(snap.confirmed).toBe(confirmed.size);
    }
    // Each user's row is the sum of that user's live (held or confirmed) reservations.
    const userRows = await rows<{ user_id: string; quantity: number }>(
      b.db,
      "SELECT user_id, quantity FROM gc_stock_user WHERE sku = $1",
      [sku],
    );
    const live = await rows<{ user_id: string; q: number }>(
      b.db,
      "SELECT user_id, sum(quantity)::int AS q FROM gc_reservation WHERE sku = $1 AND state <> 'R' GROUP BY user_id",
      [sku],
    );
    expect(new Map(userRows.map((u) => [u.user_id, u.quantity]))).toEqual(
      new Map(live.map((l) => [l.user_id, l.q])),
    );
  });
});
