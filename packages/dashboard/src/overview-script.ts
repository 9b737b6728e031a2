/**
 * The overview's part of the page script: cards, queues (pause, resume), dead letters
 * (replay one, replay or purge by filter), half messages (commit, roll back) and
 * sagas with a saga's timeline (retry, cancel). Runs in the page, after the helpers of
 * `dashboard-script.ts`.
 */
export const OVERVIEW_SCRIPT = `
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
    // Of ready: a group's messages past its groupMaxInFlight window and a hot key's past its first four, out of the claims' way.
    const ready = num(q.ready);
    if (q.held > 0) {
      const held = el("span", " " + q.held + " held", "pill held");
      held.title = "messages of groups past their groupMaxInFlight window or of hot keys past their first four: they wait outside the claims' index until the earlier ones are claimed";
      held.dataset.testid = "queue-held";
      ready.appendChild(held);
    }
    const tr = row([name, ready, num(q.inFlight), num(q.retrying), num(q.scheduled), num(q.dead), num(age(q.oldestAgeMs)), trend, actions]);
    tr.dataset.queue = q.queue;
    if (q.pausedAt) tr.dataset.paused = "true";
    return tr;
  }), "no queues yet", 9);

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
async function showSaga(id) {
  const saga = await api("sagas/" + encodeURIComponent(id));
  $('[data-testid="saga-detail"]').hidden = false;
  $("#saga-title").textContent = saga.id + " (" + saga.type + " v" + saga.version + ")";
  $("#saga-status").replaceChildren(el("span", saga.status, "pill " + saga.status));
  $("#saga-error").textContent = saga.error || "";
  const pending = $("#saga-pending");
  pending.replaceChildren();
  const kv = (k, v) => { if (v !== undefined && v !== null) { pending.appendChild(el("dt", k)); pending.appendChild(el("dd", v)); } };
  // waitingOn and lastFailure come from getSaga; waitedMs and overdueMs are as of the read.
  const w = saga.waitingOn;
  if (w) {
    kv("waiting on", w.step + (w.kind === "compensation" ? " (compensation)" : ""));
    kv("command", (w.topic || "?") + " (attempt " + w.attempt + ")");
    kv("sent", new Date(w.sentAt).toLocaleString());
    kv("waited", age(w.waitedMs));
    if (w.deadline) {
      const left = new Date(w.deadline).getTime() - (new Date(w.sentAt).getTime() + w.waitedMs);
      kv("deadline", new Date(w.deadline).toLocaleString() + (w.overdueMs > 0 ? " (overdue by " + age(w.overdueMs) + ")" : " (in " + age(left) + ")"));
    }
  }
  const f = saga.lastFailure;
  if (f) kv("last failure", f.step + " " + f.event.replace(/_/g, " ") + (f.reason ? ": " + f.reason : "") + " at " + time(f.at));
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
// Dead letters page by cursor like the messages: deadCursors holds the 'before' of each
// page shown after the first, for paging back. The list shows the filter last submitted,
// so a refresh does not filter by what is still being typed.
let deadCursors = [];
let deadNext = null;
let deadShown = {};
function loadDeadLetters() {
  const q = new URLSearchParams(deadShown);
  const before = deadCursors[deadCursors.length - 1];
  if (before) q.set("before", before);
  return api("dead-letters?" + q.toString());
}
function renderDeadLetters(page) {
  deadNext = page.next;
  $("#dead-page-next").disabled = !page.next;
  $("#dead-page-first").disabled = deadCursors.length === 0;
  $("#dead-page-info").textContent = "page " + (deadCursors.length + 1);
  $("#dead-count").textContent = page.deadLetters.length + " shown, newest first";
  fill("dead-letters", page.deadLetters.map((d) => {
    const actions = el("td", null, "actions");
    if (can("actions")) actions.appendChild(button("Replay", "", async () => {
      const ok = await confirmAction({ title: "Replay dead letter " + d.deadId + "?", text: "It goes back to " + (d.queue ? "queue " + d.queue : "the outbox") + " with its attempts reset, and is handled again.", ok: "Replay" });
      if (ok) await act(() => post("dead-letters/" + encodeURIComponent(d.deadId) + "/replay"));
    }, "dead-replay"));
    const idCell = el("td", null, "mono");
    const link = el("a", d.deadId); link.href = "#view=messages&message=" + d.id; idCell.appendChild(link);
    const tr = row([idCell, el("td", d.queue || "(outbox)", "mono"), el("td", d.topic, "mono"), el("td", d.reason), num(d.attempts), el("td", time(d.deadAt)), errorCell(d.error), actions]);
    tr.dataset.deadId = d.deadId;
    return tr;
  }), "no dead letters", 8);
}
$("#dead-page-next").addEventListener("click", () => { if (deadNext) { deadCursors.push(deadNext); refresh().catch(showError); } });
$("#dead-page-first").addEventListener("click", () => { deadCursors = []; refresh().catch(showError); });
function deadFilter() {
  const f = new FormData($("#dead-filters"));
  const out = {};
  for (const k of ["queue", "topic", "reason"]) if (f.get(k)) out[k] = String(f.get(k));
  return out;
}
$("#dead-filters").addEventListener("submit", (ev) => { ev.preventDefault(); deadShown = deadFilter(); deadCursors = []; refresh().catch(showError); });
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

`;
