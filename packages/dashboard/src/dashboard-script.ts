import { MESSAGES_SCRIPT } from './messages-script.js';
import { OVERVIEW_SCRIPT } from './overview-script.js';

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
/** An error in a table: its first line, cut at 160 characters (stacks are long); the whole text on hover and in the detail. */
function errorCell(text) {
  const first = (text || "").split("\\n")[0];
  const td = el("td", first.length > 160 ? first.slice(0, 159) + "\\u2026" : first, "err");
  if (text) td.title = text;
  return td;
}
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
// Chromium drops a click whose pressed element leaves the document before the release,
// so a refresh must not swap out what is under the pointer: a row that shows the same item
// (the same attributes) is patched in place, down to its text, and only elements that
// changed are replaced. Kept elements keep their listeners, which act on the item the
// row's attributes name.
function fill(testid, rows, emptyText, colspan) {
  const body = $('[data-testid="' + testid + '"] tbody');
  if (rows.length === 0) { const td = el("td", emptyText, "empty"); td.colSpan = colspan; rows = [row([td])]; }
  patchChildren(body, rows);
}
function patchChildren(parent, next) {
  const old = Array.from(parent.childNodes);
  next.forEach((n, i) => { if (old[i]) patch(old[i], n); else parent.appendChild(n); });
  for (const gone of old.slice(next.length)) gone.remove();
}
function patch(was, now) {
  if (was.nodeType === Node.TEXT_NODE && now.nodeType === Node.TEXT_NODE) { if (was.data !== now.data) was.data = now.data; }
  else if (was.nodeType !== Node.ELEMENT_NODE || !was.cloneNode(false).isEqualNode(now.cloneNode(false))) was.replaceWith(now);
  else patchChildren(was, Array.from(now.childNodes));
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

${OVERVIEW_SCRIPT}
${MESSAGES_SCRIPT}
// ---- refresh loop ----
function showError(err) { notice(err.message); }
async function refresh() {
  if (!me) return;
  const view = currentView();
  for (const m of document.querySelectorAll("main")) m.hidden = m.dataset.view !== view;
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.dataset.view === view);
  if (view === "overview" || !overviewData) {
    // Fetched together and drawn at once, so the overview never shows half its lists.
    const [o, dead] = await Promise.all([api("overview"), view === "overview" ? loadDeadLetters() : null]);
    overviewData = o;
    renderOverview(o);
    if (dead) renderDeadLetters(dead);
  }
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
