/* Caretaker's phone page (/m/): scan a checkpoint (typed tag, camera QR, Web NFC), answer
   its checklist, report a hazard with a photo. Every scan is queued in IndexedDB with its own
   scan_id and the time it was made, and sent through POST /api/v1/scans (idempotent on
   scan_id) when the network allows: on load, on `online`, and again while any is waiting. */
"use strict";
(() => {
  const body = document.body;
  const SITE = body.dataset.site;
  const GUARD = body.dataset.guard;
  const LANG = body.dataset.lang;
  const TZ = body.dataset.tz;
  const T = JSON.parse(document.getElementById("strings").textContent);
  const CSRF = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const BATCH = 100;          // scans in one request (the API takes up to 1000)
  const RETRY_MS = 10000;     // while anything waits, try again this often
  const REFRESH_MS = 60000;   // today's picture, while the page is shown
  const RECHECK_MS = 2000;    // ... and soon after a scan the API has not judged yet
  const REPEAT_MS = 5 * 60000;
  const PHOTO_EDGE = 1600;    // photos are shrunk to this many pixels on the long edge
  const PHOTO_BYTES = 900 * 1024;

  const fill = (text, values) => text.replace(/%\((\w+)\)s/g, (_, k) => String(values[k]));
  const clock = new Intl.DateTimeFormat(LANG, {timeZone: TZ, hour: "2-digit", minute: "2-digit",
                                                  hourCycle: "h23"});
  const hhmm = (ms) => clock.format(new Date(ms));

  // --- judging a scan (pure: the API judges again when the scan arrives) --------------

  const before = (a, b) => {
    for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return a[i] < b[i];
    return false;
  };

  /** What a scan of `tag` at `ts` is for this guard: on_time, early, late, wrong_route,
      unknown_tag or repeat, with the checkpoint, run and visit it would be matched to.
      `claimed` holds "run:seq" of visits taken by scans still on the phone. Mirrors the
      API's matching (rules/patrol/engine.py): the closest free visit whose match span holds
      the scan, then its timing against the window (edges on time). */
  function judge(tag, ts, today, claimed) {
    const checkpoint = (today.checkpoints || []).find((c) => c.tag === tag);
    if (!checkpoint) return {kind: "unknown_tag", checkpoint: null};
    let best = null;
    let lastScan = null;
    for (const run of today.runs || []) {
      for (const v of run.visits) {
        if (v.checkpoint_id !== checkpoint.id) continue;
        const taken = v.scan_id || claimed.has(run.id + ":" + v.seq);
        if (taken) {
          const at = v.scan_time || ts;
          if (Math.abs(ts - at) <= REPEAT_MS) lastScan = at;
          continue;
        }
        if (v.match_from > ts || v.match_until < ts) continue;
        const outside = Math.max(v.window_start - ts, ts - v.window_end, 0);
        const key = [outside, Math.abs(v.due_at - ts), v.due_at];
        if (!best || before(key, best.key)) best = {key, run, visit: v};
      }
    }
    if (best) {
      const v = best.visit;
      const kind = ts < v.window_start ? "early" : ts > v.window_end ? "late" : "on_time";
      return {kind, checkpoint, run: best.run, visit: v};
    }
    return {kind: lastScan !== null ? "repeat" : "wrong_route", checkpoint};
  }

  /** What a checklist item expects, as a person reads it (rules/patrol/checklist.py). */
  function expected(item) {
    if ("expect" in item) return item.expect ? T.yes : T.no;
    const unit = item.unit ? " " + item.unit : "";
    if ("min" in item && "max" in item) return `${item.min}–${item.max}${unit}`;
    if ("min" in item) return `≥ ${item.min}${unit}`;
    return `≤ ${item.max}${unit}`;
  }

  /** Whether an answer is outside what the item expects (blank answers are not). */
  function outOfRange(item, value) {
    if (value === null || value === undefined || value === "") return false;
    if ("expect" in item) return value !== Boolean(item.expect);
    if (!("min" in item) && !("max" in item)) return false;
    const n = Number(value);
    if (Number.isNaN(n)) return true;
    return ("min" in item && n < Number(item.min)) || ("max" in item && n > Number(item.max));
  }

  window.caretakerPhone = {judge, expected, outOfRange};  // for the browser tests

  // --- the queue (IndexedDB) ----------------------------------------------------------

  const dbReady = new Promise((resolve, reject) => {
    const open = indexedDB.open("caretaker-m", 1);
    open.onupgradeneeded = () => {
      open.result.createObjectStore("queue", {keyPath: "scan_id"});
      open.result.createObjectStore("meta");
    };
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });

  async function store(name, mode, work) {
    const db = await dbReady;
    return new Promise((resolve, reject) => {
      const tx = db.transaction(name, mode);
      const request = work(tx.objectStore(name));
      tx.oncomplete = () => resolve(request ? request.result : undefined);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }
  const queued = () => store("queue", "readonly", (s) => s.getAll());
  const keep = (item) => store("queue", "readwrite", (s) => s.put(item));
  const forget = (ids) => store("queue", "readwrite", (s) => { ids.forEach((id) => s.delete(id)); });
  const remembered = (key) => store("meta", "readonly", (s) => s.get(key));
  const remember = (key, value) => store("meta", "readwrite", (s) => s.put(value, key));
  const mine = (item) => item.site === SITE && item.guard === GUARD;

  function newId() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // --- state and drawing --------------------------------------------------------------

  let today = {runs: [], checkpoints: [], scans: []};
  let items = [];
  let lastSync = "";

  function claimedVisits() {
    return new Set(items.filter((i) => i.claim).map((i) => i.claim));
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function drawNet() {
    const online = navigator.onLine;
    $("net").textContent = online ? T.online : T.offline;
    $("net").className = "net " + (online ? "on" : "off");
  }

  function drawToday() {
    const now = Date.now();
    const claimed = claimedVisits();
    const open = [];
    const late = [];
    for (const run of today.runs) {
      for (const v of run.visits) {
        if (v.scan_id || claimed.has(run.id + ":" + v.seq)) continue;
        if (v.window_end >= now) open.push({run, v});
        else if (!run.final && v.match_until >= now) late.push({run, v});
      }
    }
    // Next: of the windows open now, the one closing first; else the one opening first.
    open.sort((a, b) => {
      const aOpen = a.v.window_start <= now;
      const bOpen = b.v.window_start <= now;
      if (aOpen !== bOpen) return aOpen ? -1 : 1;
      return aOpen ? a.v.window_end - b.v.window_end : a.v.window_start - b.v.window_start;
    });
    const next = $("next");
    next.replaceChildren();
    if (!GUARD) {
      next.append(el("p", {}, T.no_guard));
    } else if (open.length) {
      const {run, v} = open[0];
      const when = v.window_start <= now ? T.open_now
        : fill(T.opens_in, {n: Math.ceil((v.window_start - now) / 60000)});
      next.append(el("p", {class: "label"}, T.next),
                  el("p", {class: "name", id: "next-name"}, v.checkpoint_name || v.checkpoint_id),
                  el("p", {}, `${hhmm(v.window_start)}–${hhmm(v.window_end)} · ${when}`),
                  el("p", {class: "muted"}, run.route_name));
    } else {
      next.append(el("p", {}, T.none_next));
    }
    const lateList = $("late");
    lateList.replaceChildren(...late.slice(0, 5).map(({run, v}) => el("li", {},
      `${T.late_list}: ${v.checkpoint_name || v.checkpoint_id} (${hhmm(v.window_start)}–${hhmm(v.window_end)}, ${run.route_name})`)));
    lateList.hidden = late.length === 0;
    $("runs").replaceChildren(...(today.runs.length ? today.runs.map((run) => {
      const done = run.visits.filter((v) => v.scan_id || claimed.has(run.id + ":" + v.seq)).length;
      return el("li", {"data-run": run.id},
        el("strong", {}, run.route_name), " ",
        `${hhmm(run.planned_start)}–${hhmm(run.planned_end)} · `,
        fill(T.run_done, {done, total: run.visits.length}));
    }) : [el("li", {class: "muted"}, T.no_runs)]));
    $("sent").replaceChildren(...today.scans.slice(0, 20).map((s) => {
      const what = s.disposition ? (T["disposition_" + s.disposition] || s.disposition)
        : T.pending_check;
      const timing = s.timing && T[s.timing] ? ` · ${T[s.timing]}` : "";
      const ticket = s.work_order_id ? ` · ${fill(T.ticket, {id: s.work_order_id})}` : "";
      return el("li", {"data-scan": s.scan_id},
        `${hhmm(s.time)} ${s.checkpoint_name || s.tag} — ${what}${timing}${ticket}`);
    }));
  }

  function drawQueue() {
    const waiting = items.filter(mine).sort((a, b) => a.made - b.made);
    $("queue-count").textContent = String(waiting.length);
    const badge = $("queue-badge");
    badge.hidden = waiting.length === 0;
    badge.textContent = fill(T.waiting_n, {n: waiting.length});
    $("queue-list").replaceChildren(...waiting.map((item) => {
      const state = item.state === "refused" ? `${T.refused}: ${item.reason || ""}`
        : item.state === "photo" ? T.photo_waiting : T.queued;
      const li = el("li", {"data-scan": item.scan_id, class: item.state},
        `${hhmm(item.made)} ${T[item.kind] || ""}: ${item.label} — ${state}`);
      if (item.state === "refused") {
        const drop = el("button", {type: "button", class: "quiet"}, T.discard);
        drop.addEventListener("click", async () => { await forget([item.scan_id]); await reload(); });
        li.append(" ", drop);
      }
      return li;
    }));
    $("sync-status").textContent = lastSync;
  }

  function draw() { drawNet(); drawToday(); drawQueue(); }

  async function reload() { items = await queued(); draw(); }

  function say(text, kind) {
    const p = $("feedback");
    p.textContent = text;
    p.className = "feedback " + (kind || "");
    p.hidden = false;
  }

  function notice(text) {
    const box = $("notice");
    box.replaceChildren(text || "");
    if (text === T.login_again) {   // the queue waits on this phone meanwhile
      box.append(" ", el("a", {href: "/login?next=%2Fm%2F"}, T.log_in));
    }
    box.hidden = !text;
  }

  // --- reading today's picture --------------------------------------------------------

  let recheck = null;

  async function refresh() {
    if (!SITE) return;
    try {
      const response = await fetch(`/m/today.json?site=${encodeURIComponent(SITE)}`,
                                   {credentials: "same-origin", cache: "no-store"});
      if (response.status === 401) { notice(T.login_again); return; }
      if (!response.ok) return;
      today = await response.json();
      await remember("today:" + SITE, today);
      notice("");
      // Scans the API has not judged yet are judged within seconds: look again soon.
      clearTimeout(recheck);
      if (today.scans.some((s) => !s.disposition)) recheck = setTimeout(refresh, RECHECK_MS);
    } catch (error) {
      // offline: keep what was read last
    }
    draw();
    checkVerifications();
  }

  async function checkVerifications() {
    const box = $("verifications");
    try {
      const response = await fetch(
        `/api/v1/verifications?site=${encodeURIComponent(SITE)}&state=open`,
        {credentials: "same-origin", cache: "no-store"});
      if (response.status !== 200) { box.hidden = true; return; }   // 404: not offered here
      const answer = await response.json();
      const list = Array.isArray(answer) ? answer : answer.items || [];
      $("verification-list").replaceChildren(...list.slice(0, 20).map((v) => el("li",
        {"data-verification": v.id}, el("strong", {}, `${T.verification}: `),
        `${v.title || ""} — ${v.checkpoint_name || v.checkpoint_id}`,
        v.due_by ? ` (${fill(T.due_by, {time: hhmm(Date.parse(v.due_by))})})` : "")));
      box.hidden = list.length === 0;
    } catch (error) {
      // offline: leave the list as it was
    }
  }

  // --- making scans ---------------------------------------------------------------------

  async function enqueue(kind, tag, ts, extra) {
    const verdict = judge(tag, ts, today, claimedVisits());
    const scanId = newId();
    const item = {
      scan_id: scanId, site: SITE, guard: GUARD, made: Date.now(), kind, state: "queued",
      label: verdict.checkpoint ? verdict.checkpoint.name : tag,
      claim: verdict.visit ? verdict.run.id + ":" + verdict.visit.seq : null,
      photo: extra.photo || null,
      scan: {scan_id: scanId, tag, ts, result: extra.result || "ok",
             readings: extra.readings || {}, ...(extra.note ? {note: extra.note} : {})},
    };
    await keep(item);
    await reload();
    sync();
    return verdict;
  }

  function verdictText(verdict) {
    const where = verdict.checkpoint ? verdict.checkpoint.name : "";
    const window = verdict.visit
      ? ` (${hhmm(verdict.visit.window_start)}–${hhmm(verdict.visit.window_end)})` : "";
    return `${T[verdict.kind]}${where ? " — " + where : ""}${window}`;
  }

  let pending = null;  // a scan at an equipment checkpoint, waiting for its checklist

  async function scanned(rawTag) {
    const tag = rawTag.trim();
    if (!tag) return;
    if (!GUARD) { say(T.no_guard, "bad"); return; }
    const ts = Date.now();
    const verdict = judge(tag, ts, today, claimedVisits());
    $("hazard-tag").value = tag;
    const checklist = verdict.checkpoint && verdict.checkpoint.kind === "equipment"
      ? (verdict.checkpoint.checklist || []).filter((i) => i.reading) : [];
    if (checklist.length) {
      pending = {tag, ts, verdict, checklist};
      showChecklist();
      say(verdictText(verdict), verdict.kind);
      return;
    }
    const made = await enqueue("scan", tag, ts, {});
    say(verdictText(made), made.kind);
  }

  $("scan-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("tag");
    const tag = input.value;
    input.value = "";
    await scanned(tag);
  });

  // --- the checklist ------------------------------------------------------------------

  function answerOf(item, form) {
    if ("expect" in item) {
      const chosen = form.querySelector(`input[name="${CSS.escape(item.reading)}"]:checked`);
      return chosen ? chosen.value === "yes" : null;
    }
    const field = form.querySelector(`input[name="${CSS.escape(item.reading)}"]`);
    const text = field.value.trim().replace(",", ".");
    return text === "" ? null : Number(text);
  }

  function markAnswer(item, wrap) {
    const form = $("checklist-form");
    const value = answerOf(item, form);
    const bad = outOfRange(item, value);
    wrap.classList.toggle("out", bad);
    wrap.querySelector(".hint").textContent = bad
      ? fill(T.out_of_range, {expected: expected(item)})
      : fill(T.expected, {expected: expected(item)});
    $("checklist-confirm").hidden = true;
    confirmed = false;
    return bad;
  }

  let confirmed = false;

  function showChecklist() {
    const box = $("checklist-items");
    $("checklist-name").textContent = pending.verdict.checkpoint.name;
    box.replaceChildren(...pending.checklist.map((item, n) => {
      const id = `answer-${n}`;
      const wrap = el("div", {class: "answer", "data-reading": item.reading});
      if ("expect" in item) {
        wrap.append(el("span", {class: "q"}, item.item || item.reading));
        for (const choice of ["yes", "no"]) {
          const radio = el("input", {type: "radio", name: item.reading, value: choice,
                                     id: `${id}-${choice}`});
          radio.addEventListener("change", () => markAnswer(item, wrap));
          wrap.append(el("label", {for: `${id}-${choice}`, class: "choice"}, radio, T[choice]));
        }
      } else {
        const input = el("input", {id, name: item.reading, type: "text", inputmode: "decimal",
                                   autocomplete: "off"});
        input.addEventListener("input", () => markAnswer(item, wrap));
        wrap.append(el("label", {for: id, class: "q"}, item.item || item.reading), input);
      }
      wrap.append(el("span", {class: "hint"}, fill(T.expected, {expected: expected(item)})));
      return wrap;
    }));
    confirmed = false;
    $("checklist-confirm").hidden = true;
    $("checklist").hidden = false;
    $("checklist").scrollIntoView({block: "start"});
  }

  function hideChecklist() {
    pending = null;
    $("checklist").hidden = true;
    $("checklist-items").replaceChildren();
  }

  $("checklist-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!pending) return;
    const form = $("checklist-form");
    const readings = {};
    let out = 0;
    for (const item of pending.checklist) {
      const value = answerOf(item, form);
      if (value === null) continue;
      readings[item.reading] = value;
      if (outOfRange(item, value)) out += 1;
    }
    if (out && !confirmed) {
      // Asked once: a slip of the thumb should not open a ticket.
      confirmed = true;
      const ask = $("checklist-confirm");
      ask.textContent = fill(T.confirm_out, {n: out});
      ask.hidden = false;
      return;
    }
    const {tag, ts} = pending;
    hideChecklist();
    const made = await enqueue("checklist", tag, ts, {readings});
    say(`${T.checklist_queued} · ${verdictText(made)}`, made.kind);
  });

  $("checklist-skip").addEventListener("click", async () => {
    if (!pending) return;
    const {tag, ts} = pending;
    hideChecklist();
    const made = await enqueue("scan", tag, ts, {});
    say(verdictText(made), made.kind);
  });

  // --- hazards ------------------------------------------------------------------------

  /** A photo small enough for the API's body limit (1 MiB by default) and a weak network:
      a JPEG of at most PHOTO_EDGE pixels, less sharp or smaller until under PHOTO_BYTES. */
  async function shrink(file) {
    try {
      const bitmap = await createImageBitmap(file);
      let blob = null;
      for (const [edge, quality] of [[PHOTO_EDGE, 0.8], [PHOTO_EDGE, 0.6], [1200, 0.6],
                                     [800, 0.5]]) {
        const scale = Math.min(1, edge / Math.max(bitmap.width, bitmap.height));
        const canvas = document.createElement("canvas");
        canvas.width = Math.round(bitmap.width * scale);
        canvas.height = Math.round(bitmap.height * scale);
        canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
        blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
        if (blob && blob.size <= PHOTO_BYTES) break;
      }
      return blob || file;
    } catch (error) {
      return file;
    }
  }

  $("hazard-photo").addEventListener("change", () => {
    const file = $("hazard-photo").files[0];
    const preview = $("hazard-preview");
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.hidden = !file;
    if (file) preview.src = URL.createObjectURL(file);
  });

  $("hazard-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!GUARD) { say(T.no_guard, "bad"); return; }
    const tag = $("hazard-tag").value.trim();
    const note = $("hazard-note").value.trim();
    if (!tag || !note) return;
    const file = $("hazard-photo").files[0];
    const photo = file ? await shrink(file) : null;
    const made = await enqueue("hazard", tag, Date.now(), {result: "abnormal", note, photo});
    $("hazard-form").reset();
    $("hazard-preview").hidden = true;
    $("hazard-details").open = false;
    say(`${T.hazard_queued} · ${verdictText(made)}`, "hazard");
  });

  // --- sending ------------------------------------------------------------------------

  let syncing = false;
  let retry = null;

  async function sendScans(waiting) {
    for (let start = 0; start < waiting.length; start += BATCH) {
      const chunk = waiting.slice(start, start + BATCH);
      const response = await fetch(
        `/api/v1/scans?site=${encodeURIComponent(SITE)}&guard=${encodeURIComponent(GUARD)}`,
        {method: "POST", credentials: "same-origin",
         headers: {"Content-Type": "application/json", "X-CSRF-Token": CSRF},
         body: JSON.stringify(chunk.map((item) => item.scan))});
      if (response.status === 401) throw new Error("login");
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const answer = await response.json();
      const done = [];
      for (const result of answer.results) {
        const item = chunk[result.index];
        if (result.status === "refused") {
          await keep({...item, state: "refused", reason: result.reason});
        } else if (item.photo) {
          await keep({...item, state: "photo"});
        } else {
          done.push(item.scan_id);   // stored now, or stored before (a resend)
        }
      }
      await forget(done);
    }
  }

  async function sendPhotos(waiting) {
    let later = 0;
    for (const item of waiting) {
      const response = await fetch(`/api/v1/scans/${item.scan_id}/photo`, {
        method: "PUT", credentials: "same-origin", body: item.photo,
        headers: {"Content-Type": item.photo.type || "image/jpeg", "X-CSRF-Token": CSRF}});
      if (response.status === 401) throw new Error("login");
      if (response.ok) {
        await forget([item.scan_id]);
      } else if (response.status === 409) {
        later += 1;   // its ticket is not open yet
      } else {
        let reason = `HTTP ${response.status}`;
        try { reason = (await response.json()).error.message; } catch (error) { /* keep */ }
        await keep({...item, state: "refused", reason});
      }
    }
    return later;
  }

  async function sync() {
    if (syncing || !GUARD || !navigator.onLine) return;
    syncing = true;
    clearTimeout(retry);
    let again = false;
    try {
      const all = (await queued()).filter(mine).sort((a, b) => a.made - b.made);
      const scans = all.filter((i) => i.state === "queued");
      if (scans.length) {
        lastSync = T.sending;
        drawQueue();
        await sendScans(scans);
      }
      const photos = (await queued()).filter((i) => mine(i) && i.state === "photo");
      again = (await sendPhotos(photos)) > 0;
      const left = (await queued()).filter((i) => mine(i) && i.state !== "refused");
      lastSync = left.length ? T.photo_waiting : T.all_sent;
      if (scans.length) refresh();
    } catch (error) {
      again = true;
      lastSync = error.message === "login" ? T.login_again : T.sync_failed;
      if (error.message === "login") notice(T.login_again);
    } finally {
      syncing = false;
      await reload();
      if (again) retry = setTimeout(sync, RETRY_MS);
    }
  }

  $("sync-now").addEventListener("click", sync);
  window.addEventListener("online", () => { drawNet(); sync(); refresh(); });
  window.addEventListener("offline", drawNet);

  // --- camera (QR) and NFC ------------------------------------------------------------

  let stream = null;
  let decoder = null;

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const script = el("script", {src});
      script.onload = resolve;
      script.onerror = reject;
      document.head.append(script);
    });
  }

  async function qrDecoder() {
    if (decoder) return decoder;
    if ("BarcodeDetector" in window) {
      try {
        const formats = await window.BarcodeDetector.getSupportedFormats();
        if (formats.includes("qr_code")) {
          const detector = new window.BarcodeDetector({formats: ["qr_code"]});
          decoder = async (video) => {
            const codes = await detector.detect(video);
            return codes.length ? codes[0].rawValue : null;
          };
          return decoder;
        }
      } catch (error) { /* fall back to the bundled decoder */ }
    }
    if (!window.jsQR) await loadScript(`/static/vendor/jsqr/jsQR.js?v=${body.dataset.version}`);
    const canvas = document.createElement("canvas");
    const context = canvas.getContext("2d", {willReadFrequently: true});
    decoder = async (video) => {
      const scale = Math.min(1, 640 / Math.max(video.videoWidth, video.videoHeight));
      canvas.width = Math.round(video.videoWidth * scale);
      canvas.height = Math.round(video.videoHeight * scale);
      if (!canvas.width || !canvas.height) return null;
      context.drawImage(video, 0, 0, canvas.width, canvas.height);
      const image = context.getImageData(0, 0, canvas.width, canvas.height);
      const code = window.jsQR(image.data, image.width, image.height,
                               {inversionAttempts: "attemptBoth"});
      return code ? code.data : null;
    };
    return decoder;
  }

  function stopCamera() {
    if (stream) stream.getTracks().forEach((track) => track.stop());
    stream = null;
    $("camera").hidden = true;
  }

  async function startCamera() {
    try {
      const decode = await qrDecoder();
      stream = await navigator.mediaDevices.getUserMedia(
        {video: {facingMode: "environment"}, audio: false});
      const video = $("video");
      video.srcObject = stream;
      $("camera").hidden = false;
      await video.play();
      const own = stream;
      const look = async () => {
        if (stream !== own) return;
        let value = null;
        try { value = video.readyState >= 2 ? await decode(video) : null; } catch (error) { /* next */ }
        if (value) {
          stopCamera();
          await scanned(value);
        } else {
          setTimeout(look, 150);
        }
      };
      look();
    } catch (error) {
      stopCamera();
      say(T.camera_failed, "bad");
    }
  }

  $("camera-button").addEventListener("click", startCamera);
  $("camera-stop").addEventListener("click", stopCamera);

  if ("NDEFReader" in window) {
    $("nfc-button").hidden = false;
    $("nfc-button").addEventListener("click", async () => {
      try {
        const reader = new window.NDEFReader();
        await reader.scan();
        say(T.nfc_ready, "");
        reader.onreading = (event) => {
          // A tag written with its checkpoint's value (a text record) reads as that; a blank
          // tag by its serial number, written as handhelds send it (04:A2:19:7C).
          const text = (event.message.records || []).find((r) => r.recordType === "text");
          const value = text ? new TextDecoder(text.encoding || "utf-8").decode(text.data)
            : (event.serialNumber || "").toUpperCase();
          scanned(value);
        };
      } catch (error) {
        say(T.nfc_failed, "bad");
      }
    });
  }

  // --- logging out ----------------------------------------------------------------------

  $("logout").addEventListener("submit", (event) => {
    const waiting = items.filter(mine).length;
    if (waiting && !window.confirm(fill(T.confirm_logout, {n: waiting}))) {
      event.preventDefault();
      return;
    }
    if (navigator.serviceWorker && navigator.serviceWorker.controller) {
      navigator.serviceWorker.controller.postMessage("logout");
    }
  });

  // --- start ----------------------------------------------------------------------------

  async function start() {
    today = (await remembered("today:" + SITE)) || today;
    await reload();
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.register("/m/sw.js", {scope: "/m/"}).catch(() => {});
    }
    await refresh();
    sync();
    setInterval(() => { if (document.visibilityState === "visible") { refresh(); draw(); } },
                REFRESH_MS);
  }

  start();
})();
