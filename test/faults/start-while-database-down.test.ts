import { spawn } from 'node:child_process';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createRelay, createWorker, publish, type Relay, type Worker } from '@sagabox/core';
import { migrateUp } from '@sagabox/core/migrate';
import { startDisposablePostgres } from '@sagabox/testing';
import { captureLogger } from '../support/capture-logger.js';
import { CLI_PATH } from '../support/run-cli.js';
import { createTcpGate } from '../support/tcp-gate.js';
import { waitFor } from '../support/wait-for.js';

// A server of this file's own; the components reach it through a gate the test keeps
// closed at first, so their start meets a refused connection as after a restart.
const server = await startDisposablePostgres();
await migrateUp({ connectionString: server.url });
const target = new URL(server.url);
const gate = await createTcpGate({ host: target.hostname, port: Number(target.port) });
const gatedUrl = (() => {
  const u = new URL(server.url);
  u.hostname = '127.0.0.1';
  u.port = String(gate.port);
  return u.toString();
})();

const pools: pg.Pool[] = [];
const pool = (url: string, max: number): pg.Pool => {
  const p = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 5_000 });
  p.on('error', () => {});
  pools.push(p);
  return p;
};
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()));
  await gate.close();
  await server.stop();
});
const direct = pool(server.url, 3);
const count = async (sql: string): Promise<number> => Number((await direct.query<{ n: string }>(sql)).rows[0]!.n);

describe('components started while PostgreSQL cannot be reached', () => {
  it('a relay, a worker and `sagabox relay` wait, then work once it answers; nothing lost', async () => {
    await direct.query('CREATE TABLE effects (message_id uuid PRIMARY KEY)');
    await publish(direct, Array.from({ length: 20 }, (_, i) => ({ topic: 'boot.lib', payload: { i } })));
    await publish(direct, Array.from({ length: 20 }, (_, i) => ({ topic: 'boot.cli', payload: { i } })));

    const logger = captureLogger();
    const gated = pool(gatedUrl, 6);
    const relay: Relay = createRelay({ pool: gated, routes: [{ topic: 'boot.lib', queue: 'boot-lib' }], logger, pollIntervalMs: 100 });
    const worker: Worker = createWorker({
      pool: gated, queue: 'boot-lib', logger, pollIntervalMs: 100,
      handler: async (m, { client }) => {
        await client.query('INSERT INTO effects (message_id) VALUES ($1)', [m.id]);
      },
    });
    const relayStarted = relay.start();
    const workerStarted = worker.start();
    const cli = spawn(process.execPath, [CLI_PATH, 'relay', '--route', 'boot.cli=boot-cli', '--on-unroutable', 'hold', '--log-level', 'warn', '--database-url', gatedUrl], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let cliLog = '';
    cli.stderr.on('data', (d: Buffer) => (cliLog += d.toString()));
    const cliExit = new Promise<number | null>((r) => cli.once('exit', (code) => r(code)));
    try {
      // Each of them retries, says so, and neither gives up nor exits.
      await waitFor('library retries logged', () =>
        logger.lines.filter((l) => l.level === 'warn' && l.msg === 'database unreachable at start; retrying').length >= 4);
      await waitFor('cli retries logged', () => cliLog.includes('database unreachable at start; retrying'));
      expect(cli.exitCode).toBeNull();
      let settled = false;
      void Promise.allSettled([relayStarted, workerStarted]).then(() => (settled = true));
      await new Promise((r) => setTimeout(r, 200));
      expect(settled).toBe(false);

      await gate.open();
      await Promise.all([relayStarted, workerStarted]);
      await waitFor('every library message handled', async () => (await count('SELECT count(*) AS n FROM effects')) === 20, 60_000);
      await waitFor('every cli message queued', async () =>
        (await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'boot-cli'`)) === 20, 60_000);
      expect(await count('SELECT count(*) AS n FROM sagabox.outbox')).toBe(0);
      expect(await count('SELECT count(*) AS n FROM sagabox.dead_letters')).toBe(0);
      expect(logger.lines.some((l) => l.level === 'info' && l.msg === 'database reachable; starting')).toBe(true);
    } finally {
      cli.kill('SIGTERM');
      await Promise.allSettled([relay.stop(), worker.stop()]);
    }
    expect(await cliExit).toBe(0);
  });

  it('fails fast when told to, and a stop ends a start that is still waiting', async () => {
    await gate.close();
    const gated = pool(gatedUrl, 2);
    const relay = createRelay({ pool: gated, routes: [{ topic: 'x.*', queue: 'x' }], waitForDatabaseMs: 0 });
    await expect(relay.start()).rejects.toMatchObject({ code: 'DATABASE_UNREACHABLE' });
    const patient = createRelay({ pool: gated, routes: [{ topic: 'x.*', queue: 'x' }] });
    const starting = patient.start();
    await new Promise((r) => setTimeout(r, 300));
    await patient.stop();
    await expect(starting).rejects.toMatchObject({ code: 'DATABASE_UNREACHABLE' });
    const cli = spawn(process.execPath, [CLI_PATH, 'relay', '--route', 'x.*=x', '--fail-fast', '--database-url', gatedUrl], { stdio: 'ignore' });
    expect(await new Promise((r) => cli.once('exit', (code) => r(code)))).toBe(1);
  });
});
