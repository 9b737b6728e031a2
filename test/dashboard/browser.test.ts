// End to end: the dashboard page in a real headless Chromium (Debian's `chromium`
// package driven by playwright-core; no browser download) against a seeded database.
import { copyFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createRelay, publish } from '@sagabox/core';
import { listDeadLetters, listHalfMessages, outboxStats, queueStats } from '@sagabox/core/admin';
import { countSagas, getSaga } from '@sagabox/saga';
import { serveDashboard, type DashboardServer } from '@sagabox/dashboard';
import { useDatabase } from '../support/test-pool.js';
import { seedDashboard } from '../support/seed-dashboard.js';
import { waitFor } from '../support/wait-for.js';

const CHROMIUM = process.env.SAGABOX_CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOT = fileURLToPath(new URL('../.tmp-dashboard.png', import.meta.url));
const DOCS_SCREENSHOT = fileURLToPath(new URL('../../docs/dashboard.png', import.meta.url));

const { pool, count } = await useDatabase();
const p = pool(6);
let browser: Browser | undefined;
let dashboard: DashboardServer | undefined;
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
  dashboard = await serveDashboard({ pool: p, port: 0, refreshMs: 300 });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await dashboard?.stop();
});

const text = async (selector: string): Promise<string> => (await page.locator(selector).first().textContent())?.trim() ?? '';
const cells = async (selector: string): Promise<string[]> => (await page.locator(`${selector} td`).allTextContents()).map((t) => t.trim());

describe('dashboard in headless Chromium', () => {
  it('shows the numbers the database holds', async () => {
    await page.goto(dashboard!.url);
    await page.locator('tr[data-queue="orders"]').waitFor();
    for (const q of await queueStats(p)) {
      const [name, ready, inFlight, delayed, dead] = await cells(`tr[data-queue="${q.queue}"]`);
      expect({ name, ready, inFlight, delayed, dead }).toEqual({ name: q.queue, ready: String(q.ready), inFlight: String(q.inFlight), delayed: String(q.delayed), dead: String(q.dead) });
    }
    const outbox = await outboxStats(p);
    expect(await text('[data-testid="outbox-ready"]')).toBe(String(outbox.ready));
    expect(await text('[data-testid="outbox-prepared"]')).toBe(String(outbox.prepared));
    expect(await text('[data-testid="dead-total"]')).toBe('2');
    expect(await page.locator('[data-testid="dead-letters"] tr[data-dead-id]').count()).toBe((await listDeadLetters(p)).length);
    expect(await page.locator('[data-testid="dead-letters"] td.err').first().textContent()).toMatch(/^card declined for invoice/);
    expect(await page.locator('[data-testid="half-messages"] tbody tr').count()).toBe((await listHalfMessages(p)).length);
    for (const c of await countSagas(p)) {
      expect(await page.locator(`[data-testid="saga-statuses"] [data-status="${c.status}"]`).getAttribute('data-count')).toBe(String(c.count));
    }
    expect(await text('[data-testid="sagas-running"]')).toBe('2');
  });

  it('shows the step timeline of a saga', async () => {
    await page.locator(`tr[data-id="${seed.compensatedSagaId}"]`).click();
    const timeline = page.locator('[data-testid="timeline"] li');
    await waitFor('the timeline', async () => (await timeline.count()) > 0, 10_000);
    const saga = await getSaga(p, seed.compensatedSagaId);
    expect(await timeline.evaluateAll((lis) => lis.map((li) => (li as HTMLElement).dataset.event))).toEqual(saga!.history.map((e) => `${e.step}:${e.event}`));
    expect(await text('#saga-error')).toBe('payment says no');
  });

  it('refreshes by itself', async () => {
    const before = Number(await text('tr[data-queue="orders"] td:nth-child(2)'));
    await publish(p, { topic: 'shop.order', payload: { n: 7 } });
    const relay = createRelay({ pool: p, routes: [{ topic: 'shop.order', queue: 'orders' }], listen: false });
    while ((await relay.runOnce()) > 0);
    await waitFor('the page to show the new message', async () => Number(await text('tr[data-queue="orders"] td:nth-child(2)')) === before + 1, 10_000);
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    if (process.env.SAGABOX_UPDATE_DOCS_SCREENSHOT === '1') await copyFile(SCREENSHOT, DOCS_SCREENSHOT);
  });

  it('replays a dead letter from the page back to its queue', async () => {
    const [dead] = await listDeadLetters(p, { queue: 'billing', limit: 1 });
    await page.locator(`tr[data-dead-id="${dead!.deadId}"] button`).click();
    await page.locator(`tr[data-dead-id="${dead!.deadId}"]`).waitFor({ state: 'detached', timeout: 10_000 });
    expect(await count('SELECT count(*) AS n FROM sagabox.dead_letters WHERE dead_id = $1', [dead!.deadId])).toBe(0);
    expect(await count('SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = $1 AND id = $2 AND attempts = 0', ['billing', dead!.id])).toBe(1);
    await waitFor('billing to show it ready', async () => (await cells('tr[data-queue="billing"]'))[1] === '1', 10_000);
    expect((await cells('tr[data-queue="billing"]'))[4]).toBe('1');
    expect(await text('#notice')).toBe('');
  });
});
