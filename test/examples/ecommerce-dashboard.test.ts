// The demo prints a link to the services' dashboards and serves them; with --chaos the
// dashboards show messages being retried while services are killed, and every queue
// drained once the orders are done.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait-for.js';

const DEMO = fileURLToPath(new URL('../../examples/ecommerce/dist/main.js', import.meta.url));
const SERVICES = ['orders', 'inventory', 'payments', 'shipping'];

interface QueueRow { queue: string; ready: number; inFlight: number; retrying: number }
interface MessageRow { id: string; state: string; attempts: number; lastError: string | null }

describe('the e-commerce demo with its dashboard', () => {
  it('prints the dashboard link, serves a dashboard per service, shows retries under chaos and empty queues after', async () => {
    expect(existsSync(DEMO), `${DEMO} is missing: run npm run build first`).toBe(true);
    const prefix = `ecommerce_dash_${randomBytes(4).toString('hex')}`;
    const child = spawn(process.execPath, [DEMO, '--orders', '30', '--chaos', '--seed', '11', '--failure-rate', '0.3', '--json', '--stay', '--db-prefix', prefix, '--timeout-s', '400'], {
      env: { ...process.env, DATABASE_URL: process.env.SAGABOX_TEST_DATABASE_URL },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const url = await waitFor('the dashboard link', () => /^dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/m.exec(stderr)?.[1], 120_000);
      expect(await (await fetch(url)).text()).toContain('<a href="payments/">payments</a>');
      for (const s of SERVICES) {
        const page = await fetch(`${url}${s}/`);
        expect(page.status).toBe(200);
        expect(await page.text()).toContain('<title>sagabox dashboard</title>');
      }
      // While the burst runs, poll every service's overview as the page does, and the
      // messages of its busy queues until one is seen being retried: in the retrying state,
      // or listed with the error of its failed attempt while it waits for or runs the next
      // one. The retrying state alone lasts the first backoff (50-100 ms here), which a poll
      // can miss on a loaded machine; the error stays listed until the retry is handled.
      let retryingSeen = 0;
      let inFlightSeen = 0;
      let polls = 0;
      const retried = new Set<string>(); // service/queue/message id
      const readJson = async <T>(path: string): Promise<T | null> => {
        const res = await fetch(`${url}${path}`).catch(() => null);
        return res?.ok ? ((await res.json()) as T) : null;
      };
      const pollService = async (s: string) => {
        const o = await readJson<{ queues: QueueRow[] }>(`${s}/api/overview`);
        if (!o) return;
        polls++;
        for (const q of o.queues) {
          retryingSeen = Math.max(retryingSeen, q.retrying);
          inFlightSeen = Math.max(inFlightSeen, q.inFlight);
        }
        if (retryingSeen > 0 || retried.size > 0) return;
        for (const q of o.queues.filter((q) => q.ready + q.inFlight + q.retrying > 0)) {
          const page = await readJson<{ messages: MessageRow[] }>(`${s}/api/messages?queue=${encodeURIComponent(q.queue)}&limit=1000`);
          for (const m of page?.messages ?? []) if (m.state === 'retrying' || m.lastError !== null) retried.add(`${s}/${q.queue}/${m.id}`);
        }
      };
      while (!stdout.includes('\n')) {
        await Promise.all(SERVICES.map(pollService));
        await new Promise((r) => setTimeout(r, 50));
        expect(child.exitCode, stderr).toBeNull();
      }
      const summary = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
        consistent: boolean; dashboardUrl: string; logDir: string; chaos: { kills: Record<string, number> }; gateway: { injectedFailures: number };
      };
      expect(summary.consistent, stderr).toBe(true);
      expect(summary.dashboardUrl).toBe(url);
      expect(Object.values(summary.chaos.kills).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      // What the dashboard should have shown happened, on record: the gateway refused
      // requests, and the payments worker failed handler runs and scheduled their retries.
      expect(summary.gateway.injectedFailures).toBeGreaterThan(0);
      const retriesLogged = readFileSync(join(summary.logDir, 'payments.log'), 'utf8')
        .split('\n')
        .filter((line) => line.includes('"msg":"handler failed; will retry"')).length;
      expect(retriesLogged, 'payments.log records no retried handler run').toBeGreaterThan(0);
      expect(polls).toBeGreaterThan(4);
      expect(retryingSeen > 0 || retried.size > 0, `the dashboards never showed a message being retried (${retriesLogged} retries logged, ${polls} polls)`).toBe(true);
      expect(inFlightSeen).toBeGreaterThan(0);
      // Recovered: after the run every service's queues are empty, and nothing needs attention but what is by design.
      await waitFor('the dashboard to be waiting (--stay)', () => stderr.includes('dashboard stays up'), 30_000);
      for (const s of SERVICES) {
        const o = (await (await fetch(`${url}${s}/api/overview`)).json()) as { queues: QueueRow[] };
        for (const q of o.queues) expect({ service: s, queue: q.queue, ready: q.ready, inFlight: q.inFlight, retrying: q.retrying }).toEqual({ service: s, queue: q.queue, ready: 0, inFlight: 0, retrying: 0 });
        const attention = (await (await fetch(`${url}${s}/api/attention`)).json()) as { leaseExpired: unknown[] };
        expect(attention.leaseExpired).toEqual([]);
      }
    } finally {
      if (child.exitCode === null) child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
  }, 450_000);
});
