/**
 * The Messages and Needs attention views' part of the page script: filters kept in the
 * URL, cursor paging, one message whole, and the message actions (one or by filter).
 * Runs in the page, after the helpers of `dashboard-script.ts`.
 */
export const MESSAGES_SCRIPT = `
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
      errorCell(m.lastError)]);
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
    kv("attempts", c.attempts); kv("runs at", new Date(c.runAt).toLocaleString());
    kv("published", new Date(c.createdAt).toLocaleString());
    if (c.lockedBy) kv("lease", c.lockedBy + " until " + time(c.lockedUntil));
    body.appendChild(dl);
    if (c.lastError) { body.appendChild(el("h3", "last error")); body.appendChild(el("pre", c.lastError)); }
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

`;
