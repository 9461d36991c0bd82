// The console's interactivity, without a framework: live refresh by short polling, alarm
// actions through the JSON API (with the session's CSRF token), and the device charts.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const site = document.body.dataset.site;
  const poll = Number(document.body.dataset.poll || 5) * 1000;
  const content = () => document.getElementById("content");
  let busy = false;

  // Replace the page's content with a fresh copy of itself (same URL, same session).
  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const response = await fetch(location.href, { credentials: "same-origin" });
      if (response.redirected || !response.ok) { location.reload(); return; }
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = doc.getElementById("content");
      if (fresh) {
        content().replaceWith(fresh);
        drawCharts();
      }
    } finally {
      busy = false;
    }
  }

  // Someone is ticking boxes or typing: the refresh waits, so nothing they did is lost.
  function editing() {
    const active = document.activeElement;
    return Boolean(content().querySelector("input[type=checkbox]:checked")
                   || (active && content().contains(active) && active.matches("input, select, textarea")));
  }

  async function watch() {
    const live = document.getElementById("live");
    try {
      const response = await fetch("/console/live.json?site=" + encodeURIComponent(site),
                                   { credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) { location.reload(); return; }
      const { stamp } = await response.json();
      live.classList.remove("lost");
      live.textContent = live.dataset.ok;
      if (stamp !== content().dataset.stamp && !editing()) await refresh();
    } catch (e) {
      live.classList.add("lost");
      live.textContent = live.dataset.lost;
    } finally {
      setTimeout(watch, poll);
    }
  }

  // A button that posts to the JSON API: data-post (the URL), data-body (fixed fields),
  // data-confirm (a question first), data-ask + data-field (a prompt whose answer is sent
  // as that field).
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-post]");
    if (!button) return;
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    const body = button.dataset.body ? JSON.parse(button.dataset.body) : {};
    if (button.dataset.ask) {
      const answer = window.prompt(button.dataset.ask);
      if (answer === null || (button.dataset.required && !answer.trim())) return;
      if (answer.trim()) body[button.dataset.field] = answer.trim();
    }
    button.disabled = true;
    const box = document.getElementById("action-error");
    const response = await fetch(button.dataset.post, {
      method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf } });
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      box.textContent = (problem.error && problem.error.message) || response.statusText;
      box.hidden = false;
      button.disabled = false;
      return;
    }
    box.hidden = true;
    await refresh();
  });

  // "Select all" on a list of checkboxes (the gaps).
  document.addEventListener("change", (event) => {
    if (event.target.id !== "all-gaps") return;
    for (const box of document.querySelectorAll('#open-gaps input[name="gap"]')) {
      box.checked = event.target.checked;
    }
  });

  const COLOURS = { critical: "#a31515", major: "#d2691e", minor: "#b8860b", warning: "#5b6875" };

  // Threshold lines across the plot and a mark at each alarm's raising.
  function marks(chart) {
    return (u) => {
      const ctx = u.ctx;
      const { left, top, width, height } = u.bbox;
      ctx.save();
      ctx.lineWidth = 1.5 * devicePixelRatio;
      for (const t of chart.thresholds) {
        const y = u.valToPos(t.value, "y", true);
        if (y < top || y > top + height) continue;
        ctx.strokeStyle = COLOURS[t.severity] || "#555";
        ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
        ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + width, y); ctx.stroke();
      }
      ctx.setLineDash([]);
      for (const a of chart.alarms) {
        const x = u.valToPos(a.at, "x", true);
        if (x < left || x > left + width) continue;
        ctx.strokeStyle = COLOURS[a.severity] || "#555";
        ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
        ctx.fillStyle = ctx.strokeStyle;
        ctx.beginPath(); ctx.moveTo(x - 5, top); ctx.lineTo(x + 5, top); ctx.lineTo(x, top + 8);
        ctx.fill();
      }
      ctx.restore();
    };
  }

  function drawCharts() {
    const source = document.getElementById("chart-data");
    if (!source || typeof uPlot === "undefined") return;
    const spec = JSON.parse(source.textContent);
    for (const chart of spec.charts) {
      if (!chart.points.length) continue;
      const holder = document.querySelector('.chart[data-metric="' + CSS.escape(chart.metric) + '"]');
      if (!holder || holder.querySelector(".uplot")) continue;
      const xs = chart.points.map((p) => p[0]);
      const ys = chart.points.map((p) => p[1]);
      const values = ys.concat(chart.thresholds.map((t) => t.value));
      const low = Math.min(...values), high = Math.max(...values);
      const pad = (high - low) * 0.08 || 1;
      new uPlot({
        width: Math.max(holder.clientWidth - 12, 300), height: 170,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), spec.tz),
        legend: { show: false },
        scales: { x: { time: true, range: [spec.start, spec.end] },
                  y: { range: [low - pad, high + pad] } },
        series: [{}, { label: chart.metric, stroke: "#1f5f99", width: 1.5 }],
        hooks: { draw: [marks(chart)] },
      }, [xs, ys], holder);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    drawCharts();
    setTimeout(watch, poll);
  });
})();
