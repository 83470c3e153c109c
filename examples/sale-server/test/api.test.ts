// The sale server's API without a browser (Fastify inject on the embedded servers): the admin key, the buy
// path's retry after a lost reply, and refusals.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSaleApp, type SaleApp } from "../src/app.js";
import { startInfra, type Infra } from "../src/infra.js";
import { asUsers, randomPrefix, signIn } from "./support.js";

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
  await sale.createSale({ sku: "m", name: "M", priceCents: 100, stock: 5, startsAt: Date.now() - 1000 });
}, 60_000);
afterAll(async () => {
  await sale?.close();
  await infra?.close();
});

const { call, cookieOf } = asUsers(() => sale.app);

async function token(user: string, sku = "p"): Promise<string> {
  const c = await call("GET", `/api/captcha?sku=${sku}`, user);
  const t = await call("POST", "/api/purchase-token", user, { sku, captchaId: c.body.id, answer: "7" });
  expect(t.status, JSON.stringify([c, t])).toBe(200);
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
    expect(bad).toMatchObject({ status: 400, body: { error: { code: "INVALID_ARGUMENT" } } });
    expect((await call("GET", "/api/stats?sku=q", "x")).status).toBe(200);
  });

  it("a buy retried with its spent token gets its first outcome; a spent token never buys again; a refusal leaves it unspent", async () => {
    const t = await token("alice");
    const tb = await token("bob"); // before the sell-out
    const first = await call("POST", "/api/buy", "alice", { sku: "p", token: t });
    expect(first.status).toBe(202);
    const again = await call("POST", "/api/buy", "alice", { sku: "p", token: t });
    expect(again).toEqual({ status: 202, body: first.body });
    expect((await call("POST", "/api/buy", "mallory", { sku: "p", token: t })).body).toMatchObject({
      error: { code: "BAD_TOKEN" },
    });
    // bob is refused (sold out), in process or by Redis: a refusal consumes nothing, his token included, so a
    // second try with it is refused the same way and never reserves.
    for (let i = 0; i < 2; i++)
      expect(await call("POST", "/api/buy", "bob", { sku: "p", token: tb })).toMatchObject({
        status: 409,
        body: { error: { code: "SOLD_OUT", message: "Sold out." } },
      });
    // alice's retry after the sell-out is still answered as her reservation.
    expect(await call("POST", "/api/buy", "alice", { sku: "p", token: t })).toEqual({
      status: 202,
      body: first.body,
    });
    // Once this process knows the SKU is sold out, a click (a CAPTCHA request) is refused in process.
    const deadline = performance.now() + 10_000;
    let click = await call("GET", "/api/captcha?sku=p", "carol");
    while (click.status === 200 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      click = await call("GET", "/api/captcha?sku=p", "carol");
    }
    expect(click).toMatchObject({ status: 409, body: { error: { code: "SOLD_OUT" } } });
    const stats = (await call("GET", "/api/stats?sku=p", "x")).body as { stock: Record<string, number> };
    expect(stats.stock).toMatchObject({ initial: 1, available: 0, held: 1 });
  });

  it("members only: a guest gets no purchase token", async () => {
    const c = await call("GET", "/api/captcha?sku=m", "guest-1");
    const t = await call("POST", "/api/purchase-token", "guest-1", {
      sku: "m",
      captchaId: c.body.id,
      answer: "7",
    });
    expect(t).toMatchObject({
      status: 403,
      body: { error: { code: "NOT_ELIGIBLE", detail: "MEMBERS_ONLY" } },
    });
  });
});

describe("sale server sign-in", () => {
  it("every user route refuses a forged x-user-id without a session cookie, and a tampered or expired cookie", async () => {
    const secret = "s".repeat(32);
    const signed = await createSaleApp({
      infra,
      prefix: randomPrefix("sess"),
      worker: false,
      sessionSecret: secret,
    });
    try {
      const { sign } = await import("@fastify/cookie");
      const { sessionValue } = await import("../src/session.js");
      const alice = await signIn(signed.app, "member-alice");
      const future = Date.now() + 3_600_000;
      const forged: [string, Record<string, string>][] = [
        ["no cookie, x-user-id", { "x-user-id": "member-alice" }],
        [
          "unsigned cookie",
          { cookie: `fsk_session=${encodeURIComponent(sessionValue("member-alice", future))}` },
        ],
        [
          "signed with another secret",
          {
            cookie: `fsk_session=${encodeURIComponent(sign(sessionValue("member-alice", future), "t".repeat(32)))}`,
          },
        ],
        [
          "expired",
          {
            cookie: `fsk_session=${encodeURIComponent(sign(sessionValue("member-alice", Date.now() - 1), secret))}`,
          },
        ],
        ["alice's cookie with the user changed", { cookie: alice.replace("member-alice", "member-mallory") }],
      ];
      const routes: ["GET" | "POST", string, object?][] = [
        ["GET", "/api/session"],
        ["GET", "/api/captcha?sku=p"],
        ["POST", "/api/purchase-token", { sku: "p", captchaId: "c", answer: "7" }],
        ["POST", "/api/buy", { sku: "p", token: "t" }],
        ["GET", "/api/orders/o1"],
        ["POST", "/api/orders/o1/pay", {}],
      ];
      for (const [what, headers] of forged)
        for (const [method, url, payload] of routes) {
          const res = await signed.app.inject({ method, url, headers, ...(payload && { payload }) });
          expect(
            [res.statusCode, (res.json() as { error: { code: string } }).error.code],
            `${what}: ${method} ${url}`,
          ).toEqual([401, "SIGN_IN_REQUIRED"]);
        }
      // With a session, the header changes nothing: the user is the cookie's.
      const me = await signed.app.inject({
        method: "GET",
        url: "/api/session",
        headers: { cookie: alice, "x-user-id": "member-bob" },
      });
      expect(me.json()).toMatchObject({ userId: "member-alice" });
      // Among other cookies, in any place, the session's is found (the first of its name, as browsers send
      // the most specific path first); a name that only ends with it is another cookie.
      for (const cookie of [
        `theme=dark; ${alice}; z=1`,
        `x_fsk_session=1;${alice}`,
        `${alice}; fsk_session=${encodeURIComponent("v1:member-bob:1.forged")}`,
      ]) {
        const res = await signed.app.inject({ method: "GET", url: "/api/session", headers: { cookie } });
        expect(res.json(), cookie).toMatchObject({ userId: "member-alice" });
      }
      const second = await signed.app.inject({
        method: "GET",
        url: "/api/session",
        headers: { cookie: `fsk_session=${encodeURIComponent("v1:member-bob:1.forged")}; ${alice}` },
      });
      expect(second.statusCode).toBe(401);
      // A sign-in without a name gets a generated member; the cookie is HttpOnly, SameSite=Strict, signed.
      const anon = await signed.app.inject({ method: "POST", url: "/api/session", payload: {} });
      expect(anon.json()).toMatchObject({ userId: expect.stringMatching(/^member-[0-9a-f]{8}$/) });
      expect(String(anon.headers["set-cookie"])).toMatch(
        /^fsk_session=[^;]+; Max-Age=43200; Path=\/; HttpOnly; SameSite=Strict$/,
      );
      const out = await signed.app.inject({
        method: "DELETE",
        url: "/api/session",
        headers: { cookie: alice },
      });
      expect(out.statusCode).toBe(204);
      expect(String(out.headers["set-cookie"])).toMatch(/^fsk_session=;/);
    } finally {
      await signed.close();
    }
  });
});

describe("sale server hardening", () => {
  it("refuses crafted input with 4xx and one error body, never 500, and a bad sale writes nothing", async () => {
    const user = "member-crafty";
    const crafted = { toString: 1 };
    const cases: [method: "GET" | "POST", url: string, body: unknown, headers: Record<string, string>][] = [
      ["POST", "/api/purchase-token", { sku: crafted, captchaId: crafted, answer: [] }, {}],
      ["POST", "/api/purchase-token", { sku: "p", captchaId: "x", answer: "1", extra: 1 }, {}],
      ["POST", "/api/buy", { sku: "p", token: crafted }, {}],
      ["POST", "/api/buy", { sku: "p" }, {}],
      ["POST", "/api/buy", { sku: "a{b}", token: "t" }, {}],
      ["POST", "/api/session", { name: "" }, {}],
      ["POST", "/api/session", { name: "a b" }, {}],
      ["POST", "/api/session", { name: "a{b}" }, {}],
      ["POST", "/api/session", { name: "x".repeat(65) }, {}],
      ["POST", "/api/session", { name: "a", userId: "b" }, {}],
      ["POST", "/api/buy", "not json", { "content-type": "application/json" }],
      ["GET", "/api/captcha", undefined, {}],
      ["GET", "/api/captcha?sku=" + "x".repeat(201), undefined, {}],
      ["GET", "/api/orders/%7Bx%7D", undefined, {}],
      ["GET", "/api/stats?sku=p&x=1", undefined, {}],
      ["GET", "/api/products/%00", undefined, {}],
    ];
    for (const [method, url, body, headers] of cases) {
      const res = await sale.app.inject({
        method,
        url,
        headers: { cookie: await cookieOf(user), ...headers },
        ...(body !== undefined && { payload: body as string }),
      });
      const what = `${method} ${url} ${JSON.stringify(body)} ${JSON.stringify(headers)}`;
      expect(res.statusCode, what).toBe(400);
      const json = res.json() as { error: { code: string; message: string } };
      expect(Object.keys(json), what).toEqual(["error"]);
      expect(json.error.code, what).toMatch(/^[A-Z_]+$/);
      expect(json.error.message.length, what).toBeGreaterThan(0);
    }
    expect((await call("POST", "/api/buy", user, { sku: "nope", token: "t" })).body).toMatchObject({
      error: { code: "UNKNOWN_SKU" },
    });
    expect((await call("GET", "/api/nothing", user)).body).toMatchObject({ error: { code: "NOT_FOUND" } });
    const headers = { "x-admin-key": sale.adminKey };
    const bad = [
      { sku: "big", name: "Big", priceCents: 2 ** 31, stock: 1, startsAt: 0 },
      { sku: "nul", name: "A\u0000B", priceCents: 1, stock: 1, startsAt: 0 },
      { sku: "neg", name: "Neg", priceCents: 1, stock: -5, startsAt: 0 },
      { sku: "str", name: "Str", priceCents: "1", stock: 1, startsAt: 0 },
      { sku: "end", name: "End", priceCents: 1, stock: 1, startsAt: 10, endsAt: 10 },
      { sku: "xtr", name: "Xtr", priceCents: 1, stock: 1, startsAt: 0, evil: true },
    ];
    for (const input of bad) {
      const r = await call("POST", "/api/admin/sales", "admin", input, headers);
      expect(r, input.sku).toMatchObject({ status: 400, body: { error: { code: "INVALID_ARGUMENT" } } });
      expect(await sale.inventory.snapshot(input.sku), input.sku).toBeNull();
    }
  });

  it("reconciles a SKU's Redis state with the orders (admin key required)", async () => {
    const headers = { "x-admin-key": sale.adminKey };
    expect((await call("POST", "/api/admin/reconcile/m", "x")).status).toBe(401);
    expect((await call("POST", "/api/admin/reconcile/nope", "x", undefined, headers)).status).toBe(404);
    const r = await call("POST", "/api/admin/reconcile/m", "x", undefined, headers);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ sku: "m", restored: { held: 0, confirmed: 0 }, refund: [] });
    const s = r.body.snapshot as { initial: number; available: number; held: number; confirmed: number };
    expect(s.available + s.held + s.confirmed).toBe(s.initial);
  });

  it("the CAPTCHA steps are rate limited per user (no blind guessing at full speed)", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 15; i++)
      statuses.push((await call("GET", "/api/captcha?sku=m", "member-bot")).status);
    expect(statuses.slice(0, 10).every((s) => s === 200)).toBe(true);
    expect(statuses.slice(10)).toContain(429);
  });

  it("an empty or short admin key is refused when the app is built", async () => {
    await expect(
      createSaleApp({ infra, prefix: randomPrefix("ak"), worker: false, adminKey: "" }),
    ).rejects.toThrow(/adminKey must be at least 16 characters/);
  });

  it("a backlogged worker times the payment window from the reservation and writes no order for a released one", async () => {
    const T = 1_000;
    const lagging = await createSaleApp({
      infra,
      prefix: randomPrefix("lag"),
      worker: false, // the order worker is down for now
      paymentTimeoutMs: T,
      captchaGenerate: () => ({ svg: "<svg/>", answer: "7" }),
    });
    try {
      await lagging.createSale({ sku: "q", name: "Q", priceCents: 1, stock: 5, startsAt: Date.now() - 1000 });
      const buy = async (user: string) => {
        const cookie = await signIn(lagging.app, user);
        const ask = (method: "GET" | "POST", url: string, body?: object) =>
          lagging.app.inject({ method, url, headers: { cookie }, ...(body && { payload: body }) });
        const c = (await ask("GET", "/api/captcha?sku=q")).json() as { id: string };
        const t = (
          await ask("POST", "/api/purchase-token", { sku: "q", captchaId: c.id, answer: "7" })
        ).json() as {
          token: string;
        };
        const b = await ask("POST", "/api/buy", { sku: "q", token: t.token });
        expect(b.statusCode).toBe(202);
        return (b.json() as { reservationId: string }).reservationId;
      };
      const boughtAt = Date.now();
      const alice = await buy("member-alice");
      const bob = await buy("member-bob");
      await lagging.inventory.release("q", bob); // cancelled before the worker got to it
      await new Promise((r) => setTimeout(r, T + 300)); // the worker is further behind than the window
      await lagging.pipeline.start();
      const deadline = Date.now() + 10_000;
      let order = await lagging.pipeline.orders.get(alice);
      while ((order === null || order.status === "pending") && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        order = await lagging.pipeline.orders.get(alice);
      }
      // Due when the window that started at the reservation ends (it had ended already): cancelled at once,
      // its unit back on sale long before the stock hold (T + 60 s) would have run out.
      expect(order).toMatchObject({ status: "cancelled" });
      expect(order!.paymentDueAt).toBeLessThanOrEqual(boughtAt + T + 2_000);
      expect(await lagging.pipeline.orders.get(bob)).toBeNull();
      expect(await lagging.inventory.snapshot("q")).toMatchObject({ available: 5, held: 0, confirmed: 0 });
    } finally {
      await lagging.close();
    }
  });
});

describe("sale server across processes", () => {
  it("a start time outside the Date range is a 400 that writes nothing", async () => {
    const r = await sale.app.inject({
      method: "POST",
      url: "/api/admin/sales",
      headers: { "x-admin-key": sale.adminKey },
      payload: { sku: "far", name: "Far", priceCents: 1, stock: 1, startsAt: 9e15 },
    });
    expect(r.statusCode).toBe(400);
    expect(await sale.inventory.snapshot("far")).toBeNull();
  });

  it("a sale re-created in one process reaches the other's page and gate, and both show the same sale", async () => {
    const prefix = randomPrefix("two");
    const a = await createSaleApp({ infra, prefix, worker: false });
    const b = await createSaleApp({ infra, prefix, worker: false });
    try {
      const later = Date.now() + 3_600_000;
      await a.createSale({ sku: `${prefix}-x`, name: "X", priceCents: 1, stock: 1, startsAt: later });
      const sooner = Date.now() - 1_000; // moved to now: open
      await a.createSale({ sku: `${prefix}-x`, name: "X", priceCents: 1, stock: 1, startsAt: sooner });
      const iso = new Date(sooner).toISOString();
      const deadline = Date.now() + 10_000;
      let page = "";
      while (Date.now() < deadline) {
        page = (await b.app.inject({ method: "GET", url: "/" })).body;
        if (page.includes(iso)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(page).toContain(iso);
      const etag = async (app: typeof a) => (await app.app.inject({ method: "GET", url: "/" })).headers.etag;
      expect(await etag(b)).toBe(await etag(a));
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe("sale server export", () => {
  it("--export writes the page, the dashboard and the hashed assets with their cache headers", async () => {
    const { exportSite } = await import("../src/assets.js");
    const { mkdtempSync, readFileSync, rmSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "fsk-export-"));
    try {
      const files = exportSite(sale.site, dir);
      const html = readFileSync(join(dir, "index.html"), "utf8");
      expect(html).toBe((await sale.app.inject({ method: "GET", url: "/" })).body);
      const js = /src="\/(assets\/app\.[0-9a-f]{12}\.js)"/.exec(html)?.[1];
      expect(files).toContain(js);
      expect(readFileSync(join(dir, js!), "utf8")).toBe(
        (await sale.app.inject({ method: "GET", url: `/${js}` })).body,
      );
      expect(readFileSync(join(dir, "_headers"), "utf8")).toContain(
        "/assets/*\n  Cache-Control: public, max-age=31536000, immutable",
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
