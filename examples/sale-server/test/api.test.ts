// The sale server's API without a browser (Fastify inject on the embedded servers): the admin key, the buy
// path's retry after a lost reply, and refusals.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSaleApp, type SaleApp } from "../src/app.js";
import { startInfra, type Infra } from "../src/infra.js";
import { randomPrefix } from "../../../test/support/redis.js";

let infra: Infra;
let sale: SaleApp;
beforeAll(async () => {
  infra = await startInfra({});
  sale = await createSaleApp({
    infra,
    prefix: randomPrefix("api"),
    worker: false,
    captchaGenerate: () => ({ svg: "<svg/>", answer: "7" }),
  });
  await sale.createSale({ sku: "p", name: "P", priceCents: 100, stock: 1, startsAt: Date.now() - 1000 });
}, 60_000);
afterAll(async () => {
  await sale?.close();
  await infra?.close();
});

const call = async (method: "GET" | "POST", url: string, user: string, body?: object, headers = {}) => {
  const res = await sale.app.inject({
    method,
    url,
    headers: { "x-user-id": user, ...headers },
    ...(body && { payload: body }),
  });
  return { status: res.statusCode, body: res.json() as Record<string, unknown> };
};

async function token(user: string): Promise<string> {
  const c = await call("GET", "/api/captcha", user);
  const t = await call("POST", "/api/purchase-token", user, { sku: "p", captchaId: c.body.id, answer: "7" });
  expect(t.status).toBe(200);
  return String(t.body.token);
}

describe("sale server API", () => {
  it("admin routes need the admin key (random when none is configured)", async () => {
    const input = { sku: "q", name: "Q", priceCents: 1, stock: 1, startsAt: Date.now() };
    expect((await call("POST", "/api/admin/sales", "x", input)).status).toBe(401);
    expect((await call("POST", "/api/admin/sales", "x", input, { "x-admin-key": "guess" })).status).toBe(401);
    expect(sale.adminKey).toMatch(/^[0-9a-f]{32}$/);
    expect(
      (await call("POST", "/api/admin/sales", "x", input, { "x-admin-key": sale.adminKey })).status,
    ).toBe(201);
    const bad = await call(
      "POST",
      "/api/admin/sales",
      "x",
      { ...input, name: 42 },
      { "x-admin-key": sale.adminKey },
    );
    expect(bad).toMatchObject({ status: 400, body: { reason: "INVALID_ARGUMENT" } });
    expect((await call("GET", "/api/stats?sku=q", "x")).status).toBe(200);
  });

  it("a buy retried with its spent token gets its first outcome; a spent token never buys again", async () => {
    const t = await token("alice");
    const first = await call("POST", "/api/buy", "alice", { sku: "p", token: t });
    expect(first.status).toBe(202);
    const again = await call("POST", "/api/buy", "alice", { sku: "p", token: t });
    expect(again).toEqual({ status: 202, body: first.body });
    expect((await call("POST", "/api/buy", "mallory", { sku: "p", token: t })).body).toMatchObject({
      reason: "BAD_TOKEN",
    });
    // bob is refused (sold out); his spent token does not let him try again without a new CAPTCHA
    const tb = await token("bob");
    expect(await call("POST", "/api/buy", "bob", { sku: "p", token: tb })).toMatchObject({
      status: 409,
      body: { reason: "SOLD_OUT" },
    });
    expect(await call("POST", "/api/buy", "bob", { sku: "p", token: tb })).toMatchObject({
      status: 403,
      body: { reason: "BAD_TOKEN", detail: "USED" },
    });
    const stats = (await call("GET", "/api/stats?sku=p", "x")).body as { stock: Record<string, number> };
    expect(stats.stock).toMatchObject({ initial: 1, available: 0, held: 1 });
  });

  it("members only: a guest gets no purchase token", async () => {
    const c = await call("GET", "/api/captcha", "guest-1");
    const t = await call("POST", "/api/purchase-token", "guest-1", {
      sku: "p",
      captchaId: c.body.id,
      answer: "7",
    });
    expect(t).toMatchObject({ status: 403, body: { reason: "NOT_ELIGIBLE" } });
  });
});
