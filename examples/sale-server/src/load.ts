// `npm run load`: a whole sale under load, in phases, with what each phase cost Redis (INFO commandstats
// deltas on the example's Redis):
//   1. before the start: page loads (HTML, script, /api/time) and clicks (CAPTCHA, token, buy)  → 0 commands
//   2. a client refused by a rate limit, retrying before its next token time                      → 0 commands
//   3. the sale: buyers through CAPTCHA → purchase token → buy; commands per successful buy printed
//   4. the crowd: REQUESTS attempts from USERS users until and after the stock runs out
//   5. after sell-out: buys with new reservation ids (valid tokens, never used)                  → 0 commands
// With the waiting room on (the default), every buyer joins the sale's room and polls until admitted before the
// CAPTCHA, and the crowd checks that the buy route never sees more buys than the room admits (at most
// burst + rate × seconds since the crowd started) and samples the line's length over time.
// Then it pays some orders, waits for the payment timeout to cancel the rest, and checks the books: exactly
// UNITS orders, nothing oversold, no user with two orders, available + held + confirmed = initial.
// The server runs in its own process(es) (src/main.ts --control, started by child.ts), driven over HTTP from
// this one, each virtual user signed in with its own session cookie. While a phase is counted, the servers'
// background timers (hold sweeper, clock resync) are paused over the control channel and the order worker
// has not started yet (it starts after phase 5 and times each payment window from its reservation), so the
// counts are the requests' own.
//   REQUESTS (5000) USERS (2000) UNITS (100) CONCURRENCY (100) PAY_FRACTION (0.3) PROCESSES (1)
//   PAYMENT_TIMEOUT_MS (60000: longer than the buy phases, so no unit is sold twice)
//   ROOM_RATE (50) ROOM_BURST (20): the waiting room's admissions a second and burst; ROOM=off: no room
//   REDIS_URL / DATABASE_URL as for the server (default: private redis-server and PGlite)
//   REPORT (load-report.html)
import { writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { Redis } from "ioredis";
import type { SaleStats } from "./app.js";
import { startServerChild, type ServerChild } from "./child.js";
import { startRedis } from "./infra.js";
import { commandCounts, countsDelta, total, type CommandCounts } from "./redis-stats.js";

export interface LoadOptions {
  readonly requests: number;
  readonly users: number;
  readonly units: number;
  readonly concurrency: number;
  readonly payFraction: number;
  readonly paymentTimeoutMs: number;
  /** REDIS_URL and DATABASE_URL of the servers (default: a private redis-server, PGlite in the server). */
  readonly env?: NodeJS.ProcessEnv;
  readonly prefix?: string;
  /** Server processes on one port (`--processes`; more than 1 needs DATABASE_URL). @default 1 */
  readonly processes?: number;
  /** The waiting room in front of the sale, or `false` for none. @default { admitPerSecond: 50, burst: 20 } */
  readonly room?: { readonly admitPerSecond: number; readonly burst: number } | false;
}

/** What the waiting room let through during the crowd. */
export interface RoomReport {
  readonly admitPerSecond: number;
  readonly burst: number;
  /** Ms since the crowd started at which each buy request was sent, in order. */
  readonly buysAt: number[];
  /** The most buys sent by any moment t, minus `burst + admitPerSecond × t`: at most 0 when the room holds. */
  readonly maxExcess: number;
  /** [ms since the crowd started, users in line, admitted so far] every 200 ms during the crowd. */
  readonly queue: [number, number, number][];
  /** Whether the buy route never saw more than the room admits. */
  readonly held: boolean;
}

/** What one phase cost Redis. */
export interface Phase {
  readonly name: string;
  /** HTTP requests sent in the phase. */
  readonly requests: number;
  /** Redis commands the phase caused, by command (scripts' inner commands included). */
  readonly commands: CommandCounts;
  readonly total: number;
  /** The phase must cost Redis nothing. */
  readonly expectZero: boolean;
  /** HTTP status → count. */
  readonly statuses: Record<number, number>;
  /** Commands per successful buy (the sale phase only). */
  readonly perBuy?: { room: number; captcha: number; token: number; buy: number };
}

export interface LoadResult {
  readonly options: LoadOptions;
  readonly phases: Phase[];
  readonly durationMs: number;
  readonly throughput: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly outcomes: Record<string, number>;
  readonly reserved: number;
  readonly paid: number;
  readonly before: SaleStats;
  readonly after: SaleStats;
  readonly oversold: number;
  readonly conservation: boolean;
  /** [ms since start, latency ms] of every attempt of the crowd. */
  readonly samples: [number, number][];
  /** The waiting room's part (absent without a room). */
  readonly room?: RoomReport;
  readonly ok: boolean;
}

const ANSWER = "42";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

interface Reply {
  readonly status: number;
  readonly body: Record<string, unknown> & { error?: { code: string; [k: string]: unknown } };
}

/** Runs `n` jobs with at most `concurrency` at a time. */
async function pool(n: number, concurrency: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await job(next++);
  };
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, worker));
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const env = o.env ?? process.env;
  const processes = o.processes ?? 1;
  const roomSet = o.room === undefined ? { admitPerSecond: 50, burst: 20 } : o.room;
  if (processes > 1 && !env.DATABASE_URL)
    throw new Error("a load test on several server processes needs DATABASE_URL (PGlite is in-process)");
  // The servers' Redis: the given one, or a private redis-server this process owns (and reads the counts of).
  const ownRedis = env.REDIS_URL ? undefined : await startRedis(env);
  const redisUrl = env.REDIS_URL ?? ownRedis!.url;
  const probe = new Redis(redisUrl);
  let server: ServerChild | undefined;
  const agent = new Agent({ keepAlive: true, maxSockets: o.concurrency });
  try {
    server = await startServerChild(
      {
        REDIS_URL: redisUrl,
        ...(env.DATABASE_URL && { DATABASE_URL: env.DATABASE_URL }),
        PREFIX: o.prefix ?? `load${Date.now().toString(36)}`,
        PAYMENT_TIMEOUT_MS: String(o.paymentTimeoutMs),
        // The load comes through a (simulated) proxy on loopback that sets X-Forwarded-For per buyer.
        TRUST_PROXY: "127.0.0.1/32,::1/128",
        // A fixed CAPTCHA answer stands in for humans solving pictures.
        CAPTCHA_ANSWER: ANSWER,
        // The order worker starts after the counted phases (start-worker below).
        ORDER_WORKER: "0",
        DEMO_SALE: "0",
        ...(roomSet
          ? { ROOM_RATE: String(roomSet.admitPerSecond), ROOM_BURST: String(roomSet.burst) }
          : { ROOM: "off" }),
        // The limiter fails closed after 500 ms by default; a shared test machine stalls that long at times,
        // and this test checks the books and the Redis counts, not the latencies.
        LIMITS: JSON.stringify({ timeoutMs: 5_000 }),
      },
      processes,
    );
    const srv = server;
    // A SKU of its own per run: orders of an earlier run on the same database must not enter the books.
    const SKU = `load-phone-${Date.now().toString(36)}`;
    const url = srv.url;

    // node:http with keep-alive: the global fetch costs several times more CPU per request, and the load
    // generator shares the machine with the server.
    let sent = 0;
    const statuses: Record<number, number> = {};
    const raw = (path: string, body: object | undefined, headers: Record<string, string>) =>
      new Promise<Reply & { setCookie: string[] }>((resolve, reject) => {
        sent++;
        const payload = body ? JSON.stringify(body) : undefined;
        const req = request(
          {
            agent,
            host: url.hostname,
            port: url.port,
            path,
            method: payload ? "POST" : "GET",
            headers: {
              ...headers,
              ...(payload && {
                "content-type": "application/json",
                "content-length": String(Buffer.byteLength(payload)),
              }),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => {
              const status = res.statusCode ?? 0;
              statuses[status] = (statuses[status] ?? 0) + 1;
              const text = Buffer.concat(chunks).toString();
              try {
                resolve({
                  status,
                  body: text.startsWith("{") ? JSON.parse(text) : {},
                  setCookie: res.headers["set-cookie"] ?? [],
                });
              } catch (err) {
                reject(err);
              }
            });
          },
        );
        req.on("error", reject);
        req.end(payload);
      });
    const xff = (user: number) => `10.${(user >> 16) & 255}.${(user >> 8) & 255}.${user & 255}`;
    // Each virtual user signs in once (POST /api/session) and sends its own session cookie from then on.
    const sessions = new Map<number, Promise<string>>();
    const cookieOf = (user: number): Promise<string> => {
      let c = sessions.get(user);
      if (c === undefined) {
        c = raw("/api/session", { name: `member-${user}` }, { "x-forwarded-for": xff(user) }).then((r) => {
          const cookie = r.setCookie.map((h) => h.split(";")[0]!).find((h) => h.startsWith("fsk_session="));
          if (r.status !== 200 || cookie === undefined)
            throw new Error(`sign-in of user ${user}: ${r.status}`);
          return cookie;
        });
        sessions.set(user, c);
      }
      return c;
    };
    const call = async (user: number, path: string, body?: object): Promise<Reply> =>
      raw(path, body, { cookie: await cookieOf(user), "x-forwarded-for": xff(user) });
    const admin = (path: string, body: object) => raw(path, body, { "x-admin-key": srv.adminKey });
    const stats = async (): Promise<SaleStats> => {
      const r = await raw(`/api/stats?sku=${SKU}`, undefined, {});
      if (r.status !== 200) throw new Error(`stats: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body as unknown as SaleStats;
    };
    // Redis time as the servers serve it (GET /api/time), carried on this process's monotonic clock.
    const t0sync = performance.now();
    const time = await raw("/api/time", undefined, {});
    const t1sync = performance.now();
    const clockBase = {
      ms: Number(time.body.now) - (t0sync + t1sync) / 2,
      errorMs: Number(time.body.errorMs) + (t1sync - t0sync) / 2 + 1,
    };
    const redisNow = () => ({ ms: clockBase.ms + performance.now(), errorMs: clockBase.errorMs });

    const phases: Phase[] = [];
    /**
     * Runs `fn` and records what it cost Redis; with `quiet` (the default), the background loops are paused
     * meanwhile, so that the count is the requests' own.
     */
    const measure = async (
      name: string,
      expectZero: boolean,
      fn: () => Promise<void>,
      quiet = true,
    ): Promise<Phase> => {
      await srv.command(quiet ? "pause" : "resume");
      const sent0 = sent;
      for (const k of Object.keys(statuses)) delete statuses[Number(k)];
      const before = await commandCounts(probe);
      await fn();
      const commands = countsDelta(before, await commandCounts(probe));
      const phase = {
        name,
        requests: sent - sent0,
        commands,
        total: total(commands),
        expectZero,
        statuses: { ...statuses },
      };
      phases.push(phase);
      return phase;
    };
    // ---- 1. before the start -----------------------------------------------------------------------------
    // 20 s ahead: the phase needs over 1,000 requests to arrive before the start, and on a busy shared
    // machine the server (a separate process now) may answer only a few hundred a second.
    const startsAt = Math.round(redisNow().ms) + 20_000;
    const created = await admin("/api/admin/sales", {
      sku: SKU,
      name: "Load Phone",
      priceCents: 100,
      stock: o.units,
      startsAt,
    });
    if (created.status !== 201) throw new Error(`create the sale: ${created.status}`);
    // Every server process learns of the sale from the products table (within 2 s).
    await until("every server process knows the sale", 30_000, async () =>
      (await srv.command("knows-sale", SKU)).every((k) => k === true) ? true : undefined,
    );
    const page = await new Promise<string>((resolve, reject) =>
      request({ agent, host: url.hostname, port: url.port, path: "/" }, (res) => {
        let s = "";
        res.on("data", (c: Buffer) => (s += c.toString()));
        res.on("end", () => resolve(s));
      })
        .on("error", reject)
        .end(),
    );
    const asset = /src="(\/assets\/app\.[0-9a-f]+\.js)"/.exec(page)?.[1] ?? "/assets/missing.js";
    // Each request is sent only while the start is more than 2 s away by the process's clock, so none arrives
    // at the server close enough to the start for the server to ask Redis, however slow this machine is.
    const beforeStart = () => redisNow().ms + redisNow().errorMs + 2_000 < startsAt;
    await measure("before the start: page loads and clicks", true, () =>
      pool(Math.min(o.users, 1000), o.concurrency, async (user) => {
        const steps: [string, object?][] = [
          ["/"],
          [asset],
          ["/api/time"],
          ["/api/room/join", { sku: SKU }],
          [`/api/captcha?sku=${SKU}`],
          ["/api/purchase-token", { sku: SKU, captchaId: "c", answer: ANSWER }],
          ["/api/buy", { sku: SKU, token: "no-token-yet" }],
        ];
        for (const [path, body] of steps) {
          if (!beforeStart()) return;
          const r = await call(user, path, body);
          if (r.status >= 500) throw new Error(`${path} before the start: ${r.status}`);
        }
      }),
    );
    // Open by this process's estimate, with a margin for each server process's own clock error.
    await until("the start", 30_000, async () =>
      redisNow().ms - redisNow().errorMs >= startsAt + 500 ? true : undefined,
    );

    // ---- 2. a refused client before its next token time --------------------------------------------------
    const BOT = o.users + 1;
    let retryAt = 0;
    for (let i = 0; i < 100 && retryAt === 0; i++) {
      const r = await call(BOT, "/api/buy", { sku: SKU, token: "bogus" });
      if (r.status === 429) retryAt = performance.now() + Number(r.body.error?.retryAfterMs ?? 0);
    }
    if (retryAt === 0) throw new Error("the rate limit never refused the bot");
    await measure("a refused client, before its next token time", true, async () => {
      for (let i = 0; i < 500 && performance.now() < retryAt - 200; i++) {
        const r = await call(BOT, "/api/buy", { sku: SKU, token: "bogus" });
        if (r.status !== 429) throw new Error(`the refused client got ${r.status}`);
      }
    });

    // ---- 3. the sale: successful buys, step by step ------------------------------------------------------
    const buyers = Math.max(1, Math.floor(o.units / 2));
    const tokens = new Map<number, string>();
    const passes = new Map<number, string>();
    const reservations = new Map<string, number>(); // reservationId → user
    /**
     * Joins the room and polls until admitted: the pass ("" without a room), or the refusal that ended the
     * wait (sold out, for one). Polls at about half the estimated wait, between 50 and 500 ms.
     */
    const admitted = async (user: number): Promise<{ pass: string } | { refused: Reply }> => {
      if (!roomSet) return { pass: "" };
      let r = await call(user, "/api/room/join", { sku: SKU });
      const ticket = String(r.body.ticket ?? "");
      for (;;) {
        if (r.status !== 200) return { refused: r };
        if (r.body.state === "ADMITTED") return { pass: String(r.body.pass) };
        if (r.body.state !== "WAITING" && r.body.state !== "NOT_QUEUED") return { refused: r };
        await sleep(Math.min(500, Math.max(50, Number(r.body.estimatedWaitMs ?? 500) / 2)));
        r =
          r.body.state === "NOT_QUEUED"
            ? await call(user, "/api/room/join", { sku: SKU })
            : await call(user, `/api/room/status?sku=${SKU}&ticket=${encodeURIComponent(ticket)}`);
      }
    };
    const withPass = (user: number) => (passes.get(user) ? { pass: passes.get(user) } : {});
    const token = async (user: number) => {
      const a = await admitted(user);
      if ("refused" in a) throw new Error(`a late buyer was not admitted: ${JSON.stringify(a.refused)}`);
      passes.set(user, a.pass);
      const c = await call(user, `/api/captcha?sku=${SKU}`);
      const t = await call(user, "/api/purchase-token", {
        sku: SKU,
        captchaId: c.body.id,
        answer: ANSWER,
        ...withPass(user),
      });
      if (t.status !== 200)
        throw new Error(`no token for a late buyer: ${c.status} ${t.status} ${JSON.stringify(t.body)}`);
      tokens.set(user, String(t.body.token));
    };
    const captchas = new Map<number, string>();
    const c0 = await measure("sale: waiting room (join, status until admitted)", false, () =>
      pool(buyers, o.concurrency, async (u) => {
        const a = await admitted(u);
        if ("refused" in a) throw new Error(`a sale buyer was not admitted: ${JSON.stringify(a.refused)}`);
        passes.set(u, a.pass);
      }),
    );
    const c1 = await measure("sale: CAPTCHA", false, () =>
      pool(buyers, o.concurrency, async (u) => {
        captchas.set(u, String((await call(u, `/api/captcha?sku=${SKU}`)).body.id));
      }),
    );
    const c2 = await measure("sale: purchase token", false, () =>
      pool(buyers, o.concurrency, async (u) => {
        const t = await call(u, "/api/purchase-token", {
          sku: SKU,
          captchaId: captchas.get(u),
          answer: ANSWER,
          ...withPass(u),
        });
        if (t.status === 200) tokens.set(u, String(t.body.token));
      }),
    );
    const refused: string[] = [];
    const c3 = await measure("sale: buy", false, () =>
      pool(buyers, o.concurrency, async (u) => {
        const b = await call(u, "/api/buy", { sku: SKU, token: tokens.get(u) });
        if (b.status === 202) reservations.set(String(b.body.reservationId), u);
        else refused.push(`${b.status} ${b.body.error?.code}`);
      }),
    );
    if (reservations.size !== buyers)
      throw new Error(`${reservations.size} of ${buyers} sale buyers reserved (${refused.join(", ")})`);
    for (const u of reservations.values()) tokens.delete(u);
    const per = (p: Phase) => p.total / buyers;
    const salePhase: Phase = {
      name: "sale: one successful buy (CAPTCHA + token + buy)",
      requests: c0.requests + c1.requests + c2.requests + c3.requests,
      commands: {},
      total: c0.total + c1.total + c2.total + c3.total,
      expectZero: false,
      statuses: {},
      perBuy: { room: per(c0), captcha: per(c1), token: per(c2), buy: per(c3) },
    };
    phases.push(salePhase);

    // Tokens for phase 5: buyers who will come back after the sell-out with a new reservation id.
    const late = Array.from({ length: 200 }, (_, i) => o.users + 10 + i);
    await pool(late.length, o.concurrency, (i) => token(late[i]!));

    // ---- 4. the crowd -------------------------------------------------------------------------------------
    const outcomes: Record<string, number> = {};
    const samples: [number, number][] = [];
    const buysAt: number[] = [];
    const queue: [number, number, number][] = [];
    let crowdDone = false;
    const t0 = performance.now();
    // The line's length over time, from the dashboard's numbers, every 200 ms while the crowd runs.
    const sampler = (async () => {
      while (roomSet && !crowdDone) {
        const r = await raw(`/api/stats?sku=${SKU}`, undefined, {});
        const room = (r.body as Partial<SaleStats>).room;
        if (room) queue.push([performance.now() - t0, room.waiting, room.admitted]);
        await sleep(200);
      }
    })();
    // The order worker runs meanwhile (orders must be written within their payment window): this phase's
    // count includes its stream reads.
    await measure(
      "the crowd",
      false,
      () =>
        pool(o.requests, o.concurrency, async (i) => {
          const user = buyers + (i % (o.users - buyers));
          const started = performance.now();
          let outcome: string;
          const a = await admitted(user);
          if ("refused" in a) {
            const r = a.refused;
            outcome = `${r.status} ${r.body.error?.code ?? String(r.body.state)} (room)`;
            const ended = performance.now();
            samples.push([ended - t0, ended - started]);
            outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
            return;
          }
          passes.set(user, a.pass);
          const c = await call(user, `/api/captcha?sku=${SKU}`);
          const t =
            c.status === 200
              ? await call(user, "/api/purchase-token", {
                  sku: SKU,
                  captchaId: c.body.id,
                  answer: ANSWER,
                  ...withPass(user),
                })
              : c;
          // A pass is spent by a purchase token, and kept by a refusal before it (the CAPTCHA, a limit).
          if (t.status === 200) passes.delete(user);
          if (t.status !== 200)
            outcome = `${t.status} ${t.body.error?.code}${c === t ? " (captcha)" : " (token)"}`;
          else {
            buysAt.push(performance.now() - t0);
            const b = await call(user, "/api/buy", { sku: SKU, token: t.body.token });
            outcome =
              b.status === 202
                ? "RESERVED"
                : `${b.status} ${b.body.error?.code}${b.body.error?.detail ? ` ${b.body.error.detail}` : ""}`;
            if (b.status === 202) reservations.set(String(b.body.reservationId), user);
          }
          const ended = performance.now();
          samples.push([ended - t0, ended - started]);
          outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
        }),
      false,
    );
    const durationMs = performance.now() - t0;
    crowdDone = true;
    await sampler;
    // Every buy of the crowd was sent after its user's admission, and the crowd's users joined after t0: the
    // k-th buy, sent at t ms, needs k admissions in t ms, which the room allows only up to burst + rate × t.
    let roomReport: RoomReport | undefined;
    if (roomSet) {
      const sorted = [...buysAt].sort((x, y) => x - y);
      const maxExcess = sorted.reduce(
        (m, t, k) => Math.max(m, k + 1 - roomSet.burst - (roomSet.admitPerSecond * t) / 1000),
        -Infinity,
      );
      roomReport = { ...roomSet, buysAt: sorted, maxExcess, queue, held: maxExcess <= 0 };
    }

    // ---- 5. after sell-out: new ids ------------------------------------------------------------------------
    const soldOut = (await stats()).stock;
    if (soldOut.available !== 0) throw new Error(`not sold out after the crowd: ${soldOut.available} left`);
    await measure("after sell-out: buys with new ids", true, () =>
      pool(late.length, o.concurrency, async (i) => {
        const user = late[i]!;
        const b = await call(user, "/api/buy", { sku: SKU, token: tokens.get(user) ?? "none" });
        if (b.status !== 409 || b.body.error?.code !== "SOLD_OUT")
          throw new Error(`a late buyer got ${b.status} ${JSON.stringify(b.body)}`);
      }),
    );
    await srv.command("resume");
    await srv.command("start-worker");

    // ---- the books -----------------------------------------------------------------------------------------
    // The worker turns every reservation into an order.
    const before = await until("every order", 60_000, async () => {
      const s = await stats();
      return s.orders.total >= reservations.size ? s : undefined;
    });
    // Some buyers pay; the payment timeout cancels the others and returns their units.
    const toPay = [...reservations].slice(0, Math.round(reservations.size * o.payFraction));
    let paid = 0;
    for (const [id, user] of toPay) {
      if ((await call(user, `/api/orders/${id}/pay`, {})).status === 200) paid++;
    }
    const after = await until("the payment timeout", o.paymentTimeoutMs + 60_000, async () => {
      const s = await stats();
      return s.orders.pending === 0 && s.stock.held === 0 ? s : undefined;
    });

    const lat = samples.map(([, l]) => l).sort((a, b) => a - b);
    const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? 0;
    const oversold = Math.max(0, before.orders.total - o.units, after.stock.confirmed - o.units);
    const { initial, available, held, confirmed } = after.stock;
    const conservation = available >= 0 && available + held + confirmed === initial;
    // A buy phase longer than the payment timeout lets cancelled units be sold again: the run proves nothing.
    const ok =
      durationMs < o.paymentTimeoutMs &&
      before.orders.total === Math.min(o.units, reservations.size) &&
      reservations.size === o.units &&
      oversold === 0 &&
      after.duplicateUsers === 0 &&
      conservation &&
      after.orders.paid === paid &&
      after.stock.confirmed === paid &&
      after.orders.cancelled === reservations.size - paid &&
      (roomReport === undefined || roomReport.held);
    return {
      options: o,
      phases,
      durationMs,
      throughput: (o.requests / durationMs) * 1000,
      p50Ms: pct(0.5),
      p99Ms: pct(0.99),
      outcomes,
      reserved: reservations.size,
      paid,
      before,
      after,
      oversold,
      conservation,
      samples,
      ...(roomReport && { room: roomReport }),
      ok,
    };
  } finally {
    agent.destroy();
    probe.disconnect();
    await server?.stop();
    await ownRedis?.stop();
  }
}

const fmtCommands = (c: CommandCounts) =>
  Object.entries(c)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");

export function phaseTable(r: LoadResult): string {
  return r.phases
    .map((p) => {
      if (p.perBuy) {
        const { room, captcha, token, buy } = p.perBuy;
        return `  ${p.name}: ${(room + captcha + token + buy).toFixed(1)} commands (waiting room ${room.toFixed(1)} + CAPTCHA ${captcha.toFixed(1)} + token ${token.toFixed(1)} + buy ${buy.toFixed(1)}; scripts' inner commands included)`;
      }
      const perReq = p.requests ? p.total / p.requests : 0;
      const verdict = p.expectZero ? (p.total === 0 ? "  [0: ok]" : "  [NOT 0]") : "";
      const st = Object.entries(p.statuses)
        .map(([k, v]) => `${k}: ${v}`)
        .join(", ");
      return `  ${p.name}: ${p.requests} requests (HTTP ${st}), ${p.total} Redis commands, ${perReq.toFixed(3)} per request${verdict}${p.total ? ` (${fmtCommands(p.commands)})` : ""}`;
    })
    .join("\n");
}

export function summary(r: LoadResult): string {
  const o = r.options;
  return [
    `Redis commands per request, by phase (INFO commandstats deltas):`,
    phaseTable(r),
    `the crowd: ${o.requests} buy attempts from ${o.users} users against ${o.units} units, ${o.concurrency} at a time, from a separate process against ${o.processes ?? 1} server process(es)`,
    `  ${r.throughput.toFixed(0)} attempts/s (CAPTCHA + token + buy each), p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms`,
    `  outcomes: ${Object.entries(r.outcomes)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}`,
    ...(r.room ? roomLines(r.room) : [`waiting room: off`]),
    `books: ${r.before.orders.total} orders created, ${r.paid} paid, ${r.after.orders.cancelled} cancelled by the payment timeout`,
    `  oversold: ${r.oversold}; users with two orders: ${r.after.duplicateUsers}`,
    `  stock after: initial ${r.after.stock.initial} = available ${r.after.stock.available} + held ${r.after.stock.held} + confirmed ${r.after.stock.confirmed}: ${r.conservation ? "holds" : "BROKEN"}`,
    ...(r.durationMs >= o.paymentTimeoutMs
      ? [
          `  the crowd (${(r.durationMs / 1000).toFixed(1)} s) outlasted the payment timeout: raise PAYMENT_TIMEOUT_MS`,
        ]
      : []),
    `verdict: ${r.ok ? "books OK" : "books FAILED"}; phases that must cost Redis nothing: ${r.phases.every((p) => !p.expectZero || p.total === 0) ? "all 0" : "NOT all 0"}`,
  ].join("\n");
}

function roomLines(room: RoomReport): string[] {
  const peak = Math.max(0, ...room.queue.map(([, w]) => w));
  // About 20 points of the line, whatever the crowd's length (a sample every 200 ms).
  const every = Math.max(1, Math.ceil(room.queue.length / 20));
  const series = room.queue
    .filter((_, i) => i % every === 0)
    .map(([t, w]) => `${(t / 1000).toFixed(1)} s: ${w}`)
    .join(", ");
  return [
    `waiting room: ${room.admitPerSecond} admissions/s, burst ${room.burst}; ${room.buysAt.length} buys reached the buy route during the crowd`,
    `  most buys by any moment t minus (burst + rate × t): ${room.maxExcess.toFixed(1)} (at most 0: ${room.held ? "holds" : "BROKEN"})`,
    `  users in line (peak ${peak}): ${series}`,
  ];
}

/** A self-contained HTML report: latency over time (SVG scatter), Redis cost by phase, outcome counts. */
export function htmlReport(r: LoadResult): string {
  const w = 900;
  const h = 300;
  const maxT = Math.max(1, ...r.samples.map(([t]) => t));
  const maxL = Math.max(1, r.p99Ms * 1.5);
  const dots = r.samples
    .map(
      ([t, l]) =>
        `<circle cx="${(50 + (t / maxT) * (w - 60)).toFixed(1)}" cy="${(h - 30 - (Math.min(l, maxL) / maxL) * (h - 50)).toFixed(1)}" r="1.2"/>`,
    )
    .join("");
  const yAxis = [0, 0.25, 0.5, 0.75, 1]
    .map(
      (f) => `<text x="2" y="${(h - 30 - f * (h - 50) + 4).toFixed(0)}">${(f * maxL).toFixed(0)} ms</text>`,
    )
    .join("");
  const xAxis = [0, 0.25, 0.5, 0.75, 1]
    .map(
      (f) =>
        `<text x="${(50 + f * (w - 60) - 10).toFixed(0)}" y="${h - 8}">${((f * maxT) / 1000).toFixed(1)} s</text>`,
    )
    .join("");
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const rows = Object.entries(r.outcomes)
    .map(([k, v]) => `<tr><td>${esc(k)}</td><td>${v}</td></tr>`)
    .join("");
  return `<!doctype html><meta charset="utf-8"><title>flash-sale-kit load report</title>
<style>body{font:15px system-ui;margin:2rem;max-width:60rem}svg{background:#fbfaf8;border-radius:8px}circle{fill:#d7263d;opacity:.5}text{font-size:11px;fill:#666}td{padding:2px 12px}pre{background:#f4f1ec;padding:1rem;white-space:pre-wrap}</style>
<h1>Load report</h1><pre>${esc(summary(r))}</pre>
<h2>Latency of each attempt of the crowd (time since the crowd started)</h2>
<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">${yAxis}${xAxis}${dots}</svg>
${r.room ? roomChart(r.room, w) : ""}
<h2>Outcomes of the crowd</h2><table>${rows}</table>`;
}

/** The line's length and the buys sent against time, with the room's bound (burst + rate × t). */
function roomChart(room: RoomReport, w: number): string {
  const h = 260;
  const maxT = Math.max(1, ...room.queue.map(([t]) => t), ...room.buysAt);
  const maxY = Math.max(
    1,
    ...room.queue.map(([, q]) => q),
    room.buysAt.length,
    Math.min(room.burst + (room.admitPerSecond * maxT) / 1000, room.buysAt.length * 2),
  );
  const x = (t: number) => (50 + (t / maxT) * (w - 60)).toFixed(1);
  const y = (v: number) => (h - 30 - (Math.min(v, maxY) / maxY) * (h - 50)).toFixed(1);
  const line = (pts: [number, number][], color: string) =>
    `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map(([t, v]) => `${x(t)},${y(v)}`).join(" ")}"/>`;
  const queue = line(
    room.queue.map(([t, q]) => [t, q]),
    "#3f88c5",
  );
  const buys = line(
    room.buysAt.map((t, k) => [t, k + 1]),
    "#1b998b",
  );
  const bound = line(
    [
      [0, room.burst],
      [maxT, room.burst + (room.admitPerSecond * maxT) / 1000],
    ],
    "#d7263d",
  );
  const yAxis = [0, 0.5, 1]
    .map((f) => `<text x="2" y="${(h - 30 - f * (h - 50) + 4).toFixed(0)}">${(f * maxY).toFixed(0)}</text>`)
    .join("");
  const xAxis = [0, 0.25, 0.5, 0.75, 1]
    .map(
      (f) =>
        `<text x="${(50 + f * (w - 60) - 10).toFixed(0)}" y="${h - 8}">${((f * maxT) / 1000).toFixed(1)} s</text>`,
    )
    .join("");
  return `<h2>Waiting room during the crowd</h2>
<p><span style="color:#3f88c5">users in line</span> · <span style="color:#1b998b">buys sent to the buy route (cumulative)</span> · <span style="color:#d7263d">the room's bound: burst + rate × t</span></p>
<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">${yAxis}${xAxis}${queue}${buys}${bound}</svg>`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const env = process.env;
  const r = await runLoad({
    requests: Number(env.REQUESTS ?? 5000),
    users: Number(env.USERS ?? 2000),
    units: Number(env.UNITS ?? 100),
    concurrency: Number(env.CONCURRENCY ?? 100),
    payFraction: Number(env.PAY_FRACTION ?? 0.3),
    paymentTimeoutMs: Number(env.PAYMENT_TIMEOUT_MS ?? 60_000),
    processes: Number(env.PROCESSES ?? 1),
    room:
      env.ROOM === "off"
        ? false
        : { admitPerSecond: Number(env.ROOM_RATE ?? 50), burst: Number(env.ROOM_BURST ?? 20) },
  });
  console.log(summary(r));
  const file = env.REPORT ?? new URL("../load-report.html", import.meta.url).pathname;
  writeFileSync(file, htmlReport(r));
  console.log(`report: ${file}`);
  process.exit(r.ok && r.phases.every((p) => !p.expectZero || p.total === 0) ? 0 : 1);
}
