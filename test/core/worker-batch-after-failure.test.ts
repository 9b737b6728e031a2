import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createWorker } from '@sagabox/core';
import { listDeadLetters } from '@sagabox/core/admin';
import { useDatabase } from '../support/test-pool.js';
import { stopAfterEach } from '../support/stop-after-each.js';

const { pool, count } = await useDatabase();
const p = pool(6);
await p.query('CREATE TABLE effects (message_id uuid PRIMARY KEY, n int NOT NULL)');
const { track } = stopAfterEach();

interface Call {
  n: number;
  attempt: number;
  txid: string;
}

/** Queue `queue` with messages n = 0..size-1 in claim order. */
async function fill(queue: string, size: number): Promise<void> {
  await p.query('INSERT INTO sagabox.queues (name) VALUES ($1) ON CONFLICT DO NOTHING', [queue]);
  await p.query(
    `INSERT INTO sagabox.queue_messages (queue, id, topic, payload, created_at)
     SELECT $1, gen_random_uuid(), 'batch.x', jsonb_build_object('n', g), now() FROM generate_series(0, $2::int - 1) g ORDER BY g`,
    [queue, size],
  );
}

/** A worker whose handler writes one effect row per message and fails the first attempt of the messages in `failing`. */
function failingWorker(queue: string, size: number, failing: ReadonlySet<number>, calls: Call[]) {
  return track(
    createWorker({
      pool: p,
      queue,
      listen: false,
      batchSize: size,
      retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 1 },
      handler: async (m, { client }) => {
        const { n } = m.payload as { n: number };
        const { rows } = await client.query<{ txid: string }>('SELECT txid_current()::text AS txid');
        calls.push({ n, attempt: m.attempts, txid: rows[0]!.txid });
        await client.query('INSERT INTO effects (message_id, n) VALUES ($1, $2)', [m.id, n]);
        if (failing.has(n) && m.attempts === 1) throw new Error(`first attempt of ${n} fails`);
      },
    }),
  );
}

/** The transaction that committed each message's effect (its row's xmin), by n. */
async function committedTxids(queue: string): Promise<Map<number, string>> {
  const { rows } = await p.query<{ n: number; xmin: string }>(
    `SELECT e.n, e.xmin::text AS xmin FROM effects e WHERE e.message_id IN (SELECT message_id FROM sagabox.inbox WHERE consumer = $1)`,
    [queue],
  );
  return new Map(rows.map((r) => [r.n, r.xmin]));
}

describe('createWorker: the rest of a batch after a handler failed', () => {
  it('handles the messages before the failed one again in one transaction and those after it in another, each effect once', async () => {
    const calls: Call[] = [];
    const worker = failingWorker('split', 8, new Set([2]), calls);
    await fill('split', 8);
    expect(await worker.runOnce()).toBe(8);
    // 0, 1 and 2 in the first transaction; 0 and 1 again; then 3-7, never called before.
    expect(calls.map((c) => c.n)).toEqual([0, 1, 2, 0, 1, 3, 4, 5, 6, 7]);
    const committed = await committedTxids('split');
    expect(committed.size).toBe(7);
    expect(committed.get(0)).toBe(committed.get(1));
    expect(new Set([3, 4, 5, 6, 7].map((n) => committed.get(n))).size).toBe(1);
    expect(committed.get(3)).not.toBe(committed.get(0));
    // 2 waits for its retry, its effect rolled back; the next run handles it.
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'split' AND attempts = 1 AND lease_token IS NULL`)).toBe(1);
    await new Promise((r) => setTimeout(r, 20));
    expect(await worker.runOnce()).toBe(1);
    expect(await count(`SELECT count(*) AS n FROM effects e JOIN sagabox.inbox i ON i.message_id = e.message_id WHERE i.consumer = 'split'`)).toBe(8);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'split'`)).toBe(0);
  });

  it('blames a message that swallowed a failed statement, not the next one, whose statements the aborted transaction refused', async () => {
    const worker = track(
      createWorker({
        pool: p,
        queue: 'swallow',
        listen: false,
        batchSize: 4,
        retry: { maxAttempts: 3, baseDelayMs: 60_000, maxDelayMs: 60_000 },
        handler: async (m, { client }) => {
          const { n } = m.payload as { n: number };
          await client.query('INSERT INTO effects (message_id, n) VALUES ($1, $2)', [m.id, n]);
          if (n === 1) await client.query('SELECT 1/0').catch(() => undefined);
        },
      }),
    );
    await fill('swallow', 4);
    expect(await worker.runOnce()).toBe(4);
    const { rows } = await p.query<{ n: number; attempts: number; last_error: string }>(
      `SELECT (payload->>'n')::int AS n, attempts, last_error FROM sagabox.queue_messages WHERE queue = 'swallow'`,
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ n: 1, attempts: 1 });
    expect(rows[0]!.last_error).toMatch(/went on without rethrowing/);
    expect(await count(`SELECT count(*) AS n FROM effects e JOIN sagabox.inbox i ON i.message_id = e.message_id WHERE i.consumer = 'swallow'`)).toBe(3);
  });

  it('for any batch and any messages failing, commits each effect once, calls a message at most twice in the run, and needs at most two transactions per failure', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 12 }).chain((size) => fc.tuple(fc.constant(size), fc.uniqueArray(fc.integer({ min: 0, max: size - 1 }), { maxLength: size }))),
        async ([size, failingList]) => {
          const queue = `prop${run++}`;
          const failing = new Set(failingList);
          const calls: Call[] = [];
          const worker = failingWorker(queue, size, failing, calls);
          await fill(queue, size);
          expect(await worker.runOnce()).toBe(size);
          const perMessage = new Map<number, number>();
          for (const c of calls) perMessage.set(c.n, (perMessage.get(c.n) ?? 0) + 1);
          for (const n of perMessage.keys()) expect(perMessage.get(n)).toBeLessThanOrEqual(2);
          const firstRun = await committedTxids(queue);
          expect(firstRun.size).toBe(size - failing.size);
          expect(new Set(firstRun.values()).size).toBeLessThanOrEqual(2 * failing.size + 1);
          // The failed ones are retried and then done; nothing is lost, doubled or dead.
          for (let i = 0; i < 20 && (await count('SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = $1', [queue])) > 0; i++) {
            await new Promise((r) => setTimeout(r, 5));
            await worker.runOnce();
          }
          expect(await count('SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = $1', [queue])).toBe(0);
          expect(await count('SELECT count(*) AS n FROM effects e JOIN sagabox.inbox i ON i.message_id = e.message_id WHERE i.consumer = $1', [queue])).toBe(size);
          expect(await listDeadLetters(p, { queue })).toEqual([]);
          await worker.stop();
        },
      ),
      { numRuns: 25 },
    );
  });
});
