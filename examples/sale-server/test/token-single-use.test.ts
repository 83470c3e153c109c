// A purchase token makes at most one reservation at the buy route: the reservation id is made from the token's
// text, so the token must have exactly one accepted spelling (PurchaseTokens verifies the canonical one),
// and a released reservation never lets its token buy again.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSaleApp, type SaleApp } from "../src/app.js";
import { startInfra, type Infra } from "../src/infra.js";
import { asUsers, randomPrefix } from "./support.js";

let infra: Infra;
let sale: SaleApp;
beforeAll(async () => {
  infra = await startInfra({});
  sale = await createSaleApp({
    infra,
    prefix: randomPrefix("ts"),
    worker: false,
    captchaGenerate: () => ({ svg: "<svg/>", answer: "7" }),
    limits: { user: [100, 100], ip: [100, 100] },
  });
  const startsAt = Date.now() - 1000;
  // perUserLimit 3: a user may buy up to 3 units, but each buy needs its own CAPTCHA (its own token).
  await sale.createSale({ sku: "multi", name: "M", priceCents: 100, stock: 10, startsAt, perUserLimit: 3 });
  // A bucketed SKU with the default per-user limit of 1.
  await sale.inventory.setStock("hot", 10, { buckets: 3, perUserLimit: 1, startsAt });
  await sale.createSale({ sku: "hot", name: "H", priceCents: 100, stock: 10, startsAt });
}, 60_000);
afterAll(async () => {
  await sale?.close();
  await infra?.close();
});

const { call } = asUsers(() => sale.app);
async function token(user: string, sku: string): Promise<string> {
  const c = await call("GET", `/api/captcha?sku=${sku}`, user);
  const t = await call("POST", "/api/purchase-token", user, { sku, captchaId: c.body.id, answer: "7" });
  expect(t.status, JSON.stringify([c, t])).toBe(200);
  return String(t.body.token);
}

describe("a purchase token is single use at the buy route", () => {
  it("one token (one CAPTCHA) never makes two reservations, whatever its spelling", async () => {
    const t = await token("member-ann", "multi");
    const spellings = [t, `${t}=`, `${t}!`];
    const ids = new Set<string>();
    for (const s of spellings) {
      const r = await call("POST", "/api/buy", "member-ann", { sku: "multi", token: s });
      if (r.status === 202) ids.add(String(r.body.reservationId));
      // Another spelling is not a token at all.
      if (s !== t)
        expect([r.status, r.body.error], s).toEqual([403, expect.objectContaining({ detail: "INVALID" })]);
    }
    const stats = (await call("GET", "/api/stats?sku=multi", "x")).body as { stock: Record<string, number> };
    // Single use: at most one reservation (one unit held) for the one token.
    expect({ reservations: ids.size, held: stats.stock.held }).toEqual({ reservations: 1, held: 1 });
  });

  it("a token does not buy again after its reservation was released (bucketed SKU)", async () => {
    const t = await token("member-bea", "hot");
    const first = await call("POST", "/api/buy", "member-bea", { sku: "hot", token: t });
    expect(first.status).toBe(202);
    // The hold is released (payment timeout, cancel): the user's unit goes back to her quota.
    expect(await sale.inventory.release("hot", String(first.body.reservationId))).toMatchObject({ ok: true });
    // The very same text replays the first (released) reservation…
    const same = await call("POST", "/api/buy", "member-bea", { sku: "hot", token: t });
    expect(same.body.reservationId).toBe(first.body.reservationId);
    // …and another spelling of the same token is refused: it never reserves again without a new CAPTCHA.
    const again = await call("POST", "/api/buy", "member-bea", { sku: "hot", token: `${t}==` });
    const stats = (await call("GET", "/api/stats?sku=hot", "x")).body as { stock: Record<string, number> };
    expect(
      {
        newReservation: again.status === 202 && again.body.reservationId !== first.body.reservationId,
        held: stats.stock.held,
      },
      `the spent token made a second reservation: ${JSON.stringify(again)}`,
    ).toEqual({ newReservation: false, held: 0 });
    expect(again.status).toBe(403);
  });
});
