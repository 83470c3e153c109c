/// <reference lib="dom" />
// The sale in a real browser (Debian's chromium driven by playwright-core): the visitor signs in (a session
// cookie); the button is disabled before the start and enabled at it; a click, the waiting room (a quiet sale
// admits at once), the CAPTCHA, a pending order; paying turns it paid; on a busy sale the visitor waits in
// the room, sees the place change, is admitted and buys; the same user's second purchase is refused; a request with a forged `x-user-id` and
// no session cookie is refused. Runs on the embedded servers and on the machine's Redis and PostgreSQL.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSaleApp, type SaleApp } from "../src/app.js";
import { startInfra, type Infra } from "../src/infra.js";
import {
  deleteKeys,
  randomPrefix,
  signIn as signInApi,
  SHARED_REDIS_URL,
  startPostgres,
  type PrivateDatabase,
} from "./support.js";

const CHROMIUM = (() => {
  try {
    return execFileSync("sh", ["-c", "command -v chromium"]).toString().trim();
  } catch {
    return "";
  }
})();
const SHOTS = process.env.UPDATE_SCREENSHOTS
  ? join(import.meta.dirname, "..", "screenshots")
  : mkdtempSync(join(tmpdir(), "fsk-shots-"));

/**
 * A buy through the API (no browser): sign-in, the waiting room's pass, CAPTCHA (a wrong answer first if
 * `wrong`), token, buy; with `wrong: "only"`, the wrong answer alone.
 */
async function buyByApi(sale: SaleApp, user: string, wrong?: boolean | "only"): Promise<void> {
  const cookie = await signInApi(sale.app, user);
  const ask = async (method: "GET" | "POST", url: string, payload?: object) =>
    (
      await sale.app.inject({ method, url, headers: { cookie }, ...(payload && { payload }) })
    ).json() as Record<string, string>;
  // The waiting room first (when the app has one): join, then wait for the pass.
  let room = await ask("POST", "/api/room/join", { sku: "phone" });
  const deadline = performance.now() + 30_000;
  while (room.state === "WAITING" && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    room = await ask("GET", `/api/room/status?sku=phone&ticket=${encodeURIComponent(room.ticket!)}`);
  }
  const pass = room.state === "ADMITTED" ? { pass: room.pass } : {};
  const answer = async (a: string): Promise<Record<string, string>> => {
    const c = await ask("GET", "/api/captcha?sku=phone");
    return c.id === undefined
      ? {}
      : ask("POST", "/api/purchase-token", { sku: "phone", captchaId: c.id, answer: a, ...pass });
  };
  if (wrong) await answer("0");
  if (wrong === "only") return;
  const t = await answer("42");
  if (t.token !== undefined) await ask("POST", "/api/buy", { sku: "phone", token: t.token });
}

const modes = [
  { name: "embedded redis-server and PGlite", real: false },
  { name: "the machine's Redis and PostgreSQL", real: true },
] as const;

describe.skipIf(!CHROMIUM).each(modes)("sale page in chromium ($name)", ({ real }) => {
  let infra: Infra;
  let db: PrivateDatabase | undefined;
  let sale: SaleApp;
  let base: string;
  let context: BrowserContext;
  let profile: string;
  const prefix = randomPrefix("e2e");

  beforeAll(async () => {
    db = real ? await startPostgres() : undefined;
    infra = await startInfra(real ? { REDIS_URL: SHARED_REDIS_URL, DATABASE_URL: db!.url } : {});
    sale = await createSaleApp({
      infra,
      prefix,
      paymentTimeoutMs: 60_000,
      captchaGenerate: () => ({ svg: CAPTCHA_SVG, answer: "42" }),
      // One admission a second: a quiet sale's visitor goes straight through, a line forms behind two.
      waitingRoom: { admitPerSecond: 1, burst: 1, passTtlMs: 60_000 },
    });
    base = await sale.app.listen({ port: 0, host: "127.0.0.1" });
    profile = mkdtempSync(join(tmpdir(), "fsk-chromium-"));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: 900, height: 900 },
    });
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    await sale?.close();
    await infra?.close();
    await db?.stop();
    rmSync(profile, { recursive: true, force: true });
    // The shared Redis keeps nothing of this run.
    if (real) expect(await deleteKeys(prefix)).toBe(0);
  });

  /** Waits until the page knows whether the visitor is signed in (it shows the form or the name). */
  async function sessionLoaded(page: Page): Promise<void> {
    await page.waitForFunction(
      () => !document.getElementById("signin-form")!.hidden || !document.getElementById("signed-in")!.hidden,
    );
  }

  /** Signs in through the page's form and waits for the page to show the user. */
  async function signIn(page: Page, name: string): Promise<void> {
    await page.waitForSelector("#signin-form", { state: "visible" });
    await page.fill("#user", name);
    await page.click("#signin");
    await expect.poll(() => page.textContent("#user-name")).toBe(name);
    // Signed in: the name and "Sign out" only, the form gone (as a person sees it, CSS included).
    expect(await page.isVisible("#signed-in")).toBe(true);
    expect(await page.isVisible("#signin-form")).toBe(false);
  }

  async function buyOnce(page: Page): Promise<string> {
    await page.click("#buy");
    await page.waitForSelector("#captcha:not([hidden])");
    await page.fill("#captcha-answer", "42");
    await page.click("#captcha-submit");
    await page.waitForFunction(() => (document.getElementById("result")?.textContent ?? "").length > 0);
    return (await page.textContent("#result")) ?? "";
  }

  it("opens at the start second, sells once per user, pays", async () => {
    const serverTime = async () => ((await (await fetch(`${base}/api/time`)).json()) as { now: number }).now;
    const startsAt = (await serverTime()) + 6000;
    await sale.createSale({ sku: "phone", name: "Flash Phone", priceCents: 19_900, stock: 5, startsAt });
    const page = await context.newPage();
    await page.goto(base + "/");

    // Before the start: disabled, counting down.
    await expect.poll(() => page.textContent("#countdown")).toMatch(/Starts in/);
    expect(await page.isDisabled("#buy")).toBe(true);
    if (!real) {
      mkdirSync(SHOTS, { recursive: true });
      await page.screenshot({ path: join(SHOTS, "page-countdown.png") });
    }
    await signIn(page, "member-alice");

    // At the start second (server clock): enabled by the page's script.
    await page.waitForFunction(() => !(document.getElementById("buy") as HTMLButtonElement).disabled, null, {
      timeout: 15_000,
    });
    const serverNow = await serverTime();
    expect(serverNow).toBeGreaterThanOrEqual(startsAt - 250);
    expect(serverNow).toBeLessThan(startsAt + 3000);

    // Click → CAPTCHA → reserved → the order worker creates a pending order.
    expect(await buyOnce(page)).toMatch(/Reserved/);
    await expect.poll(() => page.textContent("#order-status"), { timeout: 20_000 }).toBe("pending");
    // The client-side throttle holds the button for 10 s after a click.
    expect(await page.isDisabled("#buy")).toBe(true);

    await page.click("#pay");
    await expect.poll(() => page.textContent("#order-status"), { timeout: 20_000 }).toBe("paid");
    if (!real) await page.screenshot({ path: join(SHOTS, "page-paid.png") });

    // Same user (the same browser's session cookie), fresh page (no client throttle): the per-user limit
    // refuses a second purchase.
    const again = await context.newPage();
    await again.goto(base + "/");
    await expect.poll(() => again.textContent("#user-name")).toBe("member-alice");
    await again.waitForFunction(() => !(document.getElementById("buy") as HTMLButtonElement).disabled);
    expect(await buyOnce(again)).toMatch(/already bought/);

    const stats = await sale.stats("phone");
    expect(stats.orders).toMatchObject({ total: 1, paid: 1, pending: 0 });
    expect(stats.stock).toMatchObject({ initial: 5, available: 4, held: 0, confirmed: 1 });

    if (!real) {
      const dash = await context.newPage();
      await dash.goto(base + "/dashboard");
      const drawn = () => dash.evaluate(() => Number(document.getElementById("chart")?.dataset.points ?? 0));
      // Buyers arrive while the dashboard watches, one per sample it draws, so its second chart (rates from
      // the library's metrics adapter) has something to show. Three buy (one unit stays: the later tests use
      // the page of this sale), one answers the CAPTCHA wrong first, one only wrong, a guest is refused by the
      // gate (members only), alice is refused by Redis (one per member).
      const visitors: [string, (boolean | "only")?][] = [
        ["member-dash-0"],
        ["member-dash-1", true],
        ["guest-dash"],
        ["member-dash-2"],
        ["member-dash-3", "only"],
        ["member-alice"],
      ];
      for (const [user, wrong] of visitors) {
        const seen = await drawn();
        await buyByApi(sale, user, wrong);
        await dash.waitForFunction(
          (n) => Number(document.getElementById("chart")?.dataset.points) > n,
          seen,
          {
            timeout: 30_000,
          },
        );
      }
      // A few more samples, so the chart has a time axis to show.
      await dash.waitForFunction(() => Number(document.getElementById("chart")?.dataset.points) >= 12, null, {
        timeout: 30_000,
      });
      expect(await dash.textContent("#m-reservations")).toBe("4");
      await dash.screenshot({ path: join(SHOTS, "dashboard.png"), fullPage: true });
    }
  }, 120_000);

  it("throttles clicks: one CAPTCHA request per 10 s however fast the button is clicked", async () => {
    const sku = `throttle-${real ? "r" : "e"}`;
    await sale.createSale({
      sku,
      name: "Throttle",
      priceCents: 100,
      stock: 5,
      startsAt: Date.now() - 60_000,
    });
    const page = await context.newPage();
    // Record, in the page, the monotonic time of every CAPTCHA request the script makes.
    await page.addInitScript(() => {
      const calls: number[] = [];
      (window as unknown as { captchaCalls: number[] }).captchaCalls = calls;
      const original = window.fetch.bind(window);
      window.fetch = (input, init) => {
        if (String(input).startsWith("/api/captcha")) calls.push(performance.now());
        return original(input, init);
      };
    });
    await page.goto(base + "/");
    await sessionLoaded(page);
    if (await page.isVisible("#signed-in")) await page.click("#signout");
    await signIn(page, "member-clicker");
    await page.waitForFunction(() => !(document.getElementById("buy") as HTMLButtonElement).disabled);
    await page.click("#buy");
    await page.waitForSelector("#captcha:not([hidden])");
    // A person (or a script in the page) hammering the button: 20 real mouse clicks, 100 ms apart.
    const box = (await page.locator("#buy").boundingBox())!;
    for (let i = 0; i < 20; i++) {
      await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
      await page.waitForTimeout(100);
    }
    const [calls, now] = await page.evaluate(
      () => [(window as unknown as { captchaCalls: number[] }).captchaCalls, performance.now()] as const,
    );
    expect(calls.length).toBeGreaterThanOrEqual(1);
    // However slow this machine is, no two requests are closer than the throttle.
    for (let i = 1; i < calls.length; i++) expect(calls[i]! - calls[i - 1]!).toBeGreaterThanOrEqual(10_000);
    // Still within the throttle (unless this machine took 10 s for the clicks): the button says so.
    if (calls.length === 1 && now - calls[0]! < 9_000) {
      expect(await page.textContent("#buy")).toMatch(/^Try again in \d+ s$/);
      expect(await page.isDisabled("#buy")).toBe(true);
    }
    await page.close();
  }, 120_000);

  it("holds a click made a moment before the server's start until the start (the page's clock runs ahead)", async () => {
    const serverTime = async () => ((await (await fetch(`${base}/api/time`)).json()) as { now: number }).now;
    const sku = `early-${real ? "r" : "e"}`;
    const startsAt = (await serverTime()) + 7000;
    await sale.createSale({ sku, name: "Early Phone", priceCents: 100, stock: 5, startsAt });
    const page = await context.newPage();
    // This page reads the server's clock 3 s ahead (a reply delayed one way only): its button enables early.
    await page.route("**/api/time", async (route) => {
      const res = await route.fetch();
      const body = (await res.json()) as { now: number };
      await route.fulfill({ response: res, json: { ...body, now: body.now + 3000 } });
    });
    const joins: { status: number; code?: string }[] = [];
    page.on("response", (res) => {
      if (!res.url().includes("/api/room/join")) return;
      void res
        .json()
        .then((b: { error?: { code?: string } }) => joins.push({ status: res.status(), code: b.error?.code }))
        .catch(() => joins.push({ status: res.status() }));
    });
    await page.goto(base + "/");
    await sessionLoaded(page);
    if (await page.isVisible("#signed-in")) await page.click("#signout");
    await signIn(page, "member-early");
    await page.waitForFunction(() => !(document.getElementById("buy") as HTMLButtonElement).disabled, null, {
      timeout: 15_000,
    });
    await page.click("#buy");
    expect(await serverTime()).toBeLessThan(startsAt); // the click did come before the start
    // Held, not refused: the CAPTCHA comes once the sale is open, and the buy goes through.
    await page.waitForSelector("#captcha:not([hidden])", { timeout: 20_000 });
    expect(await serverTime()).toBeGreaterThanOrEqual(startsAt);
    await page.fill("#captcha-answer", "42");
    await page.click("#captcha-submit");
    await page.waitForFunction(() => (document.getElementById("result")?.textContent ?? "").length > 0);
    expect(await page.textContent("#result")).toMatch(/Reserved/);
    await expect.poll(() => joins.length).toBeGreaterThanOrEqual(2);
    expect(joins[0]).toEqual({ status: 409, code: "NOT_STARTED" });
    expect(joins.at(-1)!.status).toBe(200);
    await page.close();
  }, 120_000);

  it("refuses a request with a forged x-user-id and no session cookie; signing out ends the session", async () => {
    const sku = `forged-${real ? "r" : "e"}`;
    await sale.createSale({ sku, name: "Forged", priceCents: 100, stock: 5, startsAt: Date.now() - 60_000 });
    const page = await context.newPage();
    await page.goto(base + "/");
    await sessionLoaded(page);
    if (!(await page.isVisible("#signed-in"))) await signIn(page, "member-victim");
    const victim = (await page.textContent("#user-name"))!;
    // The page's own script cannot read the cookie (HttpOnly).
    expect(await page.evaluate(() => document.cookie)).not.toMatch(/fsk_session/);
    await page.click("#signout");
    await page.waitForSelector("#signin-form", { state: "visible" });
    expect(await page.isVisible("#signed-in")).toBe(false);
    // The page's 100 ms tick disables the button once it knows the visitor signed out.
    await page.waitForFunction(() => (document.getElementById("buy") as HTMLButtonElement).disabled);
    // Signed out, the browser claims to be the victim through the header: refused, on every user route.
    const forged = await page.evaluate(
      async ([s, user]) => {
        const h = { "content-type": "application/json", "x-user-id": user! };
        const out: [number, string][] = [];
        for (const [url, body] of [
          [`/api/room/status?sku=${s}&ticket=t`, undefined],
          ["/api/room/join", JSON.stringify({ sku: s })],
          [`/api/captcha?sku=${s}`, undefined],
          ["/api/purchase-token", JSON.stringify({ sku: s, captchaId: "c", answer: "42" })],
          ["/api/buy", JSON.stringify({ sku: s, token: "t" })],
          ["/api/orders/anything", undefined],
        ] as const) {
          const res = await fetch(url, { method: body ? "POST" : "GET", headers: h, ...(body && { body }) });
          out.push([res.status, ((await res.json()) as { error: { code: string } }).error.code]);
        }
        return out;
      },
      [sku, victim] as const,
    );
    expect(forged).toEqual(Array(6).fill([401, "SIGN_IN_REQUIRED"]));
    // And from outside any browser, with no cookie at all.
    const res = await fetch(`${base}/api/captcha?sku=${sku}`, { headers: { "x-user-id": victim } });
    expect(res.status).toBe(401);
    const stats = await sale.stats(sku);
    expect(stats.stock).toMatchObject({ available: 5, held: 0 });
    await page.close();
  });

  it("a busy sale: the visitor waits in the room, sees the place change, is admitted and buys", async () => {
    const sku = `busy-${real ? "r" : "e"}`;
    const serverTime = async () => ((await (await fetch(`${base}/api/time`)).json()) as { now: number }).now;
    // The newest sale is the one the page features.
    const startsAt = (await serverTime()) + 1_500;
    await sale.createSale({ sku, name: "Busy Phone", priceCents: 9_900, stock: 5, startsAt });
    await expect
      .poll(async () => (await (await fetch(base + "/")).text()).includes("Busy Phone"), { timeout: 10_000 })
      .toBe(true);
    // Two shoppers ahead: the first takes the bucket's one admission, the second waits at place 1. The room
    // is paused meanwhile, so that the visitor joins at place 2 however slow this machine is.
    const ahead: string[] = [];
    for (const [name, state] of [
      ["member-first", "ADMITTED"],
      ["member-second", "WAITING"],
    ] as const) {
      const s = await fetch(`${base}/api/session`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name }),
      });
      const cookie = s.headers.getSetCookie()[0]!.split(";")[0]!;
      await expect
        .poll(
          async () => {
            const j = await fetch(`${base}/api/room/join`, {
              method: "POST",
              headers: { "content-type": "application/json", cookie },
              body: JSON.stringify({ sku }),
            });
            // 409 NOT_STARTED until the start; a join the process let through just before the room opens (on
            // Redis time) is BEFORE_OPENING, admitted at the opening: a re-join keeps the place and says so.
            return j.status === 200 ? ((await j.json()) as { state: string }).state : j.status;
          },
          { timeout: 10_000 },
        )
        .toBe(state);
      ahead.push(cookie);
      if (ahead.length === 1) await sale.room(sku)!.pause();
    }
    const page = await context.newPage();
    // Every place the page shows, in order.
    await page.addInitScript(() => {
      const seen: string[] = [];
      (window as unknown as { places: string[] }).places = seen;
      document.addEventListener("DOMContentLoaded", () => {
        const el = document.getElementById("room-position")!;
        new MutationObserver(() => {
          if (seen.at(-1) !== el.textContent) seen.push(el.textContent ?? "");
        }).observe(el, { childList: true, characterData: true, subtree: true });
      });
    });
    // What the page asked and got, for the failure message.
    const log: string[] = [];
    page.on("request", (r) => log.push(`→ ${r.method()} ${r.url().replace(base, "")}`));
    page.on("response", (r) => log.push(`← ${r.status()} ${r.url().replace(base, "")}`));
    page.on("requestfailed", (r) => log.push(`✗ ${r.url().replace(base, "")} ${r.failure()?.errorText}`));
    // A query of its own: the browser may hold the page of the previous sale for its max-age (5 s).
    await page.goto(`${base}/?${sku}`);
    expect(await page.textContent("#name")).toBe("Busy Phone");
    await sessionLoaded(page);
    if (await page.isVisible("#signed-in")) await page.click("#signout");
    await signIn(page, "member-patient");
    await page.waitForFunction(() => !(document.getElementById("buy") as HTMLButtonElement).disabled);
    await page.click("#buy");
    // In line behind the second shopper: place 2 of 2, paused.
    await page.waitForSelector("#room:not([hidden])").catch(async (err: unknown) => {
      throw new Error(
        `${String(err)}; the page says: ${await page.textContent("#result")}; ${log.join(", ")}`,
      );
    });
    expect(await page.textContent("#room-position")).toBe("2");
    expect(await page.textContent("#room-estimate")).toBe("paused");
    await sale.room(sku)!.resume();
    // Admissions go on (one a second): the place changes to 1, with an estimate.
    await expect.poll(() => page.textContent("#room-position"), { timeout: 10_000 }).toBe("1");
    expect(await page.textContent("#room-estimate")).toMatch(/about \d\d:\d\d/);
    if (!real) await page.screenshot({ path: join(SHOTS, "page-waiting-room.png") });
    // Admitted: the room's panel gives way to the CAPTCHA.
    await page.waitForSelector("#captcha:not([hidden])", { timeout: 30_000 }).catch(async (err: unknown) => {
      const room = JSON.stringify(await sale.room(sku)!.stats());
      const text = await page.textContent("main");
      throw new Error(`${String(err)}; the room: ${room}; the page: ${text}`);
    });
    expect(await page.isVisible("#room")).toBe(false);
    const places = await page.evaluate(() => (window as unknown as { places: string[] }).places);
    expect(places).toEqual(["2", "1"]);
    await page.fill("#captcha-answer", "42");
    await page.click("#captcha-submit");
    await expect.poll(() => page.textContent("#result")).toMatch(/Reserved/);
    const stats = await sale.stats(sku);
    expect(stats.room).toMatchObject({ admitted: 3, admitPerSecond: 1, burst: 1 });
    expect(stats.stock).toMatchObject({ held: 1 });
    await page.close();
    // The dashboard's room panel: the line, the admissions, the set rate.
    const dash = await context.newPage();
    await dash.goto(base + "/dashboard");
    await dash.waitForSelector("#room:not([hidden])");
    await expect.poll(() => dash.textContent("#room-admitted")).toBe("3");
    expect(await dash.textContent("#room-waiting")).toBe("0");
    expect(await dash.textContent("#room-rate")).toBe("1 / s, burst 1");
    if (!real) await dash.screenshot({ path: join(SHOTS, "dashboard-room.png"), fullPage: true });
    await dash.close();
  }, 120_000);

  it("serves the page CDN-ready: immutable hashed assets, short-lived HTML with an ETag", async () => {
    const html = await fetch(base + "/");
    expect(html.headers.get("cache-control")).toBe("public, max-age=5, must-revalidate");
    const etag = html.headers.get("etag")!;
    expect((await fetch(base + "/", { headers: { "if-none-match": etag } })).status).toBe(304);
    const body = await html.text();
    const js = /src="(\/assets\/app\.[0-9a-f]{12}\.js)"/.exec(body)?.[1];
    const css = /href="(\/assets\/style\.[0-9a-f]{12}\.css)"/.exec(body)?.[1];
    expect(js && css).toBeTruthy();
    for (const asset of [js!, css!]) {
      const res = await fetch(base + asset);
      expect(res.status).toBe(200);
      expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    }
    expect((await fetch(base + "/assets/app.000000000000.js")).status).toBe(404);
  });
});

const CAPTCHA_SVG =
  "<svg xmlns='http://www.w3.org/2000/svg' width='160' height='60'><text x='20' y='40' font-size='28'>40 + 2</text></svg>";
