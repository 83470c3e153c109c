// The waiting room in front of a sale (routes/room.ts, SaleGate with `waitingRoom`), through the API on the
// embedded servers: a purchase token needs the room's pass, the line keeps its order and places, tickets and
// passes are bound to the session's user, a pass is spent once, and the dashboard's numbers include the room.
import { afterAll, beforeAll, expect, it } from "vitest";
import { createSaleApp, type SaleApp } from "../src/app.js";
import { startInfra, type Infra } from "../src/infra.js";
import { asUsers, randomPrefix } from "./support.js";

let infra: Infra;
let sale: SaleApp;
beforeAll(async () => {
  infra = await startInfra({});
  sale = await createSaleApp({
    infra,
    prefix: randomPrefix("room"),
    worker: false,
    captchaGenerate: () => ({ svg: "<svg/>", answer: "7" }),
    // One admission a second, one at a time: a line forms as soon as two visitors come.
    waitingRoom: { admitPerSecond: 1, burst: 1, passTtlMs: 60_000 },
  });
  await sale.createSale({ sku: "r", name: "R", priceCents: 100, stock: 10, startsAt: Date.now() - 1000 });
}, 60_000);
afterAll(async () => {
  await sale?.close();
  await infra?.close();
});

const { call } = asUsers(() => sale.app);
const join = (user: string) => call("POST", "/api/room/join", user, { sku: "r" });
const status = (user: string, ticket: string) =>
  call("GET", `/api/room/status?sku=r&ticket=${encodeURIComponent(ticket)}`, user);
const tokenWith = async (user: string, pass?: string) => {
  const c = await call("GET", "/api/captcha?sku=r", user);
  return call("POST", "/api/purchase-token", user, {
    sku: "r",
    captchaId: c.body.id,
    answer: "7",
    ...(pass !== undefined && { pass }),
  });
};

it("admits at the set rate, in join order, with passes bound to the session's user and spent once", async () => {
  // No pass, no purchase token.
  const none = await tokenWith("alice");
  expect([none.status, none.body.error?.code]).toEqual([403, "PASS_REQUIRED"]);

  const a = await join("alice");
  expect(a.body.state).toBe("ADMITTED"); // the bucket's one token
  const b = await join("bob");
  const c = await join("carol");
  expect(b.body).toMatchObject({ state: "WAITING", position: 1 });
  expect(c.body).toMatchObject({ state: "WAITING", position: 2 });
  expect(typeof b.body.estimatedWaitMs).toBe("number");
  // A re-join keeps the place.
  expect((await join("carol")).body).toMatchObject({ state: "WAITING", position: 2, ticket: c.body.ticket });

  // The user is the session's: another user's ticket, a forged one, or a header without a cookie are refused.
  expect((await status("bob", String(c.body.ticket))).body).toEqual({
    state: "REFUSED",
    reason: "WRONG_USER",
  });
  expect((await status("bob", `${String(b.body.ticket)}x`)).body).toMatchObject({ state: "REFUSED" });
  const forged = await call("POST", "/api/room/join", null, { sku: "r" }, { "x-user-id": "dave" });
  expect([forged.status, forged.body.error?.code]).toEqual([401, "SIGN_IN_REQUIRED"]);

  // Alice's pass: not Bob's to use, and Alice's once.
  const stolen = await tokenWith("bob", String(a.body.pass));
  expect([stolen.status, stolen.body.error?.code]).toEqual([403, "PASS_REFUSED"]);
  const t = await tokenWith("alice", String(a.body.pass));
  expect(t.status).toBe(200);
  const again = await tokenWith("alice", String(a.body.pass));
  expect([again.status, again.body.error?.code]).toEqual([403, "PASS_REFUSED"]);
  expect((await status("alice", String(a.body.ticket))).body).toEqual({ state: "NOT_QUEUED" });

  // Bob, then Carol, are admitted as the bucket refills (one a second), never out of order.
  const admittedAt = async (user: string, ticket: string) => {
    const deadline = performance.now() + 20_000;
    for (;;) {
      const s = await status(user, ticket);
      if (s.body.state === "ADMITTED") return s.body;
      expect(s.body.state).toBe("WAITING");
      if (performance.now() > deadline) throw new Error(`${user} was never admitted`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const bob = await admittedAt("bob", String(b.body.ticket));
  expect((await status("carol", String(c.body.ticket))).body).toMatchObject({
    state: "WAITING",
    position: 1,
  });
  const carol = await admittedAt("carol", String(c.body.ticket));
  expect([bob.admission, carol.admission]).toEqual([2, 3]);

  // The dashboard's numbers: the line, the passes out, the admissions and the configured rate.
  const stats = await call("GET", "/api/stats?sku=r", null);
  expect(stats.body.room).toMatchObject({ waiting: 0, active: 2, admitted: 3, admitPerSecond: 1, burst: 1 });

  // Bob buys with his pass: the whole path works through the room.
  const tb = await tokenWith("bob", String(bob.pass));
  const bought = await call("POST", "/api/buy", "bob", { sku: "r", token: tb.body.token });
  expect(bought.status).toBe(202);
}, 60_000);

it("joins are rate limited per user and per IP; a refused join takes no place in the line", async () => {
  const limited = await createSaleApp({
    infra,
    prefix: randomPrefix("roomlim"),
    worker: false,
    // One admission, then hardly any: the joins after the first wait, so the line's length counts them.
    waitingRoom: { admitPerSecond: 0.001, burst: 1, passTtlMs: 60_000 },
    limits: { roomUser: [2, 0.001], roomIp: [3, 0.001] },
  });
  try {
    await limited.createSale({ sku: "l", name: "L", priceCents: 1, stock: 5, startsAt: Date.now() - 1000 });
    const { call: ask } = asUsers(() => limited.app);
    const joinL = (user: string) => ask("POST", "/api/room/join", user, { sku: "l" });
    expect((await joinL("m0")).body).toMatchObject({ state: "ADMITTED" }); // the bucket's one admission
    // One user: two joins (the second keeps the place), then the user's limit.
    expect((await joinL("m1")).body).toMatchObject({ state: "WAITING", position: 1 });
    expect((await joinL("m1")).body).toMatchObject({ state: "WAITING", position: 1 });
    const third = await joinL("m1");
    expect([third.status, third.body.error]).toMatchObject([
      429,
      { code: "RATE_LIMITED", rejectedBy: "room-user" },
    ]);
    // Made-up users from the same address (inject's 127.0.0.1): the IP's limit, 3, was spent by m0 and m1's
    // two joins; the refused join took nothing from it. The next made-up user is refused and not in line.
    const m2 = await joinL("m2");
    expect([m2.status, m2.body.error]).toMatchObject([429, { code: "RATE_LIMITED", rejectedBy: "room-ip" }]);
    const stats = await ask("GET", "/api/stats?sku=l", null);
    expect(stats.body.room).toMatchObject({ waiting: 1, admitted: 1 });
  } finally {
    await limited.close();
  }
}, 60_000);
