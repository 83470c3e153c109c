// The page's script (public/app.js) against a minimal fake DOM, with a browser clock a minute fast and a
// server whose /api/time fails at first: the buy button must stay disabled until the server's clock is
// known, and then follow the server's clock, never the browser's.
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

/** Runs the page; `/api/time` fails `failures` times (network error, then 503s), then answers. */
function runPage(failures: number) {
  const skewMs = 60_000; // this browser's clock runs a minute fast
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
    if (path !== "/api/time") throw new Error(`unexpected ${path}`);
    calls++;
    if (calls === 1) throw new TypeError("Failed to fetch");
    if (calls <= failures) return { status: 503, json: async () => ({ reason: "ERROR" }) };
    return { status: 200, json: async () => ({ now: Date.now() }) };
  };
  const schedule = (fn: () => void, ms: number) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
    return t;
  };
  new Function("document", "localStorage", "fetch", "setTimeout", "setInterval", "Date", SOURCE)(
    { getElementById: element },
    { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => store.set(k, v) },
    fetch,
    schedule,
    () => {
      throw new Error("the page should schedule with setTimeout");
    },
    { now: () => Date.now() + skewMs },
  );
  return { button: element("buy"), countdown: element("countdown"), calls: () => calls };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it("keeps the button disabled until the server's clock is known, then counts down by it", async () => {
  const page = runPage(2); // a network error, then a 503, then the answer (retried every second)
  await sleep(300);
  expect(page.calls()).toBe(1);
  expect(page.button.disabled).toBe(true); // by the browser's clock the sale would be open already
  expect(page.countdown.textContent).toMatch(/Syncing/);
  await sleep(1_000);
  expect(page.calls()).toBe(2);
  expect(page.button.disabled).toBe(true);
  await sleep(1_000);
  expect(page.calls()).toBe(3);
  await sleep(200);
  expect(page.countdown.textContent).toMatch(/^Starts in 00:(2[5-9]|30)$/); // the server's 30 s, less what passed
  expect(page.button.disabled).toBe(true);
});
