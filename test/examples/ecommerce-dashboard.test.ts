// The demo prints a link to the services' dashboards and serves them; with --chaos the
// dashboards show messages being retried while services are killed, and every queue
// drained once the orders are done.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait-for.js';

const DEMO = fileURLToPath(new URL('../../examples/ecommerce/dist/main.js', import.meta.url));
const SERVICES = ['orders', 'inventory', 'payments', 'shipping'];

interface QueueRow { queue: string; ready: number; inFlight: number; retrying: number }

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
      // While the burst runs, poll every service's overview as the page does.
      let retryingSeen = 0;
      let inFlightSeen = 0;
      let polls = 0;
      while (!stdout.includes('\n')) {
        for (const s of SERVICES) {
          const res = await fetch(`${url}${s}/api/overview`).catch(() => null);
          if (!res?.ok) continue;
          const o = (await res.json()) as { queues: QueueRow[] };
          polls++;
          for (const q of o.queues) {
            retryingSeen = Math.max(retryingSeen, q.retrying);
            inFlightSeen = Math.max(inFlightSeen, q.inFlight);
          }
        }
        await new Promise((r) => setTimeout(r, 100));
        expect(child.exitCode, stderr).toBeNull();
      }
      const summary = JSON.parse(stdout.trim().split('\n').at(-1)!) as { consistent: boolean; dashboardUrl: string; chaos: { kills: Record<string, number> } };
      expect(summary.consistent, stderr).toBe(true);
      expect(summary.dashboardUrl).toBe(url);
      expect(Object.values(summary.chaos.kills).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      expect(polls).toBeGreaterThan(4);
      expect(retryingSeen).toBeGreaterThan(0);
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
