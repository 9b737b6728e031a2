import { createHash } from 'node:crypto';
import { DASHBOARD_CSS } from './dashboard-style.js';
import { DASHBOARD_SCRIPT } from './dashboard-script.js';

/**
 * The dashboard page: one self-contained HTML document (no build step, no external
 * assets). Every URL in it is relative (`api/...`), so it works under any mount path
 * ending in `/`. It renders with `textContent` only, so nothing read from the
 * database is ever interpreted as HTML.
 */
export function dashboardPage(settings: { refreshMs: number }): { html: string; contentSecurityPolicy: string } {
  const script = `
"use strict";
const REFRESH_MS = ${JSON.stringify(settings.refreshMs)};
${DASHBOARD_SCRIPT}
`;
  // Only this script and this stylesheet may run: were anything read from the database
  // ever to reach the page as markup, the browser would still refuse to run it.
  const hash = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
  const contentSecurityPolicy = [
    "default-src 'none'", `script-src ${hash(script)}`, `style-src ${hash(DASHBOARD_CSS)}`, "connect-src 'self'",
    "img-src 'self'", "form-action 'self'", "base-uri 'none'", "frame-ancestors 'none'",
  ].join('; ');
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sagabox dashboard</title>
<style>${DASHBOARD_CSS}</style>
</head>
<body>
<header>
  <h1>sagabox</h1>
  <nav data-testid="nav" hidden>
    <a href="#view=overview" data-view="overview">Overview</a>
    <a href="#view=messages" data-view="messages">Messages</a>
    <a href="#view=attention" data-view="attention">Needs attention</a>
  </nav>
  <div class="right">
    <span id="notice" data-testid="notice"></span>
    <span class="muted">updated <span id="updated">-</span></span>
    <button type="button" class="secondary" data-testid="refresh-toggle" id="refresh-toggle" hidden>Pause refresh</button>
    <span class="muted" id="who" data-testid="who"></span>
    <button type="button" class="secondary" data-testid="sign-out" id="sign-out" hidden>Sign out</button>
  </div>
</header>
<section id="login" data-testid="login" hidden>
  <h2>Sign in</h2>
  <form id="login-form">
    <label for="login-token">Dashboard token</label>
    <input id="login-token" name="token" type="password" autocomplete="current-password" required data-testid="login-token">
    <button type="submit" data-testid="login-submit">Sign in</button>
    <div id="login-error" data-testid="login-error"></div>
  </form>
</section>

<main data-view="overview" hidden>
  <p id="vacuum-warning" data-testid="vacuum-warning" hidden></p>
  <div class="cards">
    <div class="card"><div class="label">Outbox ready</div><div class="value" data-testid="outbox-ready">-</div></div>
    <div class="card"><div class="label">Relay lag</div><div class="value" data-testid="relay-lag">-</div></div>
    <div class="card"><div class="label">Half messages</div><div class="value" data-testid="outbox-prepared">-</div></div>
    <div class="card"><div class="label">Dead letters</div><div class="value" data-testid="dead-total">-</div></div>
    <div class="card"><div class="label">Sagas running</div><div class="value" data-testid="sagas-running">-</div></div>
  </div>
  <section class="wide">
    <h2>Queues <span class="count" id="queues-count"></span></h2>
    <div class="scroll"><table data-testid="queues"><thead><tr><th>queue</th><th class="num">ready</th><th class="num">in flight</th><th class="num">retrying</th><th class="num">scheduled</th><th class="num">dead</th><th class="num">oldest</th><th class="num">backlog / s</th><th></th></tr></thead><tbody></tbody></table></div>
  </section>
  <section class="wide">
    <h2>Dead letters <span class="count" id="dead-count"></span></h2>
    <form class="filters" id="dead-filters" data-testid="dead-filters">
      <label>queue <input name="queue" placeholder="any"></label>
      <label>topic <input name="topic" placeholder="any"></label>
      <label>reason <input name="reason" placeholder="any"></label>
      <button type="submit" class="secondary">Filter</button>
      <button type="button" data-act="bulk-replay" data-testid="dead-bulk-replay">Replay matching</button>
      <button type="button" class="danger" data-act="bulk-purge" data-testid="dead-bulk-purge">Purge matching</button>
    </form>
    <div class="scroll"><table data-testid="dead-letters"><thead><tr><th>id</th><th>queue</th><th>topic</th><th>reason</th><th class="num">attempts</th><th>died</th><th>error</th><th></th></tr></thead><tbody></tbody></table></div>
    <div class="pager"><button type="button" class="secondary" data-testid="dead-page-first" id="dead-page-first">First page</button><button type="button" class="secondary" data-testid="dead-page-next" id="dead-page-next">Next page</button><span class="count" id="dead-page-info"></span></div>
  </section>
  <section>
    <h2>Half messages awaiting check <span class="count" id="half-count"></span></h2>
    <div class="scroll"><table data-testid="half-messages"><thead><tr><th>id</th><th>topic</th><th class="num">checks</th><th>next check</th><th class="num">age</th><th></th></tr></thead><tbody></tbody></table></div>
  </section>
  <section>
    <h2>Sagas <span class="count" id="sagas-count"></span></h2>
    <div class="statuses" data-testid="saga-statuses"></div>
    <div class="scroll"><table data-testid="sagas"><thead><tr><th>id</th><th>type</th><th>status</th><th class="num">step</th><th>updated</th></tr></thead><tbody></tbody></table></div>
  </section>
  <section class="wide" data-testid="saga-detail" hidden>
    <h2>Saga <span class="mono" id="saga-title"></span> <span id="saga-status"></span>
      <button type="button" data-testid="saga-retry" id="saga-retry" hidden>Retry</button>
      <button type="button" class="danger" data-testid="saga-cancel" id="saga-cancel" hidden>Cancel saga</button></h2>
    <div id="saga-error" class="err"></div>
    <dl class="kv" id="saga-pending" data-testid="saga-pending"></dl>
    <ol class="timeline" data-testid="timeline"></ol>
  </section>
</main>

<main data-view="messages" hidden>
  <section class="wide">
    <h2>Messages <span class="count" id="messages-count"></span></h2>
    <form class="filters" id="message-filters" data-testid="message-filters">
      <label>where <select name="queue" data-testid="filter-queue"><option value="">outbox</option></select></label>
      <label>state <select name="state" data-testid="filter-state"><option value="">any</option><option>ready</option><option>in_flight</option><option>retrying</option><option>scheduled</option><option>prepared</option></select></label>
      <label>topic <input name="topic" data-testid="filter-topic"></label>
      <label>key <input name="key" data-testid="filter-key"></label>
      <label>group <input name="group" data-testid="filter-group"></label>
      <label>id <input name="id" data-testid="filter-id"></label>
      <label>error contains <input name="error" data-testid="filter-error"></label>
      <button type="submit" data-testid="filter-apply">Show</button>
      <span data-needs="actions" data-testid="message-bulk" hidden>
        <button type="button" class="secondary" data-act="bulk-retry" data-testid="bulk-retry">Retry matching</button>
        <button type="button" class="danger" data-act="bulk-cancel" data-testid="bulk-cancel">Cancel matching</button>
        <button type="button" class="danger" data-act="bulk-delete" data-testid="bulk-delete">Delete matching</button>
      </span>
    </form>
    <div class="scroll"><table data-testid="messages"><thead><tr><th>id</th><th>topic</th><th>key</th><th>state</th><th class="num">attempts</th><th>runs at</th><th>held by</th><th>last error</th></tr></thead><tbody></tbody></table></div>
    <div class="pager"><button type="button" class="secondary" data-testid="page-first" id="page-first">First page</button><button type="button" class="secondary" data-testid="page-next" id="page-next">Next page</button><span class="count" id="page-info"></span></div>
  </section>
  <section class="wide" data-testid="message-detail" hidden>
    <h2>Message <span class="mono" id="message-title"></span>
      <span data-needs="actions" id="message-actions" hidden>
        <button type="button" data-act="retry" data-testid="message-retry">Retry now</button>
        <button type="button" class="danger" data-act="cancel" data-testid="message-cancel">Cancel</button>
        <button type="button" class="danger" data-act="delete" data-testid="message-delete">Delete</button>
      </span></h2>
    <div id="message-body"></div>
  </section>
</main>

<main data-view="attention" hidden>
  <section class="wide" data-testid="attention">
    <h2>Needs attention <span class="count" id="attention-count"></span></h2>
    <div id="attention-body"></div>
  </section>
</main>

<dialog id="confirm" data-testid="confirm-dialog">
  <form method="dialog">
    <h2 id="confirm-title"></h2>
    <p id="confirm-text" data-testid="confirm-text"></p>
    <p data-testid="confirm-count" id="confirm-count" hidden></p>
    <label id="confirm-reason-label" hidden>Reason<br><textarea id="confirm-reason" rows="2" data-testid="confirm-reason"></textarea></label>
    <div class="buttons">
      <button type="submit" value="cancel" class="secondary" data-testid="confirm-cancel">Cancel</button>
      <button type="submit" value="ok" class="danger" data-testid="confirm-ok" id="confirm-ok">Confirm</button>
    </div>
  </form>
</dialog>
<script>${script}</script>
</body>
</html>
`;
  return { html, contentSecurityPolicy };
}
