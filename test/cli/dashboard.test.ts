import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { useDatabase } from '../support/test-pool.js';
import { CLI_PATH, runCli } from '../support/run-cli.js';

const { db } = await useDatabase();

/** Spawns the CLI and resolves with the first URL it prints after `prefix`. */
function startServing(args: string[], prefix: string): { url: Promise<string>; stop: () => Promise<number | null> } {
  const child = spawn(process.execPath, [CLI_PATH, ...args, '--log-level', 'warn', '--database-url', db.url], { stdio: ['ignore', 'pipe', 'pipe'] });
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
});
