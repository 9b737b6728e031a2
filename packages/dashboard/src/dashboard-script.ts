/**
 * The page's script (plain ES2020, no build step). It keeps the view in the URL hash
 * (`#view=messages&queue=orders&state=retrying`, `&message=<id>`, `&saga=<id>`) so a
 * view can be linked, and asks for confirmation, with the preview count for bulk
 * actions, before anything destructive is sent.
 */
export const DASHBOARD_SCRIPT = `
let me = null;                 // { name, permissions, loginRequired }
let paused = false;
let timer = null;
let overviewData = null;
let cursors = [];              // the 'after' cursor of each page shown, for paging back to the first
let nextCursor = null;
let syncedHash = null;         // the hash the message filter form was last filled from

const $ = (sel) => document.querySelector(sel);
const can = (p) => !!me && me.permissions.indexOf(p) >= 0;
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
function button(label, cls, onClick, testid) {
  const b = el("button", label, cls);
  b.type = "button";
  if (testid) b.dataset.testid = testid;
  b.addEventListener("click", (ev) => { ev.stopPropagation(); onClick(b); });
  return b;
}
function age(ms) {
  if (ms === null || ms === undefined) return "-";
  if (ms < 0) return "in " + age(-ms);
  if (ms < 1000) return Math.round(ms) + "ms";
  if (ms < 60000) return (ms / 1000).toFixed(1) + "s";
  if (ms < 3600000) return (ms / 60000).toFixed(1) + "m";
  return (ms / 3600000).toFixed(1) + "h";
}
function time(iso) { return iso ? new Date(iso).toLocaleTimeString() : "-"; }
function fill(testid, rows, emptyText, colspan) {
  const body = $('[data-testid="' + testid + '"] tbody');
  body.replaceChildren(...rows);
  if (rows.length === 0) { const td = el("td", emptyText, "empty"); td.colSpan = colspan; body.appendChild(row([td])); }
}
function notice(text) { $("#notice").textContent = text || ""; }

// ---- view state in the URL hash ----
function hashState() { return new URLSearchParams(location.hash.slice(1)); }
function setHash(params) {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") s.set(k, v);
  const h = "#" + s.toString();
  if (location.hash !== h) history.replaceState(null, "", h);
}
function currentView() { return hashState().get("view") || "overview"; }

// ---- API (relative URLs: the page works under any mount path) ----
async function api(path, init) {
  const res = await fetch("api/" + path, Object.assign({ credentials: "same-origin" }, init));
  let body = null;
  try { body = await res.json(); } catch (e) { body = {}; }
  if (res.status === 401) { showLogin(); throw new Error("sign in first"); }
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}
function post(path, body) {
  return api(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body || {}) });
}

// ---- confirmation dialog: every destructive action goes through it ----
function confirmAction(opts) {
  const d = $("#confirm");
  $("#confirm-title").textContent = opts.title;
  $("#confirm-text").textContent = opts.text;
  const count = $("#confirm-count");
  count.hidden = opts.count === undefined;
  if (opts.count !== undefined) { count.textContent = opts.count + " " + (opts.count === 1 ? "message" : "messages") + " will be affected" + (opts.capped ? " (at least)" : "") + "."; count.dataset.count = String(opts.count); }
  $("#confirm-reason-label").hidden = !opts.reason;
  $("#confirm-reason").value = "";
  $("#confirm-ok").textContent = opts.ok || "Confirm";
  $("#confirm-ok").disabled = opts.count === 0;
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue === "ok" ? { reason: $("#confirm-reason").value.trim() } : null), { once: true });
    d.returnValue = "";
    d.showModal();
  });
}
async function act(run, doneText) {
  try { const r = await run(); notice(doneText ? doneText(r) : ""); }
  catch (err) { notice(err.message); }
  await refresh().catch(showError);
}

// ---- login ----
function showLogin() {
  me = null;
  for (const m of document.querySelectorAll("main")) m.hidden = true;
  $('[data-testid="nav"]').hidden = true;
  $("#refresh-toggle").hidden = true;
  $("#sign-out").hidden = true;
  $("#who").textContent = "";
  $("#login").hidden = false;
  $("#login-token").focus();
}
async function signIn(token) {
  const res = await fetch("api/login", { method: "POST", credentials: "same-origin", headers: { "content-type": "application/json" }, body: JSON.stringify({ token }) });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}
$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#login-error").textContent = "";
  try { await signIn($("#login-token").value); $("#login-token").value = ""; await start(); }
  catch (err) { $("#login-error").textContent = err.message; }
});
$("#sign-out").addEventListener("click", async () => { await post("logout").catch(() => {}); showLogin(); });

// ---- overview ----
function renderOverview(o) {
  const set = (testid, v) => { $('[data-testid="' + testid + '"]').textContent = String(v); };
  set("outbox-ready", o.outbox.ready);
  set("relay-lag", age(o.outbox.lagMs));
  set("outbox-prepared", o.outbox.prepared);
  set("dead-total", o.queues.reduce((n, q) => n + q.dead, 0) + (o.outbox.dead || 0));
  // Dead rows pile up while a snapshot is held, long before queues look deep.
  const vw = $("#vacuum-warning");
  const h = o.storage && o.storage.oldest;
  vw.hidden = !(o.storage && o.storage.vacuumBlocked);
  vw.textContent = vw.hidden || !h ? "" : "Vacuum is blocked: " + (h.kind === "backend" ? "backend pid " + h.pid + " (" + (h.application || "no application name") + ", " + h.state + ")" : h.kind.replace("_", " ") + " " + h.name) + " has held a snapshot for " + age(h.ageMs) + "; no dead row is removed until it ends.";
  set("sagas-running", o.sagaCounts.filter((c) => c.status === "running" || c.status === "compensating").reduce((n, c) => n + c.count, 0));

  $("#queues-count").textContent = o.queues.length + " queue(s)";
  fill("queues", o.queues.map((q) => {
    const rate = q.backlogPerSecond;
    const trend = el("td", rate === null ? "-" : (rate > 0 ? "+" : "") + rate.toFixed(2), "num " + (rate > 0 ? "up" : rate < 0 ? "down" : ""));
    const name = el("td", null, "mono");
    const link = el("a", q.queue); link.href = "#view=messages&queue=" + encodeURIComponent(q.queue); name.appendChild(link);
    if (q.pausedAt) name.appendChild(el("span", " paused", "pill paused"));
    const actions = el("td", null, "actions");
    if (can("actions")) {
      actions.appendChild(q.pausedAt
        ? button("Resume", "secondary", () => act(() => post("queues/" + encodeURIComponent(q.queue) + "/resume")), "queue-resume")
        : button("Pause", "danger", async () => {
            const ok = await confirmAction({ title: "Pause queue " + q.queue + "?", text: "Workers stop claiming its messages until it is resumed; deliveries keep arriving and wait.", ok: "Pause" });
            if (ok) await act(() => post("queues/" + encodeURIComponent(q.queue) + "/pause"));
          }, "queue-pause"));
    }
    const tr = row([name, num(q.ready), num(q.inFlight), num(q.retrying), num(q.scheduled), num(q.dead), num(age(q.oldestAgeMs)), trend, actions]);
    tr.dataset.queue = q.queue;
    if (q.pausedAt) tr.dataset.paused = "true";
    return tr;
  }), "no queues yet", 9);

  $("#dead-count").textContent = o.deadLetters.length + " newest shown";
  fill("dead-letters", o.deadLetters.map((d) => {
    const actions = el("td", null, "actions");
    if (can("actions")) actions.appendChild(button("Replay", "", async () => {
      const ok = await confirmAction({ title: "Replay dead letter " + d.deadId + "?", text: "It goes back to " + (d.queue ? "queue " + d.queue : "the outbox") + " with its attempts reset, and is handled again.", ok: "Replay" });
      if (ok) await act(() => post("dead-letters/" + encodeURIComponent(d.deadId) + "/replay"));
    }, "dead-replay"));
    const idCell = el("td", null, "mono");
    const link = el("a", d.deadId); link.href = "#view=messages&message=" + d.id; idCell.appendChild(link);
    const tr = row([idCell, el("td", d.queue || "(outbox)", "mono"), el("td", d.topic, "mono"), el("td", d.reason), num(d.attempts), el("td", time(d.deadAt)), el("td", d.error, "err"), actions]);
    tr.dataset.deadId = d.deadId;
    return tr;
  }), "no dead letters", 8);

  $("#half-count").textContent = o.halfMessages.length + " prepared";
  const now = Date.now();
  fill("half-messages", o.halfMessages.map((m) => {
    // UUIDv7 ids share their time-ordered head: show the tail, the whole id on hover.
    const id = el("td", "\\u2026" + m.id.slice(-12), "mono"); id.title = m.id;
    const actions = el("td", null, "actions");
    if (can("actions")) {
      for (const decision of ["commit", "rollback"]) actions.appendChild(button(decision === "commit" ? "Commit" : "Roll back", decision === "commit" ? "" : "danger", async () => {
        const ok = await confirmAction({ title: (decision === "commit" ? "Commit" : "Roll back") + " half message?", text: "Decided by hand for " + m.topic + " " + m.id + "; recorded as your decision. The producer's checker is not asked again.", reason: true, ok: decision === "commit" ? "Commit" : "Roll back" });
        if (ok) await act(() => post("half-messages/" + encodeURIComponent(m.id) + "/" + decision, { reason: ok.reason || "decided from the dashboard" }));
      }, "half-" + decision));
    }
    const tr = row([id, el("td", m.topic, "mono"), num(m.checks), el("td", time(m.checkAt)), num(age(now - new Date(m.createdAt).getTime())), actions]);
    tr.dataset.id = m.id;
    return tr;
  }), "none awaiting check", 6);

  const byStatus = {};
  for (const c of o.sagaCounts) byStatus[c.status] = (byStatus[c.status] || 0) + c.count;
  $('[data-testid="saga-statuses"]').replaceChildren(...["running", "compensating", "completed", "compensated", "failed"].map((s) => {
    const p = el("span", s + " " + (byStatus[s] || 0), "pill " + s);
    p.dataset.status = s; p.dataset.count = String(byStatus[s] || 0);
    return p;
  }));
  $("#sagas-count").textContent = o.sagaCounts.reduce((n, c) => n + c.count, 0) + " total";
  const selected = hashState().get("saga");
  fill("sagas", o.sagas.map((s) => {
    const status = el("td"); status.appendChild(el("span", s.status, "pill " + s.status));
    const sid = el("td", "\\u2026" + s.id.slice(-12), "mono"); sid.title = s.id;
    const tr = row([sid, el("td", s.type), status, num(s.currentStep), el("td", time(s.updatedAt))]);
    tr.className = "clickable" + (s.id === selected ? " selected" : "");
    tr.dataset.id = s.id;
    tr.addEventListener("click", () => { setHash({ view: "overview", saga: s.id }); showSaga(s.id).catch(showError); });
    return tr;
  }), "no sagas", 5);
}
/** What a running or compensating saga waits on, read from its history: the last command sent, and the last failure. */
function pendingOf(saga) {
  if (saga.status !== "running" && saga.status !== "compensating") return null;
  let sent = null;
  let failure = null;
  for (const e of saga.history) {
    if (e.event === "command_sent" || e.event === "compensation_sent") sent = e;
    if (e.event === "failed" || e.event === "timed_out" || e.event === "compensation_failed") failure = e;
  }
  if (!sent) return null;
  const why = (e) => e.step + " " + e.event.replace(/_/g, " ") + (e.detail && e.detail.reason ? ": " + e.detail.reason : "") + " at " + time(e.at);
  return {
    step: sent.step, compensating: sent.event === "compensation_sent", topic: sent.detail && sent.detail.topic,
    attempt: sent.detail && sent.detail.attempt, sentAt: sent.at, lastFailure: failure ? why(failure) : null,
  };
}
async function showSaga(id) {
  const saga = await api("sagas/" + encodeURIComponent(id));
  $('[data-testid="saga-detail"]').hidden = false;
  $("#saga-title").textContent = saga.id + " (" + saga.type + " v" + saga.version + ")";
  $("#saga-status").replaceChildren(el("span", saga.status, "pill " + saga.status));
  $("#saga-error").textContent = saga.error || "";
  const pending = $("#saga-pending");
  pending.replaceChildren();
  const kv = (k, v) => { if (v !== undefined && v !== null) { pending.appendChild(el("dt", k)); pending.appendChild(el("dd", v)); } };
  const p = pendingOf(saga);
  if (p) {
    kv("waiting on", p.step + (p.compensating ? " (compensation)" : ""));
    kv("command", (p.topic || "?") + (p.attempt ? " (attempt " + p.attempt + ")" : ""));
    kv("sent", new Date(p.sentAt).toLocaleString());
    kv("waited", age(Date.now() - new Date(p.sentAt).getTime()));
  }
  if (saga.deadline && p) {
    const left = new Date(saga.deadline).getTime() - Date.now();
    kv("deadline", new Date(saga.deadline).toLocaleString() + (left < 0 ? " (overdue by " + age(-left) + ")" : " (in " + age(left) + ")"));
  }
  if (p && p.lastFailure) kv("last failure", p.lastFailure);
  const retryable = saga.status === "failed" || saga.status === "running" || saga.status === "compensating";
  $("#saga-retry").hidden = !(can("actions") && retryable);
  $("#saga-cancel").hidden = !(can("actions") && saga.status === "running");
  $("#saga-retry").onclick = async () => {
    const ok = await confirmAction({ title: "Retry saga?", text: "The pending step's command (or compensation) is sent again with fresh attempts.", ok: "Retry" });
    if (ok) await act(() => post("sagas/" + encodeURIComponent(saga.id) + "/retry"));
  };
  $("#saga-cancel").onclick = async () => {
    const ok = await confirmAction({ title: "Cancel saga " + saga.id + "?", text: "Its completed steps are compensated in reverse order and it ends compensated.", reason: true, ok: "Cancel saga" });
    if (ok) await act(() => post("sagas/" + encodeURIComponent(saga.id) + "/cancel", { reason: ok.reason || undefined }), () => "cancel requested");
  };
  const start = saga.history.length ? new Date(saga.history[0].at).getTime() : 0;
  $('[data-testid="timeline"]').replaceChildren(...saga.history.map((e) => {
    const li = el("li", null, e.event);
    li.dataset.event = e.step + ":" + e.event;
    li.appendChild(el("strong", e.step));
    const why = typeof e.detail === "string" ? e.detail : e.detail && (e.detail.reason || e.detail.error);
    li.appendChild(document.createTextNode(" " + e.event.replace(/_/g, " ") + (why ? ": " + why : "")));
    li.appendChild(el("span", time(e.at) + " (+" + (new Date(e.at).getTime() - start) + "ms)", "when"));
    return li;
  }));
  for (const tr of document.querySelectorAll('[data-testid="sagas"] tbody tr')) tr.classList.toggle("selected", tr.dataset.id === id);
}
function deadFilter() {
  const f = new FormData($("#dead-filters"));
  const out = {};
  for (const k of ["queue", "topic", "reason"]) if (f.get(k)) out[k] = String(f.get(k));
  return out;
}
$("#dead-filters").addEventListener("submit", (ev) => { ev.preventDefault(); refresh().catch(showError); });
for (const action of ["replay", "purge"]) {
  $('[data-act="bulk-' + action + '"]').addEventListener("click", async () => {
    try {
      const filter = deadFilter();
      const preview = await post("dead-letters/" + action, { filter, dryRun: true });
      const what = Object.keys(filter).length ? "the dead letters matching " + JSON.stringify(filter) : "every dead letter";
      const ok = await confirmAction({ title: (action === "replay" ? "Replay " : "Purge ") + "dead letters?", text: action === "replay" ? "Moves " + what + " back where they died, attempts reset." : "Deletes " + what + " for good.", count: preview.affected, capped: preview.capped, ok: action === "replay" ? "Replay" : "Purge" });
      if (ok) await act(() => post("dead-letters/" + action, { filter }), (r) => r.affected + " " + (action === "replay" ? "replayed" : "purged"));
    } catch (err) { showError(err); }
  });
}

// ---- messages ----
function messageFilter() {
  const h = hashState();
  const out = {};
  for (const k of ["queue", "state", "topic", "key", "group", "id", "error", "limit"]) if (h.get(k)) out[k] = h.get(k);
  return out;
}
function syncFilterForm() {
  const f = messageFilter();
  const form = $("#message-filters");
  const queues = overviewData ? overviewData.queues.map((q) => q.queue) : [];
  if (f.queue && queues.indexOf(f.queue) < 0) queues.push(f.queue);
  const select = form.elements.namedItem("queue");
  const have = Array.from(select.options).map((o) => o.value).slice(1).join(",");
  if (have !== queues.join(",")) {
    select.replaceChildren(el("option", "outbox"), ...queues.map((q) => el("option", q)));
    select.options[0].value = "";
  }
  // Only when the URL changed: a refresh must not undo what the user is typing or choosing.
  if (syncedHash === location.hash) return;
  syncedHash = location.hash;
  for (const k of ["queue", "state", "topic", "key", "group", "id", "error"]) form.elements.namedItem(k).value = f[k] || "";
}
$("#message-filters").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const params = { view: "messages", limit: hashState().get("limit") };
  for (const [k, v] of f.entries()) params[k] = String(v).trim();
  cursors = [];
  setHash(params);
  refresh().catch(showError);
});
$("#page-next").addEventListener("click", () => { if (nextCursor) { cursors.push(nextCursor); refresh().catch(showError); } });
$("#page-first").addEventListener("click", () => { cursors = []; refresh().catch(showError); });
async function renderMessages() {
  syncFilterForm();
  const f = messageFilter();
  const q = new URLSearchParams(f);
  const after = cursors[cursors.length - 1];
  if (after) q.set("after", after);
  const page = await api("messages?" + q.toString());
  nextCursor = page.next;
  $("#page-next").disabled = !page.next;
  $("#page-first").disabled = cursors.length === 0;
  $("#page-info").textContent = "page " + (cursors.length + 1);
  $("#messages-count").textContent = (f.queue ? "queue " + f.queue : "outbox") + (f.state ? ", " + f.state : "");
  $('[data-testid="message-bulk"]').hidden = !can("actions");
  const selected = hashState().get("message");
  const now = Date.now();
  fill("messages", page.messages.map((m) => {
    const state = el("td"); state.appendChild(el("span", m.state.replace("_", " "), "pill " + m.state));
    const tr = row([el("td", "\\u2026" + m.id.slice(-12), "mono"), el("td", m.topic, "mono"), el("td", m.key || "", "mono"), state, num(m.attempts),
      el("td", m.state === "retrying" || m.state === "scheduled" ? age(now - new Date(m.runAt).getTime()) : "-"),
      el("td", m.state === "in_flight" ? (m.lockedBy || "?") + " (" + age(new Date(m.lockedUntil).getTime() - now) + " left)" : "", "mono"),
      el("td", m.lastError || "", "err")]);
    tr.className = "clickable" + (m.id === selected ? " selected" : "");
    tr.dataset.id = m.id;
    tr.addEventListener("click", () => { const h = Object.fromEntries(hashState()); h.message = m.id; setHash(h); showMessage(m.id).catch(showError); });
    return tr;
  }), "no messages match", 8);
  if (selected) await showMessage(selected);
  else $('[data-testid="message-detail"]').hidden = true;
}
async function showMessage(id) {
  const m = await api("messages/" + encodeURIComponent(id));
  $('[data-testid="message-detail"]').hidden = false;
  $("#message-title").textContent = m.id;
  const body = $("#message-body");
  body.replaceChildren();
  const pending = m.copies.filter((c) => c.state !== "in_flight" && c.state !== "prepared");
  $("#message-actions").hidden = !(can("actions") && pending.length > 0);
  for (const c of m.copies) {
    body.appendChild(el("h3", c.queue ? "in queue " + c.queue : "in the outbox"));
    const dl = el("dl", null, "kv");
    const kv = (k, v) => { dl.appendChild(el("dt", k)); dl.appendChild(el("dd", v)); };
    kv("state", c.state.replace("_", " ")); kv("topic", c.topic); kv("key", c.key || "-"); kv("group", c.group || "-");
    kv("attempts", c.attempts); kv("last error", c.lastError || "-"); kv("runs at", new Date(c.runAt).toLocaleString());
    kv("published", new Date(c.createdAt).toLocaleString());
    if (c.lockedBy) kv("lease", c.lockedBy + " until " + time(c.lockedUntil));
    body.appendChild(dl);
    body.appendChild(el("h3", "headers"));
    body.appendChild(el("pre", JSON.stringify(c.headers, null, 2)));
    body.appendChild(el("h3", "payload"));
    const p = c.payloadHidden ? el("p", "hidden: your token lacks the payloads permission", "empty") : el("pre", JSON.stringify(c.payload, null, 2));
    p.dataset.testid = "message-payload";
    body.appendChild(p);
  }
  if (m.deadLetters.length) {
    body.appendChild(el("h3", "dead letters"));
    for (const d of m.deadLetters) body.appendChild(el("p", time(d.deadAt) + " " + (d.queue || "(outbox)") + ": " + d.reason + ", " + d.attempts + " attempts: " + d.error));
  }
  if (m.decisions.length) {
    body.appendChild(el("h3", "half-message decisions"));
    for (const d of m.decisions) body.appendChild(el("p", time(d.decidedAt || d.at) + " " + d.decision + " (" + d.source + (d.detail ? ": " + d.detail : "") + ")"));
  }
  if (m.handledBy.length) {
    body.appendChild(el("h3", "handled by"));
    for (const h of m.handledBy) body.appendChild(el("p", h.consumer + " at " + new Date(h.processedAt).toLocaleString()));
  }
  for (const tr of document.querySelectorAll('[data-testid="messages"] tbody tr')) tr.classList.toggle("selected", tr.dataset.id === id);
  const one = (c) => ({ queue: c.queue || undefined, id: m.id });
  for (const b of document.querySelectorAll("#message-actions button")) {
    b.onclick = async () => {
      const action = b.dataset.act;
      // The copy in the queue being browsed, else the first one waiting.
      const target = pending.find((c) => (c.queue || "") === (messageFilter().queue || "")) || pending[0];
      const filter = one(target);
      try {
        const preview = await post("messages/" + action, { filter, dryRun: true });
        const ok = await confirmAction({ title: action[0].toUpperCase() + action.slice(1) + " message?", text: { retry: "Makes it ready now.", cancel: "Moves it to the dead letters (it can be replayed later).", delete: "Deletes it for good." }[action], count: preview.affected, reason: action === "cancel", ok: action[0].toUpperCase() + action.slice(1) });
        if (ok) await act(() => post("messages/" + action, { filter, reason: ok.reason || undefined }), (r) => r.affected + " " + action + (action === "retry" ? "ed" : "d"));
      } catch (err) { showError(err); }
    };
  }
}
for (const action of ["retry", "cancel", "delete"]) {
  $('[data-act="bulk-' + action + '"]').addEventListener("click", async () => {
    try {
      const f = messageFilter();
      const filter = { queue: f.queue, state: f.state, topic: f.topic, key: f.key, group: f.group, id: f.id, errorContains: f.error };
      const preview = await post("messages/" + action, { filter, dryRun: true });
      const ok = await confirmAction({ title: action[0].toUpperCase() + action.slice(1) + " matching messages?", text: "Every pending message matching the filter above" + (preview.more ? " (the first batch)" : "") + "; messages in flight are left alone.", count: preview.affected, reason: action === "cancel", ok: action[0].toUpperCase() + action.slice(1) });
      if (ok) await act(() => post("messages/" + action, { filter, reason: ok.reason || undefined }), (r) => r.affected + " affected");
    } catch (err) { showError(err); }
  });
}

// ---- needs attention ----
async function renderAttention() {
  const a = await api("attention");
  $("#attention-count").textContent = a.total + " item(s)";
  const body = $("#attention-body");
  body.replaceChildren();
  const list = (title, items, line) => {
    if (!items || items.length === 0) return;
    body.appendChild(el("h3", title + " (" + items.length + ")"));
    const ul = el("ul");
    for (const i of items) { const li = el("li"); line(li, i); ul.appendChild(li); }
    body.appendChild(ul);
  };
  const msgLink = (li, m, text) => { const a = el("a", text); a.href = "#view=messages&queue=" + encodeURIComponent(m.queue || "") + "&message=" + m.id; li.appendChild(a); };
  if (a.vacuum && a.vacuum.blocked) body.appendChild(el("p", "Vacuum is blocked" + (a.vacuum.holder ? " by " + (a.vacuum.holder.kind) + " for " + age(a.vacuum.holder.ageMs) : ""), "err"));
  list("in flight beyond their lease", a.leaseExpired, (li, m) => msgLink(li, m, m.queue + " " + m.topic + " " + m.id + " held by " + m.lockedBy));
  list("near their last attempt", a.nearMaxAttempts, (li, m) => msgLink(li, m, m.queue + " " + m.topic + " " + m.id + ": " + m.attempts + " attempts, " + (m.lastError || "")));
  list("sagas past their deadline", a.sagasPastDeadline, (li, s) => { const l = el("a", s.type + " " + s.id + " (" + s.status + ", step " + s.step + ") overdue " + age(s.overdueMs)); l.href = "#view=overview&saga=" + s.id; li.appendChild(l); });
  list("half messages past their check", a.halfMessagesPastCheck, (li, m) => li.appendChild(el("span", m.topic + " " + m.id + ", " + m.checks + " checks")));
  if (a.total === 0) body.appendChild(el("p", "Nothing needs attention.", "empty"));
}

// ---- refresh loop ----
function showError(err) { notice(err.message); }
async function refresh() {
  if (!me) return;
  const view = currentView();
  for (const m of document.querySelectorAll("main")) m.hidden = m.dataset.view !== view;
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.dataset.view === view);
  if (view === "overview" || !overviewData) { overviewData = await api("overview"); renderOverview(overviewData); }
  if (view === "overview") {
    const saga = hashState().get("saga");
    if (saga) await showSaga(saga); else $('[data-testid="saga-detail"]').hidden = true;
  } else if (view === "messages") await renderMessages();
  else if (view === "attention") await renderAttention();
  $("#updated").textContent = new Date().toLocaleTimeString();
  document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
}
function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    if (!paused && me && !$("#confirm").open) { try { await refresh(); } catch (err) { showError(err); } }
    schedule();
  }, REFRESH_MS);
}
$("#refresh-toggle").addEventListener("click", () => {
  paused = !paused;
  $("#refresh-toggle").textContent = paused ? "Resume refresh" : "Pause refresh";
  $("#refresh-toggle").dataset.paused = String(paused);
  if (!paused) refresh().catch(showError);
});
window.addEventListener("hashchange", () => { cursors = []; refresh().catch(showError); });

async function start() {
  const s = await fetch("api/session", { credentials: "same-origin" });
  if (s.status === 401) { showLogin(); return; }
  if (!s.ok) { notice((await s.json().catch(() => ({}))).error || s.statusText); return; }
  me = await s.json();
  $("#login").hidden = true;
  $('[data-testid="nav"]').hidden = false;
  $("#refresh-toggle").hidden = false;
  $("#sign-out").hidden = !me.loginRequired;
  $("#who").textContent = me.name + " (" + me.permissions.join(", ") + ")";
  document.body.dataset.permissions = me.permissions.join(" ");
  $('[data-testid="dead-bulk-replay"]').hidden = !can("actions");
  $('[data-testid="dead-bulk-purge"]').hidden = !can("actions");
  await refresh().catch(showError);
  schedule();
}
(async () => {
  // A link with #token=... (printed by 'sagabox dashboard') signs in once; the token leaves the URL at once.
  const h = hashState();
  const token = h.get("token");
  if (token) {
    h.delete("token");
    history.replaceState(null, "", "#" + h.toString());
    await signIn(token).catch((err) => { $("#login-error").textContent = err.message; });
  }
  await start();
})();
`;
