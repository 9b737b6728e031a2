import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { publish } from '@sagabox/core';
import { NATS_HEADERS } from '@sagabox/nats';
import { useDatabase } from '../support/test-pool.js';
import { useJetStream } from '../support/nats-server.js';
import { waitFor } from '../support/wait-for.js';
import { CLI_PATH, runCli } from '../support/run-cli.js';

const { db, pool, count } = await useDatabase();
const p = pool(4);
const { server, jsm } = await useJetStream();
const url = ['--database-url', db.url];

describe('sagabox relay --to nats://', () => {
  it('relays routed topics to JetStream subjects until SIGTERM', async () => {
    await jsm.streams.add({ name: 'CLI', subjects: ['events.>', 'audit'] });
    const { ids } = await publish(p, [
      { topic: 'cli.a', payload: 1 },
      { topic: 'audit.login', payload: 2 },
    ]);
    const relay = spawn(process.execPath, [CLI_PATH, 'relay', '--to', server.url, '--subject-prefix', 'events.', '--route', 'cli.#', '--route', 'audit.#=audit', '--log-level', 'warn', ...url], { stdio: 'ignore' });
    try {
      await waitFor('relay drained the outbox', async () => (await count('SELECT count(*) AS n FROM sagabox.outbox')) === 0);
    } finally {
      const exited = new Promise<number | null>((r) => relay.once('exit', (code) => r(code)));
      relay.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
    expect((await jsm.streams.getMessage('CLI', { last_by_subj: 'events.cli.a' }))!.header.get(NATS_HEADERS.messageId)).toBe(ids[0]);
    expect((await jsm.streams.getMessage('CLI', { last_by_subj: 'audit' }))!.header.get(NATS_HEADERS.messageId)).toBe(ids[1]);
  });

  it('refuses an unknown scheme, a bad subject and flags that do not go together, with one line and exit code 2', async () => {
    const scheme = await runCli(['relay', '--to', 'kafka://x:9092', '--route', 'a.#', ...url]);
    expect(scheme.code).toBe(2);
    expect(scheme.stderr).toMatch(/^sagabox: --to must be/);
    const subject = await runCli(['relay', '--to', server.url, '--route', 'a.#=bad subject', ...url]);
    expect(subject.code).toBe(2);
    expect(subject.stderr).toMatch(/subject must be a NATS subject/);
    const both = await runCli(['relay', '--to', server.url, '--target-database-url', db.url, '--route', 'a.#', ...url]);
    expect(both.code).toBe(2);
    const prefix = await runCli(['relay', '--subject-prefix', 'x.', '--route', 'a.#=q', ...url]);
    expect(prefix.code).toBe(2);
  });
});
