// Weir's status page: polls /api/state every 2 s and redraws. No framework, no build step.
// Text goes in with textContent; only the plot's SVG, drawn and escaped by the agent, is HTML.
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || sessionStorage.getItem("weir-token") || "";
  if (token) sessionStorage.setItem("weir-token", token);
  let query = "", pageNo = 0, offset = 0, last = null, updates = 0, timer = null;
  const $ = (id) => document.getElementById(id);
  const root = document.documentElement;
  root.dataset.updates = "0";

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function row(cells, cls) {
    const tr = el("tr", null, cls);
    for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", c));
    return tr;
  }
  function fill(id, rows, empty) {
    const body = $(id).tBodies[0];
    body.replaceChildren(...rows);
    if (!rows.length && empty) body.appendChild(row([empty], "empty"));
  }
  function age(s) {
    if (s === null || s === undefined) return "never";
    if (s < 1) return "now";
    if (s < 120) return Math.round(s) + " s ago";
    if (s < 7200) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }
  function span(s) {
    if (s === null || !isFinite(s)) return "never";
    s = Math.max(0, s);
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), x = Math.floor(s % 60);
    return (d ? d + "d " : "") + (d || h ? h + "h " : "") + (d || h || m ? m + "m " : "") + x + "s";
  }
  // UTC, as the plots' axes (and the agent's log) are.
  function time(us) {
    return us === null || us === undefined ? "" : new Date(us / 1000).toISOString().slice(11, 19) + " UTC";
  }
  function num(v) {
    return v === null || v === undefined ? "–" : Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-2) ? v.toExponential(3) : v.toFixed(2);
  }
  function bytes(n) {
    return n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KiB" : (n / 1048576).toFixed(1) + " MiB";
  }
  function nowUs() { return Date.now() * 1000 + offset; }

  function sources(list) {
    fill("sources", list.map((s) => {
      const state = s.stalled ? el("td", "stalled", "bad") : s.connected ? el("td", "connected", "ok") : el("td", s.last_reading_age_s !== null && s.last_reading_age_s < 60 ? "receiving" : "no data", s.last_reading_age_s !== null && s.last_reading_age_s < 60 ? "ok" : "warn");
      const errors = s.decode_errors + s.transport_errors + s.timeouts;
      const tr = row([s.name, state, age(s.last_reading_age_s), s.readings, el("td", errors, errors ? "warn" : "")]);
      tr.dataset.name = s.name;
      tr.dataset.readings = s.readings;
      return tr;
    }), "no sources");
  }
  function alerts(a) {
    const rows = [];
    for (const x of a.active) {
      const tr = row(["raised", x.severity, x.rule, x.series, x.condition, num(x.value), time(x.raised_at), "for " + span((nowUs() - x.raised_at) / 1e6)], "raised");
      tr.dataset.rule = x.rule;
      rows.push(tr);
    }
    for (const x of a.cleared) {
      const tr = row(["cleared", x.severity, x.rule, x.series, x.condition, num(x.value), time(x.raised_at), time(x.cleared_at) + " (" + span((x.cleared_at - x.raised_at) / 1e6) + ")"], "cleared");
      tr.dataset.rule = x.rule;
      rows.push(tr);
    }
    fill("alerts", rows, "no alerts");
    $("alert-count").textContent = a.active_total + " raised" + (a.active_total > a.active.length ? " (the newest " + a.active.length + " listed)" : "") + (a.untracked ? ", " + a.untracked + " more not kept" : "");
  }
  function predictions(list) {
    fill("predictions", list.map((p) => {
      const tr = row([p.rule, p.series, el("td", p.eta === null ? "never" : span((p.eta - nowUs()) / 1e6), "countdown"),
        p.early === null ? "–" : span((p.early - nowUs()) / 1e6) + " … " + (p.late === null ? "never" : span((p.late - nowUs()) / 1e6)),
        num(p.threshold), p.model, num(p.r2)]);
      tr.dataset.eta = p.eta === null ? "" : p.eta;
      tr.dataset.early = p.early === null ? "" : p.early;
      tr.dataset.late = p.late === null ? "" : p.late;
      return tr;
    }), "no trend rules have forecast yet");
  }
  function tick() {
    for (const tr of $("predictions").tBodies[0].rows) {
      if (!tr.dataset.eta) continue;
      tr.cells[2].textContent = span((Number(tr.dataset.eta) - nowUs()) / 1e6);
    }
  }
  function series(s, svg) {
    fill("series", s.items.map((x) => {
      const tr = row([x.name, num(x.last), age(x.age_s)]);
      tr.dataset.name = x.name;
      return tr;
    }), s.query ? "no series match" : "no series yet");
    const pages = Math.max(1, Math.ceil(s.total / s.per_page));
    $("page-no").textContent = (s.page + 1) + " / " + pages;
    $("series-count").textContent = s.total + (s.query ? " matching" : "") + " of " + s.tracked + " tracked" + (s.untracked ? ", " + s.untracked + " beyond the page's max_series" : "");
    $("prev").disabled = s.page === 0;
    $("next").disabled = s.page + 1 >= pages;
    $("plot").innerHTML = svg;
  }
  function outbox(o, u) {
    if (!o) {
      fill("outbox", [], "the outbox is not answering");
    } else {
      fill("outbox", o.lanes.map((l) => row([l.lane, l.records, bytes(l.bytes), l.oldest_age_s === null ? "–" : span(l.oldest_age_s)])));
      $("outbox-total").textContent = bytes(o.bytes) + " of " + bytes(o.max_bytes) + " (" + Math.round(100 * o.bytes / Math.max(1, o.max_bytes)) + " %), " + o.evicted + " evicted" + (o.blocked_s !== null ? ", BLOCKED for " + span(o.blocked_s) : "");
    }
    const up = $("uplink");
    if (!u) { up.textContent = "No uplink configured: events stay in the outbox."; up.className = "warn"; return; }
    up.textContent = "Uplink " + (u.connected ? "connected" : "DISCONNECTED") + ": " + u.acked + " acknowledged, " + u.in_flight + " in flight, " +
      (u.latency_ms_mean === null ? "no latency yet" : "mean publish latency " + u.latency_ms_mean.toFixed(1) + " ms") + ", " + u.connection_errors + " connection errors";
    up.className = u.connected ? "ok" : "bad";
  }
  function rules(r) {
    const items = r.loaded.map((f) => el("li", f));
    for (const x of r.rejected) {
      const li = el("li", "rejected: " + x.file, "rejected");
      for (const p of x.problems) li.appendChild(el("pre", p));
      items.push(li);
    }
    $("rules").replaceChildren(...items);
    $("rules").insertBefore(el("li", r.rules + " rules running"), $("rules").firstChild);
    if (r.reload_rejected) $("rules").appendChild(el("li", "The last reload was rejected: the rules loaded before keep running.", "rejected"));
  }
  function render(s) {
    offset = s.now - Date.now() * 1000;
    $("gateway").textContent = s.gateway;
    sources(s.sources);
    alerts(s.alerts);
    predictions(s.predictions);
    $("predictions-count").textContent = s.predictions_total > s.predictions.length ? "the soonest " + s.predictions.length + " of " + s.predictions_total : "";
    series(s.series, s.plot);
    outbox(s.outbox, s.uplink);
    rules(s.rules);
  }
  async function poll() {
    clearTimeout(timer);
    const live = $("live");
    try {
      const url = "/api/state?q=" + encodeURIComponent(query) + "&page=" + pageNo;
      const r = await fetch(url, { headers: token ? { Authorization: "Bearer " + token } : {}, cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      last = await r.json();
      render(last);
      updates += 1;
      root.dataset.updates = String(updates);
      live.textContent = "live";
      live.className = "badge ok";
      $("updated").textContent = "updated " + time(Date.now() * 1000);
    } catch (e) {
      live.textContent = "agent not answering (" + e.message + ")";
      live.className = "badge bad";
    }
    timer = setTimeout(poll, 2000);
  }
  document.addEventListener("DOMContentLoaded", () => {
    root.dataset.loadedAt = String(Date.now());
    $("filter").addEventListener("input", (e) => { query = e.target.value; pageNo = 0; poll(); });
    $("prev").addEventListener("click", () => { pageNo = Math.max(0, pageNo - 1); poll(); });
    $("next").addEventListener("click", () => { pageNo += 1; poll(); });
    setInterval(tick, 1000);
    poll();
  });
})();
