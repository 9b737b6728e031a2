import { afterEach, describe, expect, it } from 'vitest';
import { createWorker, type Worker } from '@sagabox/core';
import { useDatabase } from '../support/test-pool.js';
import { waitFor } from '../support/wait-for.js';

const { pool, count } = await useDatabase();
const p = pool(12);
await p.query('CREATE TABLE effects (message_id uuid, attempts int)');
await p.query(`INSERT INTO sagabox.queues (name, priority_aging_ms) VALUES ('slow', NULL)`);
await p.query(`INSERT INTO sagabox.queues (name, priority_aging_ms) VALUES ('backlog', NULL)`);

const running: Worker[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((w) => w.stop()));
});

/** A backlog of `n` messages, queued as the relay would queue them. */
async function backlog(n: number, queue = 'backlog'): Promise<void> {
  await p.query(
    `INSERT INTO sagabox.queue_messages (queue, id, topic, payload, created_at)
     SELECT $2, gen_random_uuid(), 'job', jsonb_build_object('n', g), now() FROM generate_series(1, $1::int) g`,
    [n, queue],
  );
}

describe('worker: a backlog claimed once for every slot', () => {
  it('hands every slot its batches from one claim, handles each message once, and a stop hands back what no slot took, its attempt undone', async () => {
    await backlog(3_000);
    const worker = createWorker({
      pool: p, queue: 'backlog', concurrency: 4, pollIntervalMs: 50,
      handler: async (m, { client }) => {
        await client.query('INSERT INTO effects (message_id) VALUES ($1)', [m.id]);
        await new Promise((r) => setTimeout(r, 1));
      },
    });
    running.push(worker);
    await worker.start();
    // Leased beyond what the slots hold: the claim for all of them, buffered.
    let mostLeased = 0;
    await waitFor('a few hundred handled', async () => {
      mostLeased = Math.max(mostLeased, await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'backlog' AND lease_token IS NOT NULL`));
      return (await count('SELECT count(*) AS n FROM effects')) >= 300;
    });
    expect(mostLeased).toBeGreaterThan(4 * 10);
    await worker.stop();
    running.length = 0;
    const handled = await count('SELECT count(*) AS n FROM effects');
    expect(await count('SELECT count(DISTINCT message_id) AS n FROM effects')).toBe(handled);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'backlog'`)).toBe(3_000 - handled);
    // Nothing left leased, and no attempt counted for a message no handler saw.
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'backlog' AND lease_token IS NOT NULL`)).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'backlog' AND attempts <> 0`)).toBe(0);
    // A new worker drains the rest at once (no lease to wait for), each message once.
    running.push(createWorker({
      pool: p, queue: 'backlog', concurrency: 4, pollIntervalMs: 50,
      handler: async (m, { client }) => {
        await client.query('INSERT INTO effects (message_id) VALUES ($1)', [m.id]);
      },
    }));
    await running[0]!.start();
    await waitFor('all handled', async () => (await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'backlog'`)) === 0, 20_000);
    expect(await count('SELECT count(DISTINCT message_id) AS n FROM effects')).toBe(3_000);
    expect(await count('SELECT count(*) AS n FROM effects')).toBe(3_000);
  });

  it('gives back buffered messages that waited half a lease, so slow handlers never get one near the end of its lease', async () => {
    // Batches of 10 at 150 ms a message take 1.5 s, longer than the 1 s lease: a claim
    // ahead for the other slot would wait past its lease in the buffer.
    await backlog(60, 'slow');
    running.push(createWorker({
      pool: p, queue: 'slow', concurrency: 2, pollIntervalMs: 50, leaseMs: 1_000, handlerTimeoutMs: 900,
      handler: async (m, { client }) => {
        await client.query('INSERT INTO effects (message_id, attempts) VALUES ($1, $2)', [m.id, m.attempts]);
        await new Promise((r) => setTimeout(r, 150));
      },
    }));
    await running[0]!.start();
    await waitFor('all handled', async () => (await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'slow'`)) === 0, 30_000);
    const { rows } = await p.query<{ attempts: number; n: number }>(
      `SELECT e.attempts, count(*)::int AS n FROM effects e WHERE e.attempts IS NOT NULL GROUP BY e.attempts`);
    // Every message handled once, on its first attempt: none was leased twice.
    expect(rows).toEqual([{ attempts: 1, n: 60 }]);
  });
});
