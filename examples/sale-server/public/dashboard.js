// The live dashboard: polls /api/stats once a second and draws the series on a canvas.
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
  const points = [];
  $("legend").innerHTML = series
    .map((s) => `<span><i style="background:${s.color}"></i>${s.label}</span>`)
    .join("");

  function draw() {
    const c = $("chart");
    const ctx = c.getContext("2d");
    const w = c.width;
    const h = c.height;
    ctx.clearRect(0, 0, w, h);
    if (points.length < 2) return;
    const max = Math.max(1, ...points.flatMap((p) => series.map((s) => p[s.key])));
    const x = (i) => 40 + (i / (points.length - 1)) * (w - 50);
    const y = (v) => h - 20 - (v / max) * (h - 40);
    ctx.strokeStyle = "#ddd";
    ctx.fillStyle = "#888";
    ctx.font = "12px system-ui";
    for (let k = 0; k <= 4; k++) {
      const v = (max * k) / 4;
      ctx.beginPath();
      ctx.moveTo(40, y(v));
      ctx.lineTo(w - 10, y(v));
      ctx.stroke();
      ctx.fillText(String(Math.round(v)), 4, y(v) + 4);
    }
    for (const s of series) {
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      points.forEach((p, i) => (i ? ctx.lineTo(x(i), y(p[s.key])) : ctx.moveTo(x(i), y(p[s.key]))));
      ctx.stroke();
    }
  }

  async function poll() {
    try {
      const res = await fetch(`/api/stats?sku=${encodeURIComponent(sale.sku)}`);
      if (!res.ok) return;
      const st = await res.json();
      const p = {
        available: st.stock.available,
        reservations: st.stock.held + st.stock.confirmed,
        paid: st.orders.paid,
        pending: st.orders.pending,
        cancelled: st.orders.cancelled,
      };
      points.push(p);
      if (points.length > 300) points.shift();
      for (const s of series) $(`v-${s.key}`).textContent = p[s.key];
      const body = $("rejected").querySelector("tbody");
      body.replaceChildren(
        ...Object.entries(st.rejected).map(([k, v]) => {
          const tr = document.createElement("tr");
          const th = document.createElement("th");
          const td = document.createElement("td");
          th.textContent = k;
          td.textContent = String(v);
          tr.append(th, td);
          return tr;
        }),
      );
      draw();
    } catch {
      // the server restarting, or the network: try again on the next tick
    } finally {
      setTimeout(poll, 1000);
    }
  }
  poll();
})();
