/**
 * The dashboard page: one self-contained HTML document (no build step, no external
 * assets) that polls `/api/overview` and renders with `textContent` only, so nothing
 * read from the database is ever interpreted as HTML. `__REFRESH_MS__` and
 * `__NEEDS_TOKEN__` are filled in by the handler.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sagabox dashboard</title>
<style>
  :root { --bg:#f6f7f9; --card:#fff; --ink:#1d2330; --muted:#6b7385; --line:#e3e6eb; --accent:#3559e0;
          --ok:#1f9d55; --warn:#c77c02; --bad:#d23b3b; --info:#3559e0; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--ink); background:var(--bg); }
  header { display:flex; align-items:center; gap:16px; padding:12px 24px; background:#111827; color:#fff; }
  header h1 { font-size:18px; margin:0; font-weight:600; letter-spacing:.2px; }
  header .muted { color:#9ca3af; }
  header .right { margin-left:auto; display:flex; gap:12px; align-items:center; }
  main { padding:20px 24px; display:grid; gap:20px; grid-template-columns: 1fr 1fr; }
  section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:14px 16px; min-width:0; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size:15px; margin:0 0 10px; display:flex; gap:8px; align-items:baseline; }
  h2 .count { color:var(--muted); font-weight:400; font-size:13px; }
  .cards { display:grid; grid-template-columns: repeat(5, 1fr); gap:12px; grid-column: 1 / -1; }
  .card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 16px; }
  .card .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.4px; }
  .card .value { font-size:26px; font-weight:600; margin-top:2px; font-variant-numeric: tabular-nums; }
  table { width:100%; border-collapse:collapse; }
  th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
  th { color:var(--muted); font-weight:500; font-size:12px; text-transform:uppercase; letter-spacing:.3px; }
  td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
  td.err { white-space:normal; color:var(--bad); max-width:340px; overflow-wrap:anywhere; }
  td.mono, span.mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size:12px; }
  tr.clickable { cursor:pointer; } tr.clickable:hover { background:#f0f3ff; } tr.selected { background:#e6ebff; }
  .empty { color:var(--muted); padding:8px; }
  button { font:inherit; border:1px solid var(--accent); background:var(--accent); color:#fff; border-radius:5px; padding:3px 10px; cursor:pointer; }
  button:disabled { opacity:.5; cursor:default; }
  .pill { display:inline-block; padding:1px 8px; border-radius:999px; font-size:12px; font-weight:500; background:#eef0f4; }
  .pill.running, .pill.compensating { background:#e6ebff; color:var(--info); }
  .pill.completed { background:#e3f6ea; color:var(--ok); }
  .pill.compensated { background:#fff3dc; color:var(--warn); }
  .pill.failed { background:#fde5e5; color:var(--bad); }
  .statuses { display:flex; gap:8px; flex-wrap:wrap; margin-bottom:10px; }
  .up { color:var(--bad); } .down { color:var(--ok); }
  ol.timeline { list-style:none; margin:0; padding:0 0 0 14px; border-left:2px solid var(--line); }
  ol.timeline li { position:relative; padding:4px 0 8px 12px; }
  ol.timeline li::before { content:""; position:absolute; left:-20px; top:9px; width:10px; height:10px; border-radius:50%; background:var(--accent); }
  ol.timeline li.failed::before, ol.timeline li.timed_out::before, ol.timeline li.compensation_failed::before { background:var(--bad); }
  ol.timeline li.compensated::before, ol.timeline li.compensation_sent::before { background:var(--warn); }
  ol.timeline li.completed::before { background:var(--ok); }
  ol.timeline .when { color:var(--muted); font-size:12px; margin-left:8px; }
  #notice { color:var(--bad); }
  #vacuum-warning { color:var(--bad); font-weight:600; }
</style>
</head>
<body>
<header>
  <h1>sagabox</h1><span class="muted">operations dashboard</span>
  <div class="right"><span id="notice"></span><span class="muted">updated <span id="updated">-</span></span></div>
</header>
<main>
  <p id="vacuum-warning" data-testid="vacuum-warning" hidden></p>
  <div class="cards">
    <div class="card"><div class="label">Outbox ready</div><div class="value" data-testid="outbox-ready">-</div></div>
    <div class="card"><div class="label">Relay lag</div><div class="value" data-testid="relay-lag">-</div></div>
    <div class="card"><div class="label">Half messages</div><div class="value" data-testid="outbox-prepared">-</div></div>
    <div class="card"><div class="label">Dead in queues</div><div class="value" data-testid="dead-total">-</div></div>
    <div class="card"><div class="label">Sagas running</div><div class="value" data-testid="sagas-running">-</div></div>
  </div>
  <section class="wide">
    <h2>Queues <span class="count" id="queues-count"></span></h2>
    <table data-testid="queues"><thead><tr><th>queue</th><th class="num">ready</th><th class="num">in flight</th><th class="num">delayed</th><th class="num">dead</th><th class="num">oldest</th><th class="num">backlog / s</th></tr></thead><tbody></tbody></table>
  </section>
  <section class="wide">
    <h2>Dead letters <span class="count" id="dead-count"></span></h2>
    <table data-testid="dead-letters"><thead><tr><th>id</th><th>queue</th><th>topic</th><th>reason</th><th class="num">attempts</th><th>died</th><th>error</th><th></th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Half messages awaiting check <span class="count" id="half-count"></span></h2>
    <table data-testid="half-messages"><thead><tr><th>id</th><th>topic</th><th class="num">checks</th><th>next check</th><th class="num">age</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Sagas <span class="count" id="sagas-count"></span></h2>
    <div class="statuses" data-testid="saga-statuses"></div>
    <table data-testid="sagas"><thead><tr><th>id</th><th>type</th><th>status</th><th class="num">step</th><th>updated</th></tr></thead><tbody></tbody></table>
  </section>
  <section class="wide" data-testid="saga-detail" hidden>
    <h2>Saga <span class="mono" id="saga-title"></span> <span id="saga-status"></span></h2>
    <div id="saga-error" class="err"></div>
    <ol class="timeline" data-testid="timeline"></ol>
  </section>
</main>
<script>
"use strict";
const REFRESH_MS = __REFRESH_MS__;
const NEEDS_TOKEN = __NEEDS_TOKEN__;
let token = new URLSearchParams(location.hash.slice(1)).get("token") || sessionStorage.getItem("sagabox-token") || "";
if (token) sessionStorage.setItem("sagabox-token", token);
let selectedSaga = null;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", c));
  return tr;
}
function num(v) { return el("td", v, "num"); }
function age(ms) {
  if (ms === null || ms === undefined) return "-";
  if (ms < 1000) return ms + "ms";
  if (ms < 60000) return (ms / 1000).toFixed(1) + "s";
  if (ms < 3600000) return (ms / 60000).toFixed(1) + "m";
  return (ms / 3600000).toFixed(1) + "h";
}
function time(iso) { return iso ? new Date(iso).toLocaleTimeString() : "-"; }
function fill(testid, rows, emptyText, colspan) {
  const body = document.querySelector('[data-testid="' + testid + '"] tbody');
  body.replaceChildren(...rows);
  if (rows.length === 0) { const td = el("td", emptyText, "empty"); td.colSpan = colspan; body.appendChild(row([td])); }
}
async function api(path, init) {
  const headers = Object.assign({}, init && init.headers, token ? { authorization: "Bearer " + token } : {});
  const res = await fetch(path, Object.assign({}, init, { headers }));
  if (res.status === 401) {
    const t = prompt("sagabox dashboard token");
    if (t) { token = t; sessionStorage.setItem("sagabox-token", t); }
    throw new Error("a token is required");
  }
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}
async function replay(deadId, button) {
  button.disabled = true;
  try {
    await api("/api/dead-letters/" + encodeURIComponent(deadId) + "/replay", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    await refresh();
  } catch (err) {
    document.getElementById("notice").textContent = "replay failed: " + err.message;
    button.disabled = false;
  }
}
async function showSaga(id) {
  selectedSaga = id;
  const saga = await api("/api/sagas/" + encodeURIComponent(id));
  const box = document.querySelector('[data-testid="saga-detail"]');
  box.hidden = false;
  document.getElementById("saga-title").textContent = saga.id + " (" + saga.type + " v" + saga.version + ")";
  document.getElementById("saga-status").replaceChildren(el("span", saga.status, "pill " + saga.status));
  document.getElementById("saga-error").textContent = saga.error || "";
  const start = saga.history.length ? new Date(saga.history[0].at).getTime() : 0;
  document.querySelector('[data-testid="timeline"]').replaceChildren(...saga.history.map((e) => {
    const li = el("li", null, e.event);
    li.dataset.event = e.step + ":" + e.event;
    li.appendChild(el("strong", e.step));
    li.appendChild(document.createTextNode(" " + e.event.replace(/_/g, " ")));
    li.appendChild(el("span", time(e.at) + " (+" + (new Date(e.at).getTime() - start) + "ms)", "when"));
    return li;
  }));
  for (const tr of document.querySelectorAll('[data-testid="sagas"] tbody tr')) tr.classList.toggle("selected", tr.dataset.id === id);
}
function render(o) {
  const set = (testid, v) => { document.querySelector('[data-testid="' + testid + '"]').textContent = String(v); };
  set("outbox-ready", o.outbox.ready);
  set("relay-lag", age(o.outbox.lagMs));
  set("outbox-prepared", o.outbox.prepared);
  set("dead-total", o.queues.reduce((n, q) => n + q.dead, 0));
  // Dead rows pile up while a snapshot is held, long before queues look deep.
  const vw = document.getElementById("vacuum-warning");
  const h = o.storage && o.storage.oldest;
  vw.hidden = !(o.storage && o.storage.vacuumBlocked);
  vw.textContent = vw.hidden || !h ? "" : "Vacuum is blocked: " + (h.kind === "backend" ? "backend pid " + h.pid + " (" + (h.application || "no application name") + ", " + h.state + ")" : h.kind.replace("_", " ") + " " + h.name) + " has held a snapshot for " + age(h.ageMs) + "; no dead row is removed until it ends.";
  set("sagas-running", o.sagaCounts.filter((c) => c.status === "running" || c.status === "compensating").reduce((n, c) => n + c.count, 0));

  document.getElementById("queues-count").textContent = o.queues.length + " queue(s)";
  fill("queues", o.queues.map((q) => {
    const rate = q.backlogPerSecond;
    const trend = el("td", rate === null ? "-" : (rate > 0 ? "+" : "") + rate.toFixed(2), "num " + (rate > 0 ? "up" : rate < 0 ? "down" : ""));
    const tr = row([el("td", q.queue, "mono"), num(q.ready), num(q.inFlight), num(q.delayed), num(q.dead), num(age(q.oldestAgeMs)), trend]);
    tr.dataset.queue = q.queue;
    return tr;
  }), "no queues yet", 7);

  document.getElementById("dead-count").textContent = o.deadLetters.length + " shown";
  fill("dead-letters", o.deadLetters.map((d) => {
    const button = el("button", "Replay");
    button.addEventListener("click", () => replay(d.deadId, button));
    const actions = el("td"); actions.appendChild(button);
    const tr = row([el("td", d.deadId, "mono"), el("td", d.queue || "(outbox)", "mono"), el("td", d.topic, "mono"), el("td", d.reason), num(d.attempts), el("td", time(d.deadAt)), el("td", d.error, "err"), actions]);
    tr.dataset.deadId = d.deadId;
    return tr;
  }), "no dead letters", 8);

  document.getElementById("half-count").textContent = o.halfMessages.length + " prepared";
  const now = Date.now();
  fill("half-messages", o.halfMessages.map((m) => {
    // UUIDv7 ids share their time-ordered head: show the tail, the whole id on hover.
    const id = el("td", "\u2026" + m.id.slice(-12), "mono"); id.title = m.id;
    const tr = row([id, el("td", m.topic, "mono"), num(m.checks), el("td", time(m.checkAt)), num(age(now - new Date(m.createdAt).getTime()))]);
    tr.dataset.id = m.id;
    return tr;
  }), "none awaiting check", 5);

  const byStatus = {};
  for (const c of o.sagaCounts) byStatus[c.status] = (byStatus[c.status] || 0) + c.count;
  const statuses = document.querySelector('[data-testid="saga-statuses"]');
  statuses.replaceChildren(...["running", "compensating", "completed", "compensated", "failed"].map((s) => {
    const p = el("span", s + " " + (byStatus[s] || 0), "pill " + s);
    p.dataset.status = s; p.dataset.count = String(byStatus[s] || 0);
    return p;
  }));
  document.getElementById("sagas-count").textContent = o.sagaCounts.reduce((n, c) => n + c.count, 0) + " total";
  fill("sagas", o.sagas.map((s) => {
    const status = el("td"); status.appendChild(el("span", s.status, "pill " + s.status));
    const tr = row([el("td", s.id.slice(0, 8) + "...", "mono"), el("td", s.type), status, num(s.currentStep), el("td", time(s.updatedAt))]);
    tr.className = "clickable" + (s.id === selectedSaga ? " selected" : "");
    tr.dataset.id = s.id;
    tr.addEventListener("click", () => showSaga(s.id).catch(showError));
    return tr;
  }), "no sagas", 5);
  document.getElementById("updated").textContent = new Date(o.at).toLocaleTimeString();
  document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
}
function showError(err) { document.getElementById("notice").textContent = err.message; }
async function refresh() {
  const o = await api("/api/overview");
  document.getElementById("notice").textContent = "";
  render(o);
  if (selectedSaga) await showSaga(selectedSaga);
}
async function loop() {
  try { await refresh(); } catch (err) { showError(err); }
  setTimeout(loop, REFRESH_MS);
}
if (NEEDS_TOKEN && !token) { token = prompt("sagabox dashboard token") || ""; if (token) sessionStorage.setItem("sagabox-token", token); }
loop();
</script>
</body>
</html>
`;
