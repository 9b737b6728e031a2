import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { publish } from '@sagabox/core';
import { addDirectRoute } from '@sagabox/core/admin';
import { useDatabase } from '../support/test-pool.js';
import { runCli } from '../support/run-cli.js';

const { db, pool } = await useDatabase();
const p = pool(2);
const url = ['--database-url', db.url];

describe('sagabox messages', () => {
  it('lists a queue by state with why each waits, pages with --after, and shows one whole', async () => {
    await addDirectRoute(p, { topic: 'mail.#', queue: 'mail' });
    const { ids } = await publish(p, Array.from({ length: 3 }, (_, i) => ({ topic: 'mail.welcome', payload: { i }, headers: { 'correlation-id': `c-${i}` } })));
    await p.query(`UPDATE sagabox.queue_messages SET attempts = 2, run_at = now() + interval '5 minutes', last_error = 'SMTP 451: mailbox busy' WHERE id = $1`, [ids[1]]);

    const table = await runCli(['messages', 'list', '--queue', 'mail', ...url]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`^${ids[1]}  retrying   mail.welcome\n {4}attempt 2, next attempt in [45]\\.\\dm: SMTP 451: mailbox busy$`, 'm'));
    for (const line of table.stdout.trimEnd().split('\n')) expect(line.length).toBeLessThanOrEqual(80);

    const retrying = JSON.parse((await runCli(['messages', 'list', '--queue', 'mail', '--state', 'retrying', '--json', ...url])).stdout);
    expect(retrying).toEqual({ messages: [expect.objectContaining({ id: ids[1], attempts: 2, lastError: 'SMTP 451: mailbox busy' })], next: null });
    const byError = JSON.parse((await runCli(['messages', 'list', '--queue', 'mail', '--error', 'mailbox', '--json', ...url])).stdout);
    expect(byError.messages.map((m: { id: string }) => m.id)).toEqual([ids[1]]);

    const first = await runCli(['messages', 'list', '--queue', 'mail', '--limit', '2', ...url]);
    const cursor = /more: --after (\d+)/.exec(first.stdout)?.[1];
    expect(cursor).toBeDefined();
    const second = JSON.parse((await runCli(['messages', 'list', '--queue', 'mail', '--limit', '2', '--after', cursor!, '--json', ...url])).stdout);
    expect(second).toEqual({ messages: [expect.objectContaining({ id: ids[2] })], next: null });

    const shown = JSON.parse((await runCli(['messages', 'show', ids[0]!, '--json', ...url])).stdout);
    expect(shown.copies).toEqual([expect.objectContaining({ queue: 'mail', state: 'ready', payload: { i: 0 }, headers: { 'correlation-id': 'c-0' } })]);
  });

  it('exits 3 for a message that is nowhere and 2 for a bad filter', async () => {
    const missing = randomUUID();
    expect(await runCli(['messages', 'show', missing, ...url])).toMatchObject({ code: 3, stderr: `sagabox: no message ${missing} in the outbox, a queue, the dead letters or an inbox\n` });
    expect((await runCli(['messages', 'list', '--state', 'lost', ...url])).code).toBe(2);
    expect((await runCli(['messages', 'list', '--queue', 'mail', '--id', 'nope', ...url])).stderr).toMatch(/^sagabox: invalid message filter: id must be a UUID\n$/);
    expect((await runCli(['messages', 'list', '--queue', 'unknown-q', ...url])).code).toBe(3);
    expect((await runCli(['messages', 'list', ...url])).stdout).toBe('no messages\n');
  });
});
