// End to end: the dashboard page in a real headless Chromium (Debian's `chromium`
// package driven by playwright-core; no browser download), mounted under /ops of a
// plain node:http app, against a seeded database.
// The callbacks given to evaluate() run in the page: the DOM's types, for this file's sake.
/// <reference lib="dom" />
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createRelay, publish } from '@sagabox/core';
import { halfMessageHistory, listDeadLetters, listHalfMessages, listMessages, outboxStats, queueStats, setQueueLimits } from '@sagabox/core/admin';
import { countSagas, getSaga } from '@sagabox/saga';
import { createDashboardHandler } from '@sagabox/dashboard';
import { useDatabase } from '../support/test-pool.js';
import { seedDashboard } from '../support/seed-dashboard.js';
import { waitFor } from '../support/wait-for.js';

const CHROMIUM = process.env.SAGABOX_CHROMIUM_PATH ?? '/usr/bin/chromium';
// The screenshots in docs/ are rewritten only on request (SAGABOX_UPDATE_SCREENSHOTS=1), so
// a test run leaves the checkout clean; otherwise they go to test/.tmp-screenshots/.
const DOCS = (name: string): string =>
  fileURLToPath(new URL(process.env.SAGABOX_UPDATE_SCREENSHOTS === '1' ? `../../docs/${name}` : `../.tmp-screenshots/${name}`, import.meta.url));

const { pool, count } = await useDatabase();
const p = pool(6);
let browser: Browser | undefined;
let server: http.Server | undefined;
let base: string;
let page: Page;
let seed: Awaited<ReturnType<typeof seedDashboard>>;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `the dashboard browser test needs Chromium at ${CHROMIUM}: install Debian's package (apt-get install -y chromium), ` +
        'or point SAGABOX_CHROMIUM_PATH at another build',
    );
  }
  seed = await seedDashboard(p);
  // A queue whose one tenant is past its group limit's window: 2 of its 5 in the claims' index, 3 held.
  await setQueueLimits(p, 'tenants', { groupMaxInFlight: 1 });
  await publish(p, Array.from({ length: 5 }, (_, n) => ({ topic: 'shop.tenant', payload: { n }, group: 'acme' })));
  const relay = createRelay({ pool: p, routes: [{ topic: 'shop.tenant', queue: 'tenants' }], listen: false });
  while ((await relay.runOnce()) > 0);
  const dashboard = createDashboardHandler({
    pool: p, basePath: '/ops', refreshMs: 300,
    tokens: [
      { name: 'viewer', token: 'viewer-token-1', permissions: [] },
      { name: 'oncall', token: 'oncall-token-1', permissions: ['payloads', 'actions'] },
    ],
  });
  server = http.createServer((req, res) => (/^\/ops(\/|\?|$)/.test(req.url!) ? dashboard(req, res) : res.end('the shop')));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  if (server) await new Promise<void>((resolve) => { server!.close(() => resolve()); server!.closeAllConnections(); });
});

const text = async (selector: string): Promise<string> => (await page.locator(selector).first().textContent())?.trim() ?? '';
const cells = async (selector: string): Promise<string[]> => (await page.locator(`${selector} td`).allTextContents()).map((t) => t.trim());
const testid = (id: string): string => `[data-testid="${id}"]`;

async function signIn(token: string): Promise<void> {
  await page.locator(testid('login-token')).fill(token);
  await page.locator(testid('login-submit')).click();
}
async function signOutAndIn(token: string): Promise<void> {
  await page.locator(testid('sign-out')).click();
  await page.locator(testid('login')).waitFor({ state: 'visible' });
  await signIn(token);
  await page.locator(testid('who')).filter({ hasText: token.split('-')[0]! }).waitFor();
}
/** Opens the confirmation of `trigger`, checks it, then cancels or confirms it. */
async function confirm(trigger: string, answer: 'cancel' | 'ok', expectCount?: number): Promise<void> {
  await page.locator(trigger).first().click();
  const dialog = page.locator(testid('confirm-dialog'));
  await dialog.waitFor({ state: 'visible' });
  if (expectCount !== undefined) expect(await page.locator(testid('confirm-count')).getAttribute('data-count')).toBe(String(expectCount));
  await page.locator(testid(answer === 'ok' ? 'confirm-ok' : 'confirm-cancel')).click();
  await dialog.waitFor({ state: 'hidden' });
}

describe('dashboard in headless Chromium, under /ops of an app', () => {
  it('asks for a token with a form (no prompt), refuses a wrong one, then shows the numbers the database holds', async () => {
    page.on('dialog', (d) => { throw new Error(`unexpected ${d.type()} dialog: ${d.message()}`); });
    await page.goto(`${base}/ops`);
    expect(page.url()).toBe(`${base}/ops/`);
    await page.locator(testid('login')).waitFor({ state: 'visible' });
    await signIn('nope-nope-nope');
    await waitFor('the refusal', async () => (await text(testid('login-error'))) === 'unknown token', 10_000);
    await signIn('viewer-token-1');
    await page.locator('tr[data-queue="orders"]').waitFor();
    expect(await text(testid('who'))).toBe('viewer (read)');
    for (const q of await queueStats(p)) {
      const [name, ready, inFlight, retrying, scheduled, dead] = await cells(`tr[data-queue="${q.queue}"]`);
      expect({ name, ready, inFlight, retrying, scheduled, dead }).toEqual({
        name: q.queue, ready: q.held > 0 ? `${q.ready} ${q.held} held` : String(q.ready),
        inFlight: String(q.inFlight), retrying: String(q.retrying), scheduled: String(q.scheduled), dead: String(q.dead),
      });
    }
    expect(await text(`tr[data-queue="tenants"] ${testid('queue-held')}`)).toBe('3 held');
    const outbox = await outboxStats(p);
    expect(await text(testid('outbox-ready'))).toBe(String(outbox.ready));
    expect(await text(testid('outbox-prepared'))).toBe(String(outbox.prepared));
    expect(await text(testid('dead-total'))).toBe('2');
    expect(await page.locator(`${testid('dead-letters')} tr[data-dead-id]`).count()).toBe((await listDeadLetters(p)).length);
    expect(await page.locator(`${testid('dead-letters')} td.err`).first().textContent()).toMatch(/^card declined for invoice/);
    expect(await page.locator(`${testid('half-messages')} tbody tr`).count()).toBe((await listHalfMessages(p)).length);
    for (const c of await countSagas(p)) {
      expect(await page.locator(`${testid('saga-statuses')} [data-status="${c.status}"]`).getAttribute('data-count')).toBe(String(c.count));
    }
    expect(await text(testid('sagas-running'))).toBe('2');
    // A read-only token gets no action buttons (and the server refuses them anyway: access.test.ts);
    // the pagers' buttons only move through a list.
    expect(await page.locator('main[data-view="overview"] :not(.pager) > button:visible:not([type=submit])').count()).toBe(0);
    expect(await page.locator(testid('dead-page-next')).isDisabled()).toBe(true);
  });

  it('shows the step timeline of a saga, and the saga in the URL', async () => {
    await page.locator(`tr[data-id="${seed.compensatedSagaId}"]`).click();
    const timeline = page.locator(`${testid('timeline')} li`);
    await waitFor('the timeline', async () => (await timeline.count()) > 0, 10_000);
    const saga = await getSaga(p, seed.compensatedSagaId);
    expect(await timeline.evaluateAll((lis) => lis.map((li) => (li as HTMLElement).dataset.event))).toEqual(saga!.history.map((e) => `${e.step}:${e.event}`));
    expect(await text('#saga-error')).toBe('payment says no');
    expect(new URL(page.url()).hash).toBe(`#view=overview&saga=${seed.compensatedSagaId}`);
  });

  it('browses messages from a deep link, a page at a time past any fixed window, and hides payloads without the permission', async () => {
    const all = (await listMessages(p, { queue: 'orders' })).messages.map((m) => m.id);
    expect(all).toHaveLength(4);
    await page.goto(`${base}/ops/#view=messages&queue=orders&limit=3`);
    const rows = page.locator(`${testid('messages')} tbody tr[data-id]`);
    await waitFor('the first page', async () => (await rows.count()) === 3, 10_000);
    expect(await rows.evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.id))).toEqual(all.slice(0, 3));
    await page.locator(testid('page-next')).click();
    await waitFor('the second page', async () => (await rows.count()) === 1, 10_000);
    expect(await rows.first().getAttribute('data-id')).toBe(all[3]);
    expect(await page.locator(testid('page-next')).isDisabled()).toBe(true);
    await page.locator(testid('page-first')).click();
    await waitFor('the first page again', async () => (await rows.count()) === 3, 10_000);

    // Filters land in the URL; a state filter shows only those.
    await page.locator(testid('filter-state')).selectOption('scheduled');
    await page.locator(testid('filter-apply')).click();
    await waitFor('the scheduled message', async () => (await rows.count()) === 1, 10_000);
    expect(new URL(page.url()).hash).toBe('#view=messages&limit=3&queue=orders&state=scheduled');
    await rows.first().click();
    await page.locator(testid('message-detail')).waitFor({ state: 'visible' });
    expect(await text(testid('message-payload'))).toBe('hidden: your token lacks the payloads permission');
    expect(new URL(page.url()).hash).toMatch(/&message=[0-9a-f-]{36}$/);

    // The same link, signed in with the payloads permission, shows it.
    await signOutAndIn('oncall-token-1');
    await page.goto(page.url());
    await page.reload();
    await page.locator(testid('message-payload')).waitFor();
    await waitFor('the payload', async () => (await text(testid('message-payload'))).replace(/\s/g, '') === '{"n":4}', 10_000);
    await page.screenshot({ path: DOCS('dashboard-messages.png'), fullPage: true });
  });

  it('pauses a queue only once confirmed, and resumes it', async () => {
    await page.goto(`${base}/ops/#view=overview`);
    const pause = 'tr[data-queue="orders"] [data-testid="queue-pause"]';
    await page.locator(pause).waitFor();
    await page.locator(`${testid('dead-letters')} tr[data-dead-id]`).first().waitFor();
    await page.screenshot({ path: DOCS('dashboard.png'), fullPage: true });
    await confirm(pause, 'cancel');
    expect((await queueStats(p, { queues: ['orders'] }))[0]!.pausedAt).toBeNull();
    // A press held across two refreshes still clicks: the refresh keeps the button.
    const box = (await page.locator(pause).boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    const refreshes = async () => Number(await page.locator('body').getAttribute('data-refreshes'));
    const before = await refreshes();
    await waitFor('two refreshes', async () => (await refreshes()) >= before + 2, 10_000);
    await page.mouse.up();
    await page.locator(testid('confirm-dialog')).waitFor({ state: 'visible', timeout: 5_000 });
    await page.locator(testid('confirm-cancel')).click();
    await page.locator(testid('confirm-dialog')).waitFor({ state: 'hidden' });
    await confirm(pause, 'ok');
    await page.locator('tr[data-queue="orders"][data-paused="true"]').waitFor({ timeout: 10_000 });
    expect((await queueStats(p, { queues: ['orders'] }))[0]!.pausedAt).not.toBeNull();
    await page.locator('tr[data-queue="orders"] [data-testid="queue-resume"]').click();
    await page.locator(pause).waitFor({ timeout: 10_000 });
    expect((await queueStats(p, { queues: ['orders'] }))[0]!.pausedAt).toBeNull();
  });

  it('replays one dead letter only once confirmed', async () => {
    const [dead] = await listDeadLetters(p, { queue: 'billing', limit: 1 });
    const replay = `tr[data-dead-id="${dead!.deadId}"] [data-testid="dead-replay"]`;
    await confirm(replay, 'cancel');
    expect(await count('SELECT count(*) AS n FROM sagabox.dead_letters WHERE dead_id = $1', [dead!.deadId])).toBe(1);
    await confirm(replay, 'ok');
    await page.locator(`tr[data-dead-id="${dead!.deadId}"]`).waitFor({ state: 'detached', timeout: 10_000 });
    expect(await count('SELECT count(*) AS n FROM sagabox.dead_letters WHERE dead_id = $1', [dead!.deadId])).toBe(0);
    expect(await count('SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = $1 AND id = $2 AND attempts = 0', ['billing', dead!.id])).toBe(1);
    await waitFor('billing to show it ready', async () => (await cells('tr[data-queue="billing"]'))[1] === '1', 10_000);
  });

  it('bulk-replays and bulk-purges dead letters by filter, showing the preview count, only once confirmed', async () => {
    // billing: one dead letter left from the seed, plus one more refused and one expired.
    await p.query(`INSERT INTO sagabox.dead_letters (source, queue, id, topic, payload, headers, reason, error, attempts, created_at)
                   VALUES ('queue', 'billing', gen_random_uuid(), 'shop.invoice', '{"n":7}', '{}', 'non_retryable', 'card declined for invoice 7', 1, now()),
                          ('queue', 'billing', gen_random_uuid(), 'shop.invoice', '{"n":8}', '{}', 'expired', 'expired', 0, now())`);
    const billingDead = () => count(`SELECT count(*) AS n FROM sagabox.dead_letters WHERE queue = 'billing'`);
    await page.locator(`${testid('dead-filters')} input[name="queue"]`).fill('billing');
    await confirm(testid('dead-bulk-purge'), 'cancel', 3);
    expect(await billingDead()).toBe(3);
    await page.locator(`${testid('dead-filters')} input[name="reason"]`).fill('non_retryable');
    await confirm(testid('dead-bulk-replay'), 'cancel', 2);
    expect(await billingDead()).toBe(3);
    await confirm(testid('dead-bulk-replay'), 'ok', 2);
    await waitFor('the replay', async () => (await billingDead()) === 1, 10_000);
    expect(await count(`SELECT count(*) AS n FROM sagabox.dead_letters WHERE reason = 'expired'`)).toBe(1);
    await page.locator(`${testid('dead-filters')} input[name="reason"]`).fill('');
    await confirm(testid('dead-bulk-purge'), 'ok', 1);
    await waitFor('the purge', async () => (await count(`SELECT count(*) AS n FROM sagabox.dead_letters`)) === 0, 10_000);
    await page.locator(`${testid('dead-letters')} tr[data-dead-id]`).first().waitFor({ state: 'detached', timeout: 10_000 });
  });

  it('cancels a running saga only once confirmed', async () => {
    const id = seed.runningSagaIds[0]!;
    const cancels = () => count(`SELECT count(*) AS n FROM sagabox.outbox WHERE headers->>'saga-id' = $1 AND payload->>'kind' = 'cancel'`, [id]);
    await page.locator(`tr[data-id="${id}"]`).click();
    await page.locator(testid('saga-cancel')).waitFor({ state: 'visible' });
    // What it waits on, from its history: the step, the command sent and when.
    const sent = (await getSaga(p, id))!.history.find((e) => e.event === 'command_sent')!;
    // Read from the list in one call: the page may render the saga again meanwhile
    // (a click and the hash both show it), replacing the list's children.
    const pending = Object.fromEntries(await page.locator(testid('saga-pending')).evaluate((dl) =>
      Array.from(dl.querySelectorAll('dt')).map((dt) => [dt.textContent, dt.nextElementSibling!.textContent])));
    expect(pending).toMatchObject({ 'waiting on': sent.step, command: `${(sent.detail as { topic: string }).topic} (attempt 1)`, waited: expect.stringMatching(/^\d/) });
    await confirm(testid('saga-cancel'), 'cancel');
    expect(await cancels()).toBe(0);
    await page.locator(testid('saga-cancel')).click();
    await page.locator(testid('confirm-reason')).fill('customer called');
    await page.locator(testid('confirm-ok')).click();
    await waitFor('the cancel request', async () => (await cancels()) === 1, 10_000);
  });

  it('retries, cancels and deletes one message from its detail only once confirmed', async () => {
    const openOne = async (hash: string, filter: { state?: 'scheduled'; key?: string }): Promise<string> => {
      const [m] = (await listMessages(p, { queue: 'orders', ...filter })).messages;
      await page.goto(`${base}/ops/${hash}`);
      await page.locator(`${testid('messages')} tr[data-id="${m!.id}"]`).click();
      await waitFor('its detail', async () => (await text('#message-title')) === m!.id, 10_000);
      await page.locator(`${testid('message-detail')} #message-actions`).waitFor({ state: 'visible' });
      return m!.id;
    };
    const where = (id: string) => count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'orders' AND id = $1 AND run_at <= now()`, [id]);

    const scheduled = await openOne('#view=messages&queue=orders&state=scheduled', { state: 'scheduled' });
    await confirm(testid('message-retry'), 'cancel', 1);
    expect(await where(scheduled)).toBe(0);
    await confirm(testid('message-retry'), 'ok', 1);
    await waitFor('the retry', async () => (await where(scheduled)) === 1, 10_000);

    const k1 = await openOne('#view=messages&queue=orders&key=k1', { key: 'k1' });
    await confirm(testid('message-cancel'), 'cancel', 1);
    expect(await where(k1)).toBe(1);
    await page.locator(testid('message-cancel')).click();
    await page.locator(testid('confirm-reason')).fill('address unknown');
    await page.locator(testid('confirm-ok')).click();
    await waitFor('the cancel', async () => (await where(k1)) === 0, 10_000);
    expect((await listDeadLetters(p, { queue: 'orders' }))[0]).toMatchObject({ id: k1, reason: 'cancelled', error: expect.stringMatching(/oncall.*address unknown/) });

    const k2 = await openOne('#view=messages&queue=orders&key=k2', { key: 'k2' });
    await confirm(testid('message-delete'), 'cancel', 1);
    expect(await where(k2)).toBe(1);
    await confirm(testid('message-delete'), 'ok', 1);
    await waitFor('the delete', async () => (await where(k2)) === 0, 10_000);
    expect(await count(`SELECT count(*) AS n FROM sagabox.dead_letters WHERE id = $1`, [k2])).toBe(0);
  });

  it('acts in bulk on the messages a filter matches, showing the preview count, only once confirmed', async () => {
    const pending = () => count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'orders'`);
    await page.goto(`${base}/ops/#view=messages&queue=orders&topic=shop.order`);
    await page.locator(testid('bulk-delete')).waitFor({ state: 'visible' });
    expect(await pending()).toBe(2);
    await confirm(testid('bulk-delete'), 'cancel', 2);
    expect(await pending()).toBe(2);
    await confirm(testid('bulk-cancel'), 'ok', 2);
    await waitFor('the bulk cancel', async () => (await pending()) === 0, 10_000);
    expect(await count(`SELECT count(*) AS n FROM sagabox.dead_letters WHERE queue = 'orders' AND reason = 'cancelled'`)).toBe(3);
  });

  it('commits and rolls back half messages by hand only once confirmed', async () => {
    await page.goto(`${base}/ops/#view=overview`);
    const [a, b] = await listHalfMessages(p);
    await page.locator(`tr[data-id="${a!.id}"] [data-testid="half-commit"]`).waitFor();
    await confirm(`tr[data-id="${a!.id}"] [data-testid="half-commit"]`, 'cancel');
    await confirm(`tr[data-id="${b!.id}"] [data-testid="half-rollback"]`, 'cancel');
    expect(await listHalfMessages(p)).toHaveLength(2);
    await confirm(`tr[data-id="${a!.id}"] [data-testid="half-commit"]`, 'ok');
    await page.locator(`tr[data-id="${a!.id}"]`).waitFor({ state: 'detached', timeout: 10_000 });
    await confirm(`tr[data-id="${b!.id}"] [data-testid="half-rollback"]`, 'ok');
    await page.locator(`tr[data-id="${b!.id}"]`).waitFor({ state: 'detached', timeout: 10_000 });
    expect(await listHalfMessages(p)).toEqual([]);
    expect((await halfMessageHistory(p, a!.id)).at(-1)).toMatchObject({ decision: 'commit', source: 'operator' });
    expect((await halfMessageHistory(p, b!.id)).at(-1)).toMatchObject({ decision: 'rollback', source: 'operator' });
  });

  it('retries a running saga only once confirmed', async () => {
    const id = seed.runningSagaIds[1]!;
    const retries = () => count(`SELECT count(*) AS n FROM sagabox.outbox WHERE headers->>'saga-id' = $1 AND payload->>'kind' = 'retry'`, [id]);
    await page.locator(`tr[data-id="${id}"]`).click();
    await page.locator(testid('saga-retry')).waitFor({ state: 'visible' });
    await confirm(testid('saga-retry'), 'cancel');
    expect(await retries()).toBe(0);
    await confirm(testid('saga-retry'), 'ok');
    await waitFor('the retry request', async () => (await retries()) === 1, 10_000);
  });

  it('lists what needs attention, linked to the message', async () => {
    const [m] = (await listMessages(p, { queue: 'billing' })).messages;
    await p.query(`UPDATE sagabox.queue_messages SET attempts = 9, last_error = 'gateway 503' WHERE queue = 'billing' AND id = $1`, [m!.id]);
    await page.locator('header nav a[data-view="attention"]').click();
    const link = page.locator(`${testid('attention')} a[href*="${m!.id}"]`);
    await link.waitFor({ timeout: 10_000 });
    expect(await link.textContent()).toContain('gateway 503');
    await link.click();
    await page.locator(testid('message-detail')).waitFor({ state: 'visible' });
    expect(await text('#message-title')).toBe(m!.id);
  });

  it('refreshes by itself, and not while paused', async () => {
    const ready = async (): Promise<number> => Number((await cells('tr[data-queue="orders"]'))[1]);
    await page.goto(`${base}/ops/#view=overview`);
    await waitFor('the overview', async () => (await ready()) === (await queueStats(p, { queues: ['orders'] }))[0]!.ready, 10_000);
    const before = await ready();
    await page.locator(testid('refresh-toggle')).click();
    expect(await text(testid('refresh-toggle'))).toBe('Resume refresh');
    await publish(p, { topic: 'shop.order', payload: { n: 7 } });
    const relay = createRelay({ pool: p, routes: [{ topic: 'shop.order', queue: 'orders' }], listen: false });
    while ((await relay.runOnce()) > 0);
    const refreshes = Number(await page.locator('body').getAttribute('data-refreshes'));
    await page.waitForTimeout(1_500); // five refresh periods: none may happen while paused
    expect(Number(await page.locator('body').getAttribute('data-refreshes'))).toBe(refreshes);
    expect(await ready()).toBe(before);
    await page.locator(testid('refresh-toggle')).click();
    await waitFor('the page to show the new message', async () => (await ready()) === before + 1, 10_000);
  });

  it('fits a phone (375 px wide): nothing wider than the screen, tables scroll in place', async () => {
    const phone = await browser!.newPage({ viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true });
    try {
      await phone.goto(`${base}/ops/#view=overview`);
      await phone.locator(testid('login-token')).fill('oncall-token-1');
      await phone.locator(testid('login-submit')).click();
      await phone.locator('tr[data-queue="orders"]').waitFor();
      expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
      for (const box of await phone.locator('section:visible, .card:visible, header').all()) {
        const b = (await box.boundingBox())!;
        expect(b.x + b.width).toBeLessThanOrEqual(375.5);
      }
      expect(await phone.locator(testid('nav')).isVisible()).toBe(true);
      await phone.screenshot({ path: DOCS('dashboard-phone.png'), fullPage: false });
    } finally {
      await phone.close();
    }
  });
});
