// `--processes 2`: two server processes on one port (node:cluster) behind one URL, started as the load test
// and the benchmark start them. Both answer, a session cookie and a purchase token made by one are accepted
// by the other (shared secrets), and a sale created through one reaches both.
import { afterAll, beforeAll, expect, it } from "vitest";
import { startServerChild, type ServerChild } from "../src/child.js";
import { startRedis } from "../src/infra.js";
import { startPostgres, type PrivateDatabase } from "./support.js";

let redis: Awaited<ReturnType<typeof startRedis>>;
let db: PrivateDatabase;
let server: ServerChild;
beforeAll(async () => {
  redis = await startRedis();
  db = await startPostgres();
  server = await startServerChild(
    {
      REDIS_URL: redis.url,
      DATABASE_URL: db.url,
      DEMO_SALE: "0",
      ORDER_WORKER: "0",
      CAPTCHA_ANSWER: "7",
      ROOM: "off", // the purchase token below needs no waiting-room pass
    },
    2,
  );
}, 180_000);
afterAll(async () => {
  await server?.stop();
  await db?.stop();
  await redis?.stop();
});

it("two processes on one port share the sale, the sessions and the purchase tokens", async () => {
  const url = (p: string) => new URL(p, server.url);
  const created = await fetch(url("/api/admin/sales"), {
    method: "POST",
    headers: { "content-type": "application/json", "x-admin-key": server.adminKey },
    body: JSON.stringify({ sku: "two", name: "Two", priceCents: 1, stock: 3, startsAt: Date.now() - 1000 }),
  });
  expect(created.status).toBe(201);
  const deadline = performance.now() + 30_000;
  let knows = await server.command("knows-sale", "two");
  while (!knows.every((k) => k === true) && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    knows = await server.command("knows-sale", "two");
  }
  expect(knows).toEqual([true, true]);

  const signIn = await fetch(url("/api/session"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "member-two" }),
  });
  const cookie = signIn.headers.getSetCookie()[0]!.split(";")[0]!;
  // New connections each time (no keep-alive): node:cluster hands them to both processes in turn, and each
  // one accepts the cookie the other signed.
  for (let i = 0; i < 8; i++) {
    const me = await fetch(url("/api/session"), { headers: { cookie, connection: "close" } });
    expect(await me.json()).toMatchObject({ userId: "member-two" });
  }
  const ask = async (path: string, body?: object) => {
    const res = await fetch(url(path), {
      method: body ? "POST" : "GET",
      headers: { cookie, connection: "close", ...(body && { "content-type": "application/json" }) },
      ...(body && { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, string> };
  };
  const c = await ask("/api/captcha?sku=two");
  const t = await ask("/api/purchase-token", { sku: "two", captchaId: c.body.id!, answer: "7" });
  expect(t.status).toBe(200);
  const b = await ask("/api/buy", { sku: "two", token: t.body.token! });
  expect(b).toMatchObject({ status: 202, body: { remaining: 2 } });
  // A forged header without the cookie is refused by both processes alike.
  for (let i = 0; i < 4; i++) {
    const res = await fetch(url("/api/captcha?sku=two"), {
      headers: { "x-user-id": "member-two", connection: "close" },
    });
    expect(res.status).toBe(401);
  }
});
