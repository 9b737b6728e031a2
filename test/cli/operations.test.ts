import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { getQueueLimits } from '@sagabox/core/admin';
import { publish } from '@sagabox/core';
import { useDatabase } from '../support/test-pool.js';
import { waitFor } from '../support/wait-for.js';
import { CLI_PATH, runCli } from '../support/run-cli.js';

const { db, pool, count } = await useDatabase();
const p = pool(4);
const url = ['--database-url', db.url];

describe('sagabox relay, queues, outbox, dlq', () => {
  it('runs a relay until SIGTERM and reports queues and the outbox', async () => {
    await publish(p, [{ topic: 'cli.a', payload: 1 }, { topic: 'cli.a', payload: 2, delayMs: 3_600_000 }, { topic: 'cli.nowhere', payload: 3 }]);
    expect(JSON.parse((await runCli(['outbox', '--json', ...url])).stdout)).toMatchObject({ ready: 3, prepared: 0 });
    const relay = spawn(process.execPath, [CLI_PATH, 'relay', '--route', 'cli.a=cli-q', '--on-unroutable', 'dead-letter', '--log-level', 'warn', ...url], { stdio: 'ignore' });
    await waitFor('relay drained the outbox', async () => (await count('SELECT count(*) AS n FROM sagabox.outbox')) === 0);
    const exited = new Promise<number | null>((r) => relay.once('exit', (code) => r(code)));
    relay.kill('SIGTERM');
    expect(await exited).toBe(0);

    const queues = await runCli(['queues', '--json', ...url]);
    expect(queues.code).toBe(0);
    expect(JSON.parse(queues.stdout)).toEqual([expect.objectContaining({ queue: 'cli-q', ready: 1, delayed: 1, retrying: 0, scheduled: 1, inFlight: 0, dead: 0 })]);
    const table = await runCli(['queues', ...url]);
    expect(table.stdout).toMatch(/cli-q\s*│\s*1\s*│\s*0\s*│\s*0\s*│\s*1\s*│/);
    const unknown = await runCli(['queues', 'nope', ...url]);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toBe('sagabox: unknown queue(s): nope\n');
  });

  it('shows a held column when a group has messages past its limit\'s window, and only then', async () => {
    expect((await runCli(['queues', 'set-limits', 'cli-held', '--group-max-in-flight', '1', ...url])).code).toBe(0);
    expect((await runCli(['routes', 'add', 'cli.held', 'cli-held', ...url])).code).toBe(0);
    for (let n = 0; n < 5; n++) await publish(p, { topic: 'cli.held', payload: n, group: 'tenant' });
    const table = (await runCli(['queues', 'cli-held', ...url])).stdout;
    expect(table).toMatch(/queue\s*│\s*ready\s*│\s*held\s*│\s*in flight/);
    expect(table).toMatch(/cli-held\s*│\s*5\s*│\s*3\s*│\s*0\s*│/); // 2 x 1 in the claims' index, 3 held
    expect(JSON.parse((await runCli(['queues', 'cli-held', '--json', ...url])).stdout)).toEqual([expect.objectContaining({ ready: 5, held: 3 })]);
    expect((await runCli(['queues', 'cli-q', ...url])).stdout).not.toMatch(/held/);
    expect((await runCli(['routes', 'remove', 'cli.held', 'cli-held', ...url])).code).toBe(0);
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

  it('shows and sets the flow limits of a queue; none removes one, others keep their value', async () => {
    const unknown = await runCli(['queues', 'limits', 'cli-limited', ...url]);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toBe('sagabox: unknown queue: cli-limited\n');

    const set = await runCli([
      'queues', 'set-limits', 'cli-limited', '--max-in-flight', '50', '--rate', '0.5', '--group-max-in-flight', '5',
      '--group-rate', '20', '--group-burst', '4', '--priority-aging-ms', 'none', '--json', ...url,
    ]);
    expect(set).toMatchObject({ code: 0, stderr: '' });
    const first = {
      maxInFlight: 50, ratePerSecond: 0.5, burst: null, groupMaxInFlight: 5, groupRatePerSecond: 20, groupBurst: 4, priorityAgingMs: null,
    };
    expect(JSON.parse(set.stdout)).toEqual(first);
    expect(await getQueueLimits(p, 'cli-limited')).toEqual(first);
    expect(JSON.parse((await runCli(['queues', 'limits', 'cli-limited', '--json', ...url])).stdout)).toEqual(first);

    const table = (await runCli(['queues', 'limits', 'cli-limited', ...url])).stdout;
    expect(table).toMatch(/max-in-flight\s*│\s*50\s*│/);
    expect(table).toMatch(/rate\s*│\s*0\.5\/s\s*│/);
    expect(table).toMatch(/burst\s*│\s*default \(1\)\s*│/);
    expect(table).toMatch(/group-burst\s*│\s*4\s*│/);
    expect(table).toMatch(/priority-aging-ms\s*│\s*none \(strict priorities\)\s*│/);

    const changed = await runCli(['queues', 'set-limits', 'cli-limited', '--max-in-flight', 'none', '--burst', '3', '--priority-aging-ms', '500', ...url]);
    expect(changed.code).toBe(0);
    expect(changed.stdout).toMatch(/max-in-flight\s*│\s*none\s*│/);
    expect(await getQueueLimits(p, 'cli-limited')).toEqual({ ...first, maxInFlight: null, burst: 3, priorityAgingMs: 500 });

    // The queue listing still takes its own options after queue names.
    expect(JSON.parse((await runCli(['queues', 'cli-limited', '--json', ...url])).stdout)).toEqual([
      expect.objectContaining({ queue: 'cli-limited', ready: 0 }),
    ]);
  });

  it('refuses bad limit values with one line naming every bad flag, exit 2, changing nothing', async () => {
    const before = await getQueueLimits(p, 'cli-limited');
    const bad = await runCli([
      'queues', 'set-limits', 'cli-limited', '--max-in-flight', '-1', '--rate', 'fast', '--burst', '1.5',
      '--group-rate', '0', '--priority-aging-ms', '5', '--group-max-in-flight', '7', ...url,
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toBe(
      'sagabox: --max-in-flight must be an integer from 1 to 1000000, or none; ' +
        '--rate must be a number of messages per second above 0 and at most 1000000, or none; ' +
        '--burst must be an integer from 1 to 1000000, or none; ' +
        '--group-rate must be a number of messages per second above 0 and at most 1000000, or none; ' +
        '--priority-aging-ms must be a duration from 100ms to 1d: milliseconds, or a number with ms, s, m, h or d (90s, 15m, 7d); got "5", or none\n',
    );
    expect(await getQueueLimits(p, 'cli-limited')).toEqual(before);

    const nothing = await runCli(['queues', 'set-limits', 'cli-limited', ...url]);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toMatch(/^sagabox: nothing to set: pass at least one of --max-in-flight, --rate, /);
    const badName = await runCli(['queues', 'limits', 'bad queue', ...url]);
    expect(badName.code).toBe(2);
    expect(badName.stderr).toMatch(/^sagabox: invalid queue name "bad queue"/);
    const noQueue = await runCli(['queues', 'set-limits', '--rate', '5', ...url]);
    expect(noQueue.code).toBe(2);
    expect(noQueue.stderr).toMatch(/missing required argument 'queue'/);
    const noValue = await runCli(['queues', 'set-limits', 'cli-limited', ...url, '--rate']);
    expect(noValue.code).toBe(2);
    expect(noValue.stderr).toMatch(/option '--rate <perSecond>' argument missing/);
    for (const run of [bad, nothing, badName, noQueue, noValue]) expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('refuses a malformed route and a missing URL with one line', async () => {

    const bad = await runCli(['relay', '--route', 'no-equals-sign', ...url]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^sagabox: --route must look like/);
    const none = await runCli(['queues']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no database URL/);
  });
  it('adds, lists and removes direct routes, and publish follows them', async () => {
    expect((await runCli(['routes', 'list', ...url])).stdout).toBe('no direct routes\n');
    const added = await runCli(['routes', 'add', 'cli.direct.*', 'cli-direct', ...url]);
    expect(added).toMatchObject({ code: 0, stdout: 'routed cli.direct.* -> cli-direct\n' });
    const listed = JSON.parse((await runCli(['routes', 'list', '--json', ...url])).stdout) as { topic: string; queue: string }[];
    expect(listed).toEqual([expect.objectContaining({ topic: 'cli.direct.*', queue: 'cli-direct' })]);
    expect((await runCli(['routes', 'list', ...url])).stdout).toMatch(/cli\.direct\.\*\s+.*cli-direct/);
    const { ids } = await publish(p, { topic: 'cli.direct.x', payload: 1 });
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'cli-direct' AND id = $1`, ids)).toBe(1);
    const badTopic = await runCli(['routes', 'add', 'cli..x', 'cli-direct', ...url]);
    expect(badTopic.code).toBe(2);
    expect(badTopic.stderr).toMatch(/^sagabox: invalid topic pattern "cli\.\.x"\n$/);
    expect((await runCli(['routes', 'add', 'cli.x', 'bad queue', ...url])).code).toBe(2);
    expect((await runCli(['routes', 'remove', 'cli.direct.*', 'cli-direct', ...url])).stdout).toBe('removed cli.direct.* -> cli-direct\n');
    expect(await runCli(['routes', 'remove', 'cli.direct.*', 'cli-direct', ...url])).toEqual({
      code: 3, stdout: '', stderr: 'sagabox: no direct route cli.direct.* -> cli-direct: nothing removed\n',
    });
    const later = await publish(p, { topic: 'cli.direct.x', payload: 2 });
    expect(await count('SELECT count(*) AS n FROM sagabox.outbox WHERE id = $1', later.ids)).toBe(1);
  });
});
