// The activity page's script. The page itself is static and CDN-cacheable; this file (content-hashed) reads
// the server's clock once (and again when the tab becomes visible), counts down on the browser's monotonic
// clock, signs the visitor in (a demo sign-in: the server sets a signed, HttpOnly session cookie, so the
// script never sees or sends the user's id), enables the buy button at the start second, throttles clicks,
// and runs the buy flow: the waiting room (when the sale is busy), CAPTCHA, purchase token, buy, then the order
// and its payment.
(() => {
  const $ = (id) => document.getElementById(id);
  const sale = JSON.parse($("sale-data").textContent);
  const THROTTLE_MS = 10_000;
  // Server time at a moment of the monotonic clock: never the browser's wall clock, which may be off by
  // minutes and jump when it is corrected. Until it is known, the button stays disabled.
  let base = null; // { serverMs, atMs }
  let me = null; // the signed-in user's id, as the server's session says; null until signed in
  let throttledUntil = 0;
  let busy = false;
  let done = false;

  // Never throws: a network failure is status 0, so the page can say so and stay usable. The session cookie
  // goes with every same-origin request by itself.
  const api = async (path, init = {}) => {
    try {
      const res = await fetch(path, {
        ...init,
        // A JSON content type only with a body: Fastify refuses an empty JSON body.
        headers: {
          ...(init.body !== undefined && { "content-type": "application/json" }),
          ...(init.headers || {}),
        },
      });
      const body = await res.json().catch(() => ({}));
      return { status: res.status, body };
    } catch {
      return { status: 0, body: { error: { code: "NETWORK", message: "The network failed: try again." } } };
    }
  };

  // ---- Sign-in (demo: a name, or a generated member name; no password) ------------------------------------
  function showSession(userId) {
    me = userId;
    $("signin-form").hidden = me !== null;
    $("signed-in").hidden = me === null;
    $("user-name").textContent = me || "";
  }
  async function loadSession() {
    const { status, body } = await api("/api/session");
    showSession(status === 200 ? body.userId : null);
    if (me === null) $("user").value = `member-${Math.random().toString(36).slice(2, 8)}`;
  }
  $("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = $("user").value.trim();
    const { status, body } = await api("/api/session", {
      method: "POST",
      body: JSON.stringify(name ? { name } : {}),
    });
    if (status !== 200)
      return show(status === 400 ? "Names are letters, digits, . _ and - only." : reasonText(body));
    show("");
    showSession(body.userId);
  });
  $("signout").addEventListener("click", async () => {
    await api("/api/session", { method: "DELETE" });
    showSession(null);
  });

  const serverNow = () => base.serverMs + (performance.now() - base.atMs);

  async function syncClock() {
    try {
      const t0 = performance.now();
      const res = await fetch("/api/time");
      const body = await res.json();
      const t1 = performance.now();
      if (res.status !== 200 || typeof body.now !== "number") return false;
      // A CDN may answer from a copy up to a second old: its Age header says how old (whole seconds).
      const age = Number((res.headers && res.headers.get("age")) || 0) * 1000;
      base = { serverMs: body.now + age, atMs: (t0 + t1) / 2 };
      return true;
    } catch {
      return false;
    }
  }

  function fmt(ms) {
    const s = Math.ceil(ms / 1000);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    return (h ? `${h}:` : "") + `${String(m).padStart(2, "0")}:${String(sec).padStart(2, "0")}`;
  }

  function tick() {
    const buy = $("buy");
    if (base === null) {
      // Never the browser's own clock: one that runs fast would enable the button before the start.
      $("countdown").textContent = "Syncing with the server's clock…";
      buy.disabled = true;
      return void setTimeout(tick, 100);
    }
    const now = serverNow();
    const left = sale.startsAt - now;
    if (left > 0) {
      $("countdown").textContent = `Starts in ${fmt(left)}`;
      buy.disabled = true;
    } else if (sale.endsAt && now >= sale.endsAt) {
      $("countdown").textContent = "The sale has ended";
      buy.disabled = true;
    } else {
      $("countdown").textContent = "On sale now";
      const wait = throttledUntil - performance.now();
      buy.disabled = me === null || busy || done || wait > 0;
      buy.textContent =
        me === null ? "Sign in to buy" : wait > 0 ? `Try again in ${Math.ceil(wait / 1000)} s` : "Buy now";
    }
    setTimeout(tick, 100);
  }

  // ---- The buy flow, in one place: click → waiting room → CAPTCHA → purchase token → buy → order → pay -------
  // Every step's refusal is shown by `show(reasonText(…))`. The waiting room comes first: the page joins it
  // (a quiet sale admits at once, so the visitor sees no wait), shows the place and the estimate while the
  // sale is busy, polls, and goes on to the CAPTCHA with the room's pass once admitted.
  let captchaId = null;
  let pass = null; // the waiting room's pass, spent by the purchase token (null: none yet, or no room)

  function showPlace(st) {
    $("room").hidden = false;
    $("room-position").textContent = String(st.position);
    $("room-waiting").textContent = String(st.waiting);
    $("room-estimate").textContent =
      st.estimatedWaitMs === undefined ? "paused" : `about ${fmt(Math.max(1000, st.estimatedWaitMs))}`;
  }

  // Joins the room and waits for the turn: the pass, "" when the sale has no room, or null (refused, shown).
  async function waitForTurn() {
    const sku = encodeURIComponent(sale.sku);
    const join = () => api("/api/room/join", { method: "POST", body: JSON.stringify({ sku: sale.sku }) });
    let r = await join();
    // This page's clock is an estimate (half a round trip off, or more behind a slow or caching network): a click
    // a moment before the server's start is answered NOT_STARTED, in process (no Redis). The click is held and
    // sent again every 200 ms, for up to 10 s, instead of being refused; the clock is read again meanwhile.
    const heldUntil = performance.now() + 10_000;
    while (
      r.status === 409 &&
      r.body.error &&
      r.body.error.code === "NOT_STARTED" &&
      performance.now() < heldUntil
    ) {
      void syncClock();
      await new Promise((res) => setTimeout(res, 200));
      r = await join();
    }
    let ticket = r.status === 200 ? r.body.ticket : null;
    for (;;) {
      if (r.status !== 200) {
        $("room").hidden = true;
        show(reasonText(r.body));
        return null;
      }
      const st = r.body;
      if (st.state === "NO_ROOM") return "";
      if (st.state === "ADMITTED") {
        $("room").hidden = true;
        return st.pass;
      }
      if (st.state === "CLOSED" || st.state === "REFUSED") {
        $("room").hidden = true;
        show(st.state === "CLOSED" ? "The line is closed." : "Your place in line is not valid: try again.");
        return null;
      }
      if (st.state === "WAITING") showPlace(st);
      // Poll about twice per estimated wait, at least every 3 s and at most every 0.5 s.
      const wait = Math.min(3000, Math.max(500, (st.estimatedWaitMs ?? 3000) / 2));
      await new Promise((res) => setTimeout(res, wait));
      // A place lost (a pass that expired unused) means joining again, at the back.
      r =
        st.state === "NOT_QUEUED" || ticket === null
          ? await join()
          : await api(`/api/room/status?sku=${sku}&ticket=${encodeURIComponent(ticket)}`);
      if (r.status === 200 && r.body.ticket) ticket = r.body.ticket;
    }
  }

  $("buy").addEventListener("click", async () => {
    if (performance.now() < throttledUntil || busy) return;
    busy = true;
    $("result").textContent = "";
    if (pass === null) {
      pass = await waitForTurn();
      if (pass === null) return void (busy = false);
    }
    throttledUntil = performance.now() + THROTTLE_MS; // one CAPTCHA per 10 s from this page
    const { status, body } = await api(`/api/captcha?sku=${encodeURIComponent(sale.sku)}`);
    busy = false;
    if (status !== 200) return show(reasonText(body));
    captchaId = body.id;
    $("captcha-image").src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(body.svg)}`;
    $("captcha-answer").value = "";
    $("captcha").hidden = false;
    $("captcha-answer").focus();
  });

  $("captcha-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    busy = true;
    $("captcha").hidden = true;
    const answer = $("captcha-answer").value.trim();
    const tok = await api("/api/purchase-token", {
      method: "POST",
      body: JSON.stringify({ sku: sale.sku, captchaId, answer, ...(pass && { pass }) }),
    });
    // The pass is spent once the CAPTCHA passed (a wrong answer keeps it for the next try); a refused pass
    // (expired, used) means joining the room again on the next click.
    if (tok.status === 200 || (tok.body.error && tok.body.error.code.startsWith("PASS_"))) pass = null;
    if (tok.status !== 200) {
      busy = false;
      return show(reasonText(tok.body));
    }
    const bought = await api("/api/buy", {
      method: "POST",
      body: JSON.stringify({ sku: sale.sku, token: tok.body.token }),
    });
    busy = false;
    if (bought.status !== 202) return show(reasonText(bought.body));
    done = true;
    show("Reserved! Creating your order…");
    followOrder(bought.body.reservationId);
  });

  function reasonText({ error }) {
    const texts = {
      SOLD_OUT: "Sold out, sorry.",
      LIMIT_REACHED: "You already bought this item.",
      NOT_STARTED: "The sale has not started yet.",
      ENDED: "The sale has ended.",
      RATE_LIMITED: "Too many requests: slow down.",
      CAPTCHA_FAILED: "Wrong answer, try again.",
      NOT_ELIGIBLE: "This sale is for members only.",
      SIGN_IN_REQUIRED: "Your session ended: sign in again.",
      PASS_REQUIRED: "Wait for your turn in the line first.",
      PASS_REFUSED: "Your turn passed: click again to join the line.",
    };
    if (!error) return "Something went wrong.";
    if (error.code === "SIGN_IN_REQUIRED") showSession(null);
    return texts[error.code] || error.message || error.code;
  }

  function show(text) {
    $("result").textContent = text;
  }

  async function followOrder(id) {
    $("order").hidden = false;
    $("order-id").textContent = id;
    const until = performance.now() + 30 * 60_000;
    while (performance.now() < until) {
      const { status, body } = await api(`/api/orders/${encodeURIComponent(id)}`);
      const st = status === 200 ? body.status : "creating";
      $("order-status").textContent = st;
      $("pay").hidden = st !== "pending";
      if (st === "paid" || st === "cancelled") {
        show(st === "paid" ? "Paid. Enjoy!" : "Cancelled: the payment window closed.");
        return;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  $("pay").addEventListener("click", async () => {
    $("pay").disabled = true;
    const id = $("order-id").textContent;
    const { status, body } = await api(`/api/orders/${encodeURIComponent(id)}/pay`, {
      method: "POST",
      body: "{}",
    });
    $("pay").disabled = false;
    if (status !== 200) show(reasonText(body));
  });

  // One sync per page load (retried every second until it succeeds), and one each time the tab becomes
  // visible again: a sleeping laptop's monotonic clock may have stopped meanwhile. A million open pages ask
  // the origin once each, not every 30 s.
  let syncing = false;
  const sync = async () => {
    if (syncing) return;
    syncing = true;
    while (!(await syncClock())) await new Promise((r) => setTimeout(r, 1_000));
    syncing = false;
  };
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") void sync();
  });
  tick();
  void sync();
  void loadSession();
})();
