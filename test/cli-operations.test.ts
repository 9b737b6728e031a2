import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { publish } from '@sagabox/core';
import { useDatabase } from './support/test-pool.js';
import { waitFor } from './support/wait-for.js';
import { CLI_PATH, runCli } from './run-cli.js';

const { db, pool, count } = await useDatabase();
const p = pool(4);
const url = ['--database-url', db.url];

describe('sagabox relay, queues, outbox, dlq', () => {
  it('runs a relay until SIGTERM and reports queues and the outbox', async () => {
    await publish(p, [{ topic: 'cli.a', payload: 1 }, { topic: 'cli.a', payload: 2, delayMs: 3_600_000 }, { topic: 'cli.nowhere', payload: 3 }]);
    expect(JSON.parse((await runCli(['outbox', '--json', ...url])).stdout)).toMatchObject({ ready: 3, prepared: 0 });
    const relay = spawn(process.execPath, [CLI_PATH, 'relay', '--route', 'cli.a=cli-q', '--log-level', 'warn', ...url], { stdio: 'ignore' });
    await waitFor('relay drained the outbox', async () => (await count('SELECT count(*) AS n FROM sagabox.outbox')) === 0);
    const exited = new Promise<number | null>((r) => relay.once('exit', (code) => r(code)));
    relay.kill('SIGTERM');
    expect(await exited).toBe(0);

    const queues = await runCli(['queues', '--json', ...url]);
    expect(queues.code).toBe(0);
    expect(JSON.parse(queues.stdout)).toEqual([expect.objectContaining({ queue: 'cli-q', ready: 1, delayed: 1, inFlight: 0, dead: 0 })]);
    const table = await runCli(['queues', ...url]);
    expect(table.stdout).toMatch(/cli-q\s*│\s*1\s*│\s*0\s*│\s*1/);
    const unknown = await runCli(['queues', 'nope', ...url]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('sagabox: unknown queue(s): nope\n');
  });

  it('lists, shows, replays and purges dead letters, asking before destructive actions', async () => {
    // The unroutable message from the first test is a dead letter of the outbox.
    const list = JSON.parse((await runCli(['dlq', 'list', '--json', ...url])).stdout) as { deadId: string; reason: string; topic: string }[];
    expect(list).toEqual([expect.objectContaining({ topic: 'cli.nowhere', reason: 'unroutable' })]);
    const show = await runCli(['dlq', 'show', list[0]!.deadId, ...url]);
    expect(show.stdout).toMatch(/"error": "no destination matches topic cli.nowhere"/);
    expect((await runCli(['dlq', 'show', '999999', ...url])).stderr).toBe('sagabox: no dead letter with id 999999\n');
    expect((await runCli(['dlq', 'show', 'x;drop', ...url])).code).toBe(2);

    const refused = await runCli(['dlq', 'purge', ...url]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/refusing without --yes/);
    expect(await count('SELECT count(*) AS n FROM sagabox.dead_letters')).toBe(1);

    const replay = await runCli(['dlq', 'replay', '--yes', '--reason', 'unroutable', ...url]);
    expect(replay.stdout).toBe('replayed 1\n');
    expect(await count(`SELECT count(*) AS n FROM sagabox.outbox WHERE topic = 'cli.nowhere' AND attempts = 0`)).toBe(1);
    await p.query(`INSERT INTO sagabox.dead_letters (source, queue, id, topic, payload, reason, error, attempts, created_at)
                   VALUES ('queue', 'cli-q', gen_random_uuid(), 'cli.a', '{}', 'failed', 'boom', 3, now())`);
    expect((await runCli(['dlq', 'purge', '--yes', '--queue', 'cli-q', ...url])).stdout).toBe('purged 1\n');
    expect((await runCli(['dlq', 'list', '--queue', 'bad queue', ...url])).code).not.toBe(0);
  });

  it('refuses a malformed route and a missing URL with one line', async () => {
    const bad = await runCli(['relay', '--route', 'no-equals-sign', ...url]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^sagabox: --route must look like/);
    const none = await runCli(['queues']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no database URL/);
  });
});
