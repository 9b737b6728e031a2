import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { listMessages } from '@sagabox/core/admin';
import { useDatabase } from '../support/test-pool.js';
import { CLI_PATH, runCli } from '../support/run-cli.js';
import { seedDashboard } from '../support/seed-dashboard.js';

const { db, pool } = await useDatabase();

/** Spawns the CLI and resolves with the first URL it prints after `prefix`. */
function startServing(args: string[], prefix: string, env: NodeJS.ProcessEnv = process.env): { url: Promise<string>; stop: () => Promise<number | null> } {
  const child = spawn(process.execPath, [CLI_PATH, ...args, '--log-level', 'warn', '--database-url', db.url], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const url = new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = new RegExp(`^${prefix} (http://127\\.0\\.0\\.1:\\d+/\\S*)$`, 'm').exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`exited ${code} before listening: ${out}`)));
  });
  return { url, stop: async () => { child.kill('SIGTERM'); return exited; } };
}

describe('sagabox metrics', () => {
  it('serves database-wide metrics until SIGTERM', async () => {
    const served = startServing(['metrics', '--port', '0'], 'sagabox metrics on');
    try {
      const text = await (await fetch(await served.url)).text();
      expect(text).toMatch(/^sagabox_outbox_messages\{state="ready"\} 0$/m);
      expect(text).toMatch(/^# TYPE sagabox_sagas_started_total counter$/m);
    } finally {
      expect(await served.stop()).toBe(0);
    }
  });

  it('asks scrapes for the --token it was given', async () => {
    const served = startServing(['metrics', '--port', '0', '--token', 'scrape-me'], 'sagabox metrics on');
    try {
      const url = await served.url;
      expect((await fetch(url)).status).toBe(401);
      const text = await (await fetch(url, { headers: { authorization: 'Bearer scrape-me' } })).text();
      expect(text).toMatch(/^sagabox_outbox_messages\{state="ready"\} 0$/m);
    } finally {
      expect(await served.stop()).toBe(0);
    }
  });
});

describe('sagabox dashboard', () => {
  it('serves until SIGTERM and prints its URL', async () => {
    const child = spawn(process.execPath, [CLI_PATH, 'dashboard', '--port', '0', '--log-level', 'warn', '--database-url', db.url], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /^sagabox dashboard on (http:\/\/127\.0\.0\.1:\d+\/)$/m.exec(out);
          if (m) resolve(m[1]!);
        });
        child.once('exit', (code) => reject(new Error(`exited ${code} before listening: ${out}`)));
      });
      const overview = await (await fetch(`${url}api/overview`)).json();
      expect(overview).toMatchObject({ queues: [], deadLetters: [], halfMessages: [], sagaCounts: [], outbox: { ready: 0, prepared: 0 } });
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('refuses a non-loopback host without a token, and a bad port', async () => {
    const open = await runCli(['dashboard', '--host', '0.0.0.0', '--port', '0', '--database-url', db.url]);
    expect(open.code).toBe(2);
    expect(open.stderr).toMatch(/^sagabox: invalid dashboard options: a token is required to bind the dashboard to 0\.0\.0\.0/);
    const port = await runCli(['dashboard', '--port', 'eighty', '--database-url', db.url]);
    expect(port).toMatchObject({ code: 2, stderr: 'sagabox: --port must be an integer from 0 to 65535\n' });
  });

  it('refuses a --token permission it does not know, without printing the secret', async () => {
    const bad = await runCli(['dashboard', '--port', '0', '--token', 'alice:alice-secret-1:actions,delete', '--database-url', db.url]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^sagabox: --token "alice": permissions must be a comma list of read, payloads, actions/);
    expect(bad.stderr).not.toContain('alice-secret-1');
  });

  // Seeds queues, messages and dead letters: it runs after the tests that expect an empty database.
  it('takes tokens with permissions from --token and SAGABOX_DASHBOARD_TOKENS: read-only gets 403 and no payloads, actions+payloads does not', async () => {
    const p = pool(2);
    await seedDashboard(p);
    const [order] = (await listMessages(p, { queue: 'orders', limit: 1 })).messages;
    const served = startServing(
      ['dashboard', '--port', '0', '--token', 'viewer:viewer-token-1', '--token', 'legacy-token-1'],
      'sagabox dashboard on',
      { ...process.env, SAGABOX_DASHBOARD_TOKENS: 'admin:admin-token-1:payloads,actions  auditor:auditor-token-1:payloads' },
    );
    try {
      const url = await served.url;
      const as = (token: string) => ({ authorization: `Bearer ${token}` });
      const pause = (token: string) => fetch(`${url}api/queues/orders/pause`, { method: 'POST', headers: { ...as(token), 'content-type': 'application/json' }, body: '{}' });
      const copy = async (token: string) => ((await (await fetch(`${url}api/messages/${order!.id}`, { headers: as(token) })).json()) as { copies: { payload: unknown; payloadHidden?: boolean }[] }).copies[0]!;
      const session = async (token: string) => (await fetch(`${url}api/session`, { headers: as(token) })).json();

      expect((await fetch(`${url}api/overview`)).status).toBe(401);
      expect(await session('viewer-token-1')).toMatchObject({ name: 'viewer', permissions: ['read'] });
      expect(await copy('viewer-token-1')).toMatchObject({ payload: null, payloadHidden: true });
      expect((await pause('viewer-token-1')).status).toBe(403);
      expect(await copy('auditor-token-1')).toMatchObject({ payload: { n: 1 } });
      expect((await pause('auditor-token-1')).status).toBe(403);
      // A bare secret keeps its meaning: one token named operator, allowed actions, payloads hidden.
      expect(await session('legacy-token-1')).toMatchObject({ name: 'operator', permissions: ['read', 'actions'] });
      expect(await copy('legacy-token-1')).toMatchObject({ payload: null, payloadHidden: true });

      const admin = await copy('admin-token-1');
      expect(admin.payload).toEqual({ n: 1 });
      expect(admin.payloadHidden).toBeUndefined();
      const paused = await pause('admin-token-1');
      expect(paused.status).toBe(200);
      expect(await paused.json()).toMatchObject({ queue: 'orders', changed: true });
    } finally {
      expect(await served.stop()).toBe(0);
    }
  });
});
