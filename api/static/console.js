// The console's interactivity, without a framework: live refresh by short polling, alarm
// actions through the JSON API (with the session's CSRF token), and the device charts.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const site = document.body.dataset.site;
  const poll = Number(document.body.dataset.poll || 5) * 1000;
  const content = () => document.getElementById("content");
  let busy = false;
  let refreshed = Date.now();

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
        refreshed = Date.now();
        // a form someone has opened stays open
        for (const open of content().querySelectorAll("details[open][id]")) {
          const same = fresh.querySelector("details#" + CSS.escape(open.id));
          if (same) same.open = true;
        }
        content().replaceWith(fresh);
        serverClock();
        tick();
        drawCharts();
      }
    } finally {
      busy = false;
    }
  }

  // Someone is ticking boxes, typing or half-way through a form: the refresh waits, so
  // nothing they did is lost.
  function editing() {
    const active = document.activeElement;
    return Boolean(content().querySelector("input[type=checkbox]:checked, form[data-dirty]")
                   || (active && content().contains(active) && active.matches("input, select, textarea")));
  }
  // A form counts as half filled while any field differs from how the page gave it.
  function changed(form) {
    return Array.from(form.elements).some((f) => f.name && f.type !== "hidden" && (
      f.tagName === "SELECT" ? Array.from(f.options).some((o) => o.selected !== o.defaultSelected)
                             : f.value !== f.defaultValue));
  }
  for (const kind of ["input", "change"]) {
    document.addEventListener(kind, (event) => {
      const form = event.target.closest && event.target.closest("form[data-api]");
      if (!form) return;
      if (changed(form)) form.dataset.dirty = "1";
      else delete form.dataset.dirty;
    });
  }
  // Closing a form's <details> puts it away: nothing half filled holds the refresh back.
  document.addEventListener("toggle", (event) => {
    const details = event.target;
    if (details.tagName !== "DETAILS" || details.open) return;
    for (const form of details.querySelectorAll("form[data-api]")) {
      form.reset();
      delete form.dataset.dirty;
    }
  }, true);

  // Deadline countdowns: each [data-deadline] (unix seconds) ticks every second between
  // refreshes, on the server's clock (the page says what time the server had).
  let skew = 0;
  function serverClock() {
    const at = Number(content().dataset.now);
    if (at) skew = at - Date.now() / 1000;
  }
  function clockText(seconds) {
    const whole = Math.floor(Math.abs(seconds));
    const two = (n) => String(n).padStart(2, "0");
    return Math.floor(whole / 3600) + ":" + two(Math.floor(whole / 60) % 60) + ":" + two(whole % 60);
  }
  function tick() {
    const now = Date.now() / 1000 + skew;
    for (const due of content().querySelectorAll("[data-deadline]")) {
      const left = Number(due.dataset.deadline) - now;
      const phrase = left < 0 ? due.dataset.late : due.dataset.due;
      const text = due.querySelector(".tick");
      if (text && phrase) text.textContent = phrase.replace("{t}", clockText(left));
      due.classList.toggle("late", left < 0);
      const card = due.closest(".card");
      if (card && left < 0) card.classList.add("overdue");
    }
  }

  async function watch() {
    const live = document.getElementById("live");
    try {
      const wall = document.body.dataset.wall ? "&wall=1" : "";
      const response = await fetch("/console/live.json?site=" + encodeURIComponent(site) + wall,
                                   { credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) { location.reload(); return; }
      const { stamp } = await response.json();
      live.classList.remove("lost");
      live.textContent = live.dataset.ok;
      // The wall display also shows readings, which the stamp leaves out: once a minute.
      const stale = document.body.dataset.wall && Date.now() - refreshed > 60000;
      if ((stamp !== content().dataset.stamp || stale) && !editing()) await refresh();
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

  // A form sent to the JSON API as JSON (data-api: the URL): fields named a.b nest, empty
  // ones are left out, data-number ones are numbers; the API's refusal is shown as it is.
  document.addEventListener("submit", async (event) => {
    const form = event.target.closest("form[data-api]");
    if (!form) return;
    event.preventDefault();
    const body = {};
    for (const field of form.elements) {
      if (!field.name || field.value.trim() === "") continue;
      const value = field.dataset.number ? Number(field.value) : field.value.trim();
      const [head, tail] = field.name.split(".");
      if (tail) (body[head] = body[head] || {})[tail] = value;
      else body[head] = value;
    }
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    const box = document.getElementById("action-error");
    const response = await fetch(form.dataset.api, {
      method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf } });
    if (button) button.disabled = false;
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      const details = ((problem.error && problem.error.details) || [])
        .map((d) => (d.loc ? d.loc.slice(1).join(".") + ": " : "") + d.msg).join("; ");
      box.textContent = ((problem.error && problem.error.message) || response.statusText)
        + (details ? " (" + details + ")" : "");
      box.hidden = false;
      return;
    }
    box.hidden = true;
    delete form.dataset.dirty;
    form.reset();
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

  // The time axis in the page's language and the site's time zone (uPlot's own labels are
  // English): hours and minutes, with the date on the first tick of each day; dates alone
  // when ticks are days apart.
  function timeAxis(spec) {
    const zone = { timeZone: spec.tz };
    const day = new Intl.DateTimeFormat(spec.lang, { ...zone, month: "short", day: "numeric" });
    const hour = new Intl.DateTimeFormat(spec.lang, { ...zone, hour: "2-digit", minute: "2-digit",
                                                      hourCycle: "h23" });
    return (u, splits, axis, space, incr) => {
      let last = null;
      return splits.map((v) => {
        const at = new Date(v * 1000);
        const date = day.format(at);
        if (incr >= 86400) return date;
        const label = last === date ? hour.format(at) : hour.format(at) + "\n" + date;
        last = date;
        return label;
      });
    };
  }

  function drawCharts() {
    const source = document.getElementById("chart-data");
    if (!source || typeof uPlot === "undefined") return;
    const spec = JSON.parse(source.textContent);
    const numbers = new Intl.NumberFormat(spec.lang, { maximumFractionDigits: 2 });
    for (const chart of spec.charts) {
      if (!chart.points.length) continue;
      const holder = document.querySelector('.chart[data-metric="' + CSS.escape(chart.metric) + '"]');
      if (!holder || holder.querySelector(".uplot")) continue;
      const xs = chart.points.map((p) => p[0]);
      const ys = chart.points.map((p) => p[1]);
      const values = ys.concat(chart.thresholds.map((t) => t.value));
      const low = Math.min(...values), high = Math.max(...values);
      const pad = (high - low) * 0.08 || 1;
      // kept for the browser tests, which read the axes' labels
      (window.consoleCharts = window.consoleCharts || []).push(new uPlot({
        width: Math.max(holder.clientWidth - 12, 300), height: 170,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), spec.tz),
        legend: { show: false },
        scales: { x: { time: true, range: [spec.start, spec.end] },
                  y: { range: [low - pad, high + pad] } },
        series: [{}, { label: chart.metric, stroke: "#1f5f99", width: 1.5 }],
        axes: [{ values: timeAxis(spec), size: 48 },
               { values: (u, splits) => splits.map((v) => numbers.format(v)) }],
        hooks: { draw: [marks(chart)] },
      }, [xs, ys], holder));
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    serverClock();
    tick();
    setInterval(tick, 1000);
    drawCharts();
    setTimeout(watch, poll);
  });
})();
