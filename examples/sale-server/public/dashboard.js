// The live dashboard: polls /api/stats once a second and draws two charts against time (x axis: clock time of
// each sample, round-number ticks): the sale's units and orders (Redis and PostgreSQL), and this process's
// rates per second from the library's metrics adapter (flash-sale-kit/metrics, the numbers /metrics serves).
(() => {
  const $ = (id) => document.getElementById(id);
  const sale = JSON.parse($("sale-data").textContent);
  const series = [
    { key: "available", label: "stock left", color: "#d7263d" },
    { key: "reservations", label: "reservations", color: "#3f88c5" },
    { key: "paid", label: "paid", color: "#1b998b" },
    { key: "pending", label: "pending", color: "#f49d37" },
    { key: "cancelled", label: "cancelled", color: "#6b655c" },
  ];
  const rateSeries = [
    { key: "reservations", label: "reservations / s", color: "#3f88c5" },
    { key: "refused", label: "refusals / s", color: "#d7263d" },
    { key: "orders", label: "orders written / s", color: "#1b998b" },
  ];
  const points = []; // { t: epoch ms, ...values }
  const rates = []; // { t: epoch ms, ...per-second values between two samples }
  let last; // the previous sample's counters
  const legend = (id, list) =>
    ($(id).innerHTML = list
      .map((s) => `<span><i style="background:${s.color}"></i>${s.label}</span>`)
      .join(""));
  legend("legend", series);
  legend("rates-legend", rateSeries);

  /** A round step (1, 2 or 5 × 10^k) that cuts `range` into at most `most` parts. */
  function niceStep(range, most) {
    const raw = range / most;
    const p = 10 ** Math.floor(Math.log10(raw));
    return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
  }
  /** A time step in ms from a list people read easily. */
  function timeStep(rangeMs, most) {
    const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600].map((s) => s * 1000);
    return steps.find((s) => s >= rangeMs / most) ?? 7200_000;
  }
  const pad = (n) => String(n).padStart(2, "0");
  const clock = (ms) => {
    const d = new Date(ms);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  };

  function draw(id, series, points, yLabel) {
    const c = $(id);
    const ctx = c.getContext("2d");
    const w = c.width;
    const h = c.height;
    const left = 56;
    const right = w - 16;
    const top = 16;
    const bottom = h - 40;
    ctx.clearRect(0, 0, w, h);
    c.dataset.points = String(points.length);
    if (points.length < 2) return;
    const t0 = points[0].t;
    const t1 = Math.max(points[points.length - 1].t, t0 + 10_000); // at least 10 s wide
    const max = Math.max(1, ...points.flatMap((p) => series.map((s) => p[s.key])));
    const yStep = Math.max(1, niceStep(max, 4));
    const yMax = Math.ceil(max / yStep) * yStep;
    const x = (t) => left + ((t - t0) / (t1 - t0)) * (right - left);
    const y = (v) => bottom - (v / yMax) * (bottom - top);

    ctx.font = "12px system-ui, sans-serif";
    ctx.lineWidth = 1;
    // y axis: counts
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let v = 0; v <= yMax; v += yStep) {
      ctx.strokeStyle = v === 0 ? "#999" : "#e6e1da";
      ctx.beginPath();
      ctx.moveTo(left, y(v));
      ctx.lineTo(right, y(v));
      ctx.stroke();
      ctx.fillStyle = "#555";
      ctx.fillText(v.toLocaleString("en-US"), left - 8, y(v));
    }
    // x axis: clock time, ticks on round seconds or minutes
    const tStep = timeStep(t1 - t0, 6);
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let t = Math.ceil(t0 / tStep) * tStep; t <= t1; t += tStep) {
      ctx.strokeStyle = "#e6e1da";
      ctx.beginPath();
      ctx.moveTo(x(t), top);
      ctx.lineTo(x(t), bottom + 4);
      ctx.stroke();
      ctx.fillStyle = "#555";
      ctx.fillText(clock(t), x(t), bottom + 8);
    }
    ctx.fillStyle = "#888";
    ctx.textAlign = "right";
    ctx.fillText("time (this browser's clock)", right, bottom + 24);
    ctx.save();
    ctx.translate(14, (top + bottom) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.fillText(yLabel, 0, 0);
    ctx.restore();

    // Last to first: the first series (the one the chart is about) is drawn on top.
    for (const s of [...series].reverse()) {
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      points.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p[s.key])) : ctx.moveTo(x(p.t), y(p[s.key]))));
      ctx.stroke();
    }
  }

  async function poll() {
    try {
      const res = await fetch(`/api/stats?sku=${encodeURIComponent(sale.sku)}`);
      if (!res.ok) return;
      const st = await res.json();
      const p = {
        t: Date.now(),
        available: st.stock.available,
        reservations: st.stock.held + st.stock.confirmed,
        paid: st.orders.paid,
        pending: st.orders.pending,
        cancelled: st.orders.cancelled,
      };
      points.push(p);
      if (points.length > 600) points.shift();
      for (const s of series) $(`v-${s.key}`).textContent = p[s.key];
      const m = st.metrics;
      const refused = Object.values(st.rejected).reduce((a, b) => a + b, 0);
      const now = { t: p.t, reservations: m.reservations, refused, orders: m.orders.written };
      if (last !== undefined) {
        const dt = Math.max(0.001, (now.t - last.t) / 1000);
        const r = { t: now.t };
        for (const s of rateSeries) r[s.key] = Math.max(0, (now[s.key] - last[s.key]) / dt);
        rates.push(r);
        if (rates.length > 600) rates.shift();
      }
      last = now;
      const ms = (v) => `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`;
      const lookups = Object.values(m.cache.lookups).reduce((a, b) => a + b, 0);
      $("m-reservations").textContent = m.reservations;
      $("m-orders").textContent = m.orders.written;
      $("m-confirmed").textContent = m.confirmed;
      $("m-latency").textContent = `${ms(m.reserveMs.mean)} / ≤ ${ms(m.reserveMs.p99)}`;
      $("m-lock").textContent = m.lockWait.count ? ms(m.lockWait.meanMs) : "no waits";
      $("m-lag").textContent = ms(m.outbox.lagMs);
      $("m-outbox").textContent = `${m.outbox.pending} / ${m.outbox.dead}`;
      $("m-cache").textContent = lookups
        ? `${Math.round(m.cache.hitRatio * 100)}% of ${lookups}`
        : "no lookups";
      const body = $("rejected").querySelector("tbody");
      body.replaceChildren(
        ...Object.entries(st.rejected)
          .sort(([, a], [, b]) => b - a)
          .map(([k, v]) => {
            const tr = document.createElement("tr");
            const th = document.createElement("th");
            const td = document.createElement("td");
            th.textContent = k;
            td.textContent = String(v);
            tr.append(th, td);
            return tr;
          }),
      );
      draw("chart", series, points, "units / orders");
      draw("rates", rateSeries, rates, "per second");
    } catch {
      // the server restarting, or the network: try again on the next tick
    } finally {
      setTimeout(poll, 1000);
    }
  }
  poll();
})();

// The waiting room's panel (shown when the sale has a room): the line's length, the passes out, the
// admissions so far, the admissions a second measured over the last 10 s (on Redis time) and the set rate.
(() => {
  const $ = (id) => document.getElementById(id);
  const sale = JSON.parse($("sale-data").textContent);
  const seen = []; // [Redis ms, admitted]
  async function poll() {
    try {
      const res = await fetch(`/api/stats?sku=${encodeURIComponent(sale.sku)}`);
      const room = res.ok ? (await res.json()).room : undefined;
      $("room").hidden = room === undefined;
      if (room === undefined) return;
      seen.push([room.now, room.admitted]);
      while (seen.length > 2 && room.now - seen[0][0] > 10_000) seen.shift();
      const [t0, a0] = seen[0];
      $("room-waiting").textContent = String(room.waiting) + (room.paused ? " (paused)" : "");
      $("room-active").textContent = String(room.active);
      $("room-admitted").textContent = String(room.admitted);
      $("room-measured").textContent =
        room.now > t0 ? (((room.admitted - a0) * 1000) / (room.now - t0)).toFixed(1) : "–";
      $("room-rate").textContent =
        `${room.admitPerSecond} / s, burst ${room.burst}` +
        (room.maxActive === null ? "" : `, at most ${room.maxActive} passes out`);
    } catch {
      // the server restarting, or the network: try again on the next tick
    } finally {
      setTimeout(poll, 1000);
    }
  }
  poll();
})();
