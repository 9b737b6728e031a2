import { describe, expect, it } from 'vitest';
import { publish } from '@sagabox/core';
import { addDirectRoute, pauseQueue, queueStats, resumeQueue, setQueueLimits } from '@sagabox/core/admin';
import { startChild, type Child } from '../support/child.js';
import { useDatabase } from '../support/test-pool.js';
import { runCli } from '../support/run-cli.js';
import { waitFor } from '../support/wait-for.js';

const { db, pool, count } = await useDatabase();
const p = pool(4);
const url = ['--database-url', db.url];

/** Lets workers that poll every 50 ms try many claims; a paused queue must give them nothing. */
const observe = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('pauseQueue and resumeQueue', () => {
  it('holds a pause across worker processes, under every claim, and resumes with nothing lost', async () => {
    await p.query('CREATE TABLE effects (seq bigserial PRIMARY KEY, message_id uuid NOT NULL, n int)');
    await addDirectRoute(p, { topic: 'pz.#', queue: 'pz' });

    // Paused from another process: the CLI.
    const paused = await runCli(['queues', 'pause', 'pz', '--json', ...url]);
    expect(paused.code, paused.stderr).toBe(0);
    expect(JSON.parse(paused.stdout)).toMatchObject({ queue: 'pz', changed: true, pausedAt: expect.any(String) });
    expect(await runCli(['queues', 'pause', 'pz', ...url])).toMatchObject({ code: 3, stderr: 'sagabox: queue pz is already paused: nothing done\n' });

    const workers: Child[] = [0, 1].map(() => startChild('worker-child.mjs', { DATABASE_URL: db.url, QUEUE: 'pz', LEASE_MS: '2000', BATCH_SIZE: '5' }));
    await Promise.all(workers.map((w) => w.waitForLine(/^ready$/)));
    const { ids } = await publish(p, Array.from({ length: 40 }, (_, n) => ({ topic: 'pz.job', payload: { n } })));

    // Publishing keeps buffering; no claim takes anything: the unlimited claim ...
    await observe(1_500);
    expect(await count('SELECT count(*) AS n FROM effects')).toBe(0);
    const [stats] = await queueStats(p, { queues: ['pz'] });
    expect(stats).toMatchObject({ ready: 40, inFlight: 0, pausedAt: expect.any(Date) });
    expect((await runCli(['queues', 'pz', ...url])).stdout).toMatch(/pz \(paused\)\s*│\s*40/);
    // ... and the limited claim, with a global limit or a group limit alike.
    await setQueueLimits(p, 'pz', { maxInFlight: 10 });
    await observe(1_000);
    await setQueueLimits(p, 'pz', { maxInFlight: null, groupMaxInFlight: 3 });
    await observe(1_000);
    expect(await count('SELECT count(*) AS n FROM effects')).toBe(0);
    await setQueueLimits(p, 'pz', { groupMaxInFlight: null });

    const resumed = await runCli(['queues', 'resume', 'pz', ...url]);
    expect(resumed).toMatchObject({ code: 0, stdout: 'resumed pz\n' });
    await waitFor('every message handled after resume', async () => (await count('SELECT count(*) AS n FROM sagabox.queue_messages')) === 0, 30_000);
    const { rows } = await p.query<{ message_id: string; times: number }>('SELECT message_id, count(*)::int AS times FROM effects GROUP BY message_id');
    expect(rows.map((r) => r.message_id).sort()).toEqual([...ids].sort());
    expect(rows.every((r) => r.times === 1)).toBe(true);
    expect((await queueStats(p, { queues: ['pz'] }))[0]!.pausedAt).toBeNull();
    expect(await runCli(['queues', 'resume', 'pz', ...url])).toMatchObject({ code: 3, stderr: 'sagabox: queue pz is already running: nothing done\n' });
    await Promise.all(workers.map((w) => w.kill('SIGTERM')));
  });

  it('says which queue does not exist', async () => {
    await expect(pauseQueue(p, 'no-such-queue')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(resumeQueue(p, 'bad queue')).rejects.toMatchObject({ code: 'INVALID_QUEUE_NAME' });
    expect((await runCli(['queues', 'pause', 'no-such-queue', ...url])).code).toBe(3);
  });
});
