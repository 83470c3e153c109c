// The page's script (public/app.js) against a minimal fake DOM, with a browser wall clock a minute fast and a
// server whose /api/time fails at first: the buy button stays disabled until the server's clock is known,
// then follows the server's clock on the monotonic clock, never the browser's wall clock; the page asks
// for the time once, and again only when the tab becomes visible.
import { readFileSync } from "node:fs";
import { afterEach, expect, it } from "vitest";

const SOURCE = readFileSync(new URL("../public/app.js", import.meta.url), "utf8");

interface FakeElement {
  value: string;
  textContent: string;
  disabled: boolean;
  hidden: boolean;
  src: string;
  focus(): void;
  addEventListener(): void;
}

const timers = new Set<NodeJS.Timeout>();
afterEach(() => {
  for (const t of timers) clearTimeout(t);
  timers.clear();
});

/** Runs the page; `/api/time` fails `failures` times (a network error, then 503s), then answers. */
function runPage(failures: number, opts: { ageSeconds?: number } = {}) {
  const skewMs = 60_000; // this browser's wall clock runs a minute fast
  const sale = { sku: "p", startsAt: Date.now() + 30_000, endsAt: null }; // opens in 30 s, server time
  const elements = new Map<string, FakeElement>();
  const element = (id: string): FakeElement => {
    let e = elements.get(id);
    if (e === undefined) {
      e = {
        value: "",
        textContent: id === "sale-data" ? JSON.stringify(sale) : "",
        disabled: true,
        hidden: false,
        src: "",
        focus() {},
        addEventListener() {},
      };
      elements.set(id, e);
    }
    return e;
  };
  const store = new Map<string, string>();
  let calls = 0;
  const fetch = async (path: string) => {
    // Not signed in (the clock logic does not depend on it).
    if (path === "/api/session")
      return { status: 401, json: async () => ({ error: { code: "SIGN_IN_REQUIRED" } }) };
    if (path !== "/api/time") throw new Error(`unexpected ${path}`);
    calls++;
    if (calls === 1) throw new TypeError("Failed to fetch");
    const headers = { get: (h: string) => (h === "age" ? String(opts.ageSeconds ?? 0) : null) };
    if (calls <= failures) {
      return { status: 503, headers, json: async () => ({ error: { code: "CLOCK_NOT_SYNCED" } }) };
    }
    // A cached answer is `age` seconds old: the server's time then.
    const now = Date.now() - (opts.ageSeconds ?? 0) * 1000;
    return { status: 200, headers, json: async () => ({ now, errorMs: 1 }) };
  };
  const schedule = (fn: () => void, ms: number) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
    return t;
  };
  const listeners = new Map<string, () => void>();
  const document = {
    visibilityState: "visible",
    getElementById: element,
    addEventListener: (type: string, fn: () => void) => listeners.set(type, fn),
  };
  new Function(
    "document",
    "localStorage",
    "fetch",
    "setTimeout",
    "setInterval",
    "Date",
    "performance",
    SOURCE,
  )(
    document,
    { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => store.set(k, v) },
    fetch,
    schedule,
    () => {
      throw new Error("the page should schedule with setTimeout");
    },
    { now: () => Date.now() + skewMs },
    performance,
  );
  return {
    button: element("buy"),
    countdown: element("countdown"),
    calls: () => calls,
    becomeVisible: () => listeners.get("visibilitychange")?.(),
    document,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `probe` holds or the deadline passes (a busy machine only makes it slower, never wrong). */
async function until(probe: () => boolean, deadlineMs = 10_000) {
  const end = performance.now() + deadlineMs;
  while (!probe() && performance.now() < end) await sleep(20);
  expect(probe()).toBe(true);
}

it("keeps the button disabled until the server's clock is known, then counts down by it", async () => {
  const page = runPage(2); // a network error, then a 503, then the answer (retried every second)
  await until(() => page.calls() >= 1);
  expect(page.button.disabled).toBe(true); // by the browser's wall clock the sale would be open already
  expect(page.countdown.textContent).toMatch(/Syncing/);
  await until(() => page.calls() >= 2);
  expect(page.button.disabled).toBe(true);
  expect(page.countdown.textContent).toMatch(/Syncing/);
  await until(() => page.calls() >= 3);
  await until(() => /^Starts in/.test(page.countdown.textContent));
  // The server's 30 s, less what has passed: never the browser's wall clock (a minute fast: open already).
  expect(page.countdown.textContent).toMatch(/^Starts in 00:(1\d|2\d|30)$/);
  expect(page.button.disabled).toBe(true);
});

it("asks for the time once per page load, and again when the tab becomes visible", async () => {
  const page = runPage(0);
  await until(() => /^Starts in/.test(page.countdown.textContent));
  // The first call fails (a network error) and is retried; then no more calls while the page stays open.
  expect(page.calls()).toBe(2);
  await sleep(1_500);
  expect(page.calls()).toBe(2);
  page.document.visibilityState = "hidden";
  page.becomeVisible(); // a "hidden" change does not sync
  expect(page.calls()).toBe(2);
  page.document.visibilityState = "visible";
  page.becomeVisible();
  await until(() => page.calls() === 3);
});

it("adds the Age of a cached /api/time answer", async () => {
  const page = runPage(0, { ageSeconds: 20 }); // served from a CDN copy 20 s old
  await until(() => /^Starts in/.test(page.countdown.textContent));
  // Without the Age header it would show about 50 s.
  expect(page.countdown.textContent).toMatch(/^Starts in 00:(2\d|30)$/);
});
