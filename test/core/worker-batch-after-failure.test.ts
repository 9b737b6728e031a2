import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createWorker, Outcome } from '@sagabox/core';
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

type Failure = 'throw' | 'retry' | 'swallow';

/**
 * A worker whose handler writes one effect row per message and, on a message's first
 * attempt, fails as `failing` says: throws, asks for a retry, or swallows a failed
 * statement and returns as if all went well.
 */
function failingWorker(queue: string, size: number, failing: ReadonlyMap<number, Failure>, calls: Call[]) {
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
        if (m.attempts > 1) return undefined;
        switch (failing.get(n)) {
          case 'throw':
            throw new Error(`first attempt of ${n} fails`);
          case 'retry':
            return Outcome.retry({ delayMs: 1 });
          case 'swallow':
            await client.query('SELECT 1/0').catch(() => undefined);
            return undefined;
          default:
            return undefined;
        }
      },
    }),
  );
}

/** The transaction of each message's last call: the one that committed its effect. */
function lastTxids(calls: Call[]): Map<number, string> {
  return new Map(calls.map((c) => [c.n, c.txid]));
}

describe('createWorker: the rest of a batch after a handler failed', () => {
  it('handles the rest of the batch again in one transaction, each handler under a savepoint of its own, each effect once', async () => {
    const calls: Call[] = [];
    const worker = failingWorker('split', 8, new Map([[2, 'throw']]), calls);
    await fill('split', 8);
    expect(await worker.runOnce()).toBe(8);
    // 0, 1 and 2 in the first transaction, rolled back; 2's retry recorded; then 0, 1 and 3-7.
    expect(calls.map((c) => c.n)).toEqual([0, 1, 2, 0, 1, 3, 4, 5, 6, 7]);
    const last = lastTxids(calls.filter((c) => c.n !== 2));
    expect(new Set(last.values()).size).toBe(1);
    expect(last.get(0)).not.toBe(calls[0]!.txid);
    expect(await count(`SELECT count(*) AS n FROM effects e JOIN sagabox.inbox i ON i.message_id = e.message_id WHERE i.consumer = 'split'`)).toBe(7);
    // 2 waits for its retry, its effect and inbox row rolled back; the next run handles it.
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'split' AND attempts = 1 AND lease_token IS NULL`)).toBe(1);
    await new Promise((r) => setTimeout(r, 20));
    expect(await worker.runOnce()).toBe(1);
    expect(await count(`SELECT count(*) AS n FROM effects e JOIN sagabox.inbox i ON i.message_id = e.message_id WHERE i.consumer = 'split'`)).toBe(8);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'split'`)).toBe(0);
  });

  it('commits a large batch after a failure in transactions of at most 32 handlers', async () => {
    const calls: Call[] = [];
    const worker = failingWorker('chunks', 100, new Map([[0, 'throw']]), calls);
    await fill('chunks', 100);
    expect(await worker.runOnce()).toBe(100);
    const last = lastTxids(calls.filter((c) => c.n !== 0));
    expect(calls.filter((c) => c.n > 0)).toHaveLength(99);
    // The 99 after 0, whose retry was recorded first: 32, 32, 32 and 3.
    const sizes = [...new Set(last.values())].map((t) => [...last.values()].filter((x) => x === t).length);
    expect(sizes).toEqual([32, 32, 32, 3]);
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

  it('for any batch and any messages failing in any way, commits each effect once, calls a message at most twice, and commits the rest in one transaction', async () => {
    let run = 0;
    const failure = fc.constantFrom<Failure>('throw', 'retry', 'swallow');
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 12 }).chain((size) =>
          fc.tuple(fc.constant(size), fc.uniqueArray(fc.tuple(fc.integer({ min: 0, max: size - 1 }), failure), { maxLength: size, selector: ([n]) => n })),
        ),
        async ([size, failingList]) => {
          const queue = `prop${run++}`;
          const failing = new Map(failingList);
          const calls: Call[] = [];
          const worker = failingWorker(queue, size, failing, calls);
          await fill(queue, size);
          expect(await worker.runOnce()).toBe(size);
          const perMessage = new Map<number, number>();
          for (const c of calls) perMessage.set(c.n, (perMessage.get(c.n) ?? 0) + 1);
          for (const n of perMessage.keys()) expect(perMessage.get(n)).toBeLessThanOrEqual(2);
          const inbox = 'SELECT count(*) AS n FROM effects e JOIN sagabox.inbox i ON i.message_id = e.message_id WHERE i.consumer = $1';
          expect(await count(inbox, [queue])).toBe(size - failing.size);
          const good = lastTxids(calls.filter((c) => !failing.has(c.n)));
          expect(new Set(good.values()).size).toBeLessThanOrEqual(1);
          // The failed ones are retried and then done; nothing is lost, doubled or dead.
          for (let i = 0; i < 20 && (await count('SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = $1', [queue])) > 0; i++) {
            await new Promise((r) => setTimeout(r, 5));
            await worker.runOnce();
          }
          expect(await count('SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = $1', [queue])).toBe(0);
          expect(await count(inbox, [queue])).toBe(size);
          expect(await listDeadLetters(p, { queue })).toEqual([]);
          await worker.stop();
        },
      ),
      { numRuns: 30 },
    );
  });
});
