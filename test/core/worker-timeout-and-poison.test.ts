import { describe, expect, it } from 'vitest';
import pg from 'pg';
import {
  createRelay, createWorker, isSagaboxError, Outcome, publish, type OutboxMessage,
} from '@sagabox/core';
import { listDeadLetters } from '@sagabox/core/admin';
import { useDatabase } from '../support/test-pool.js';
import { stopAfterEach } from '../support/stop-after-each.js';
import { waitFor } from '../support/wait-for.js';

const { db, pool, count } = await useDatabase();
const p = pool(10);
await p.query('CREATE TABLE effects (message_id uuid, n int, during_hang boolean)');

const { track, stopAll } = stopAfterEach();

async function send(messages: OutboxMessage[]): Promise<string[]> {
  const c = await p.connect();
  try {
    await c.query('BEGIN');
    const { ids } = await publish(c, messages);
    await c.query('COMMIT');
    return ids;
  } finally {
    c.release();
  }
}

/** A pool whose connections name themselves, so pg_stat_activity can pick out the worker's. */
function namedPool(applicationName: string): pg.Pool {
  const wp = new pg.Pool({ connectionString: db.url, max: 6, connectionTimeoutMillis: 10_000, application_name: applicationName });
  wp.on('error', () => {});
  return wp;
}

describe('worker: handler timeout', () => {
  it('gives each call of a batch the whole handlerTimeoutMs from its own start', async () => {
    await p.query(`INSERT INTO sagabox.queues (name) VALUES ('slowish') ON CONFLICT DO NOTHING`);
    await p.query(`INSERT INTO sagabox.queue_messages (queue, id, topic, payload, created_at)
                   SELECT 'slowish', gen_random_uuid(), 's.x', '{}', now() FROM generate_series(1, 3)`);
    const outcomes: string[] = [];
    const created = new Map<string, number>();
    const { rows } = await p.query<{ id: string; created_at: Date }>(`SELECT id, created_at FROM sagabox.queue_messages WHERE queue = 'slowish'`);
    // Three calls of 60% of the timeout each, in one transaction: together they outlast
    // the timeout, each alone does not.
    const worker = track(createWorker({
      pool: p, queue: 'slowish', listen: false, batchSize: 3, handlerTimeoutMs: 1_000,
      handler: (m) => {
        created.set(m.id, m.createdAt.getTime());
        return new Promise<void>((resolve) => setTimeout(resolve, 600));
      },
    }));
    worker.events.on('handlerCalled', (c) => outcomes.push(c.outcome));
    expect(await worker.runOnce()).toBe(3);
    expect(outcomes).toEqual(['ok', 'ok', 'ok']);
    // createdAt is the row's created_at, to the millisecond, as node-postgres parses it.
    expect(created).toEqual(new Map(rows.map((r) => [r.id, r.created_at.getTime()])));
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'slowish'`)).toBe(0);
  });

  it('times out a hung handler (in JS or in a query), rolls its transaction back, retries, dead-letters it as timeout, and holds no transaction open meanwhile', async () => {
    const handlerTimeoutMs = 1_500;
    const wp = namedPool('hung-worker');
    const relay = track(createRelay({ pool: p, routes: [{ topic: 'hung.*', queue: 'hung' }], pollIntervalMs: 50 }));
    let hanging = 0;
    const calls = new Map<number, number>();
    const aborts: unknown[] = [];
    const handler = async (m: { id: string; payload: unknown }, { client, signal }: { client: pg.PoolClient; signal: AbortSignal }) => {
      const { n, hang } = m.payload as { n: number; hang?: 'js' | 'sql' };
      calls.set(n, (calls.get(n) ?? 0) + 1);
      if (hang) {
        hanging++;
        signal.addEventListener('abort', () => {
          aborts.push(signal.reason);
          hanging--;
        });
        // Writes first, then hangs ignoring the signal: the write must never commit.
        await client.query('INSERT INTO effects (message_id, n) VALUES ($1, $2)', [m.id, n]);
        if (hang === 'sql') await client.query('SELECT pg_sleep(3600)');
        else await new Promise(() => {});
      }
      await client.query('INSERT INTO effects (message_id, n, during_hang) VALUES ($1, $2, $3)', [m.id, n, hanging > 0]);
    };
    const mk = (name: string) => track(createWorker({
      pool: wp, queue: 'hung', name, handlerTimeoutMs, pollIntervalMs: 50, batchSize: 5,
      retry: { maxAttempts: 2, baseDelayMs: 50, maxDelayMs: 50 }, handler,
    }));
    // Samples how long each of the worker's connections has been idle in transaction,
    // or has run a transaction, the longest seen.
    let longestIdleInTx = 0;
    let longestTx = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const { rows } = await p.query<{ idle_ms: number | null; tx_ms: number | null }>(`
          SELECT max(CASE WHEN state LIKE 'idle in transaction%' THEN extract(epoch FROM now() - state_change) * 1000 END) AS idle_ms,
                 max(extract(epoch FROM now() - xact_start) * 1000) AS tx_ms
          FROM pg_stat_activity WHERE application_name = 'hung-worker' AND datname = current_database()`);
        longestIdleInTx = Math.max(longestIdleInTx, Number(rows[0]?.idle_ms ?? 0));
        longestTx = Math.max(longestTx, Number(rows[0]?.tx_ms ?? 0));
        await new Promise((r) => setTimeout(r, 40));
      }
    })();
    try {
      await mk('a').start();
      await mk('b').start();
      await relay.start();
      const hung = await send([{ topic: 'hung.x', payload: { n: 1, hang: 'js' } }, { topic: 'hung.x', payload: { n: 2, hang: 'sql' } }]);
      // The other messages come while a handler hangs: they must not wait for it.
      await waitFor('a handler hanging', () => hanging > 0);
      const good = await send(Array.from({ length: 40 }, (_, i) => ({ topic: 'hung.x', payload: { n: 100 + i } })));
      await waitFor('both hung messages dead-lettered', async () => (await listDeadLetters(p, { queue: 'hung' })).length === 2, 30_000);
      await waitFor('every good message handled', async () => (await count(`SELECT count(*) AS n FROM effects WHERE message_id = ANY($1)`, [good])) === 40);

      const dead = await listDeadLetters(p, { queue: 'hung' });
      for (const d of dead) {
        expect(d.reason).toBe('timeout');
        expect(d.attempts).toBe(2);
        expect(d.error).toMatch(/HANDLER_TIMEOUT.*1500 ms/);
      }
      expect(calls.get(1)).toBe(2);
      expect(calls.get(2)).toBe(2);
      expect(aborts).toHaveLength(4);
      expect(aborts.every((r) => isSagaboxError(r, 'HANDLER_TIMEOUT'))).toBe(true);
      // The hung handlers' writes were rolled back; every good message took effect once,
      // some of them while a handler hung (the second worker, and the first one's other slots, went on).
      expect(await count(`SELECT count(*) AS n FROM effects WHERE message_id = ANY($1)`, [hung])).toBe(0);
      expect(await count(`SELECT count(DISTINCT message_id) AS n FROM effects WHERE message_id = ANY($1)`, [good])).toBe(40);
      expect(await count(`SELECT count(*) AS n FROM effects WHERE during_hang`)).toBeGreaterThan(0);
      expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'hung'`)).toBe(0);
      // No connection of the workers stayed in a transaction much beyond the timeout
      // (the slack covers the sampler's period and a slow machine), and none is left.
      sampling = false;
      await sampler;
      expect(longestIdleInTx).toBeLessThan(handlerTimeoutMs + 1_500);
      expect(longestTx).toBeLessThan(handlerTimeoutMs + 1_500);
      await waitFor('no pg_sleep left running', async () =>
        (await count(`SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(3600)%' AND state = 'active'`)) === 0, 5_000);
    } finally {
      sampling = false;
      await sampler;
      await stopAll();
      await wp.end();
    }
  });
});

describe('worker: poison isolation', () => {
  it('dead-letters each unusable outcome with a readable reason, while the good messages of the same batch are handled in that run', async () => {
    const relay = createRelay({ pool: p, routes: [{ topic: 'poison.*', queue: 'poison' }], listen: false });
    const kinds = ['no-proto', 'dead-undefined', 'retry-nan', 'retry-negative', 'nul-string', 'swallowed-sql-error', 'sync-throw'] as const;
    type Kind = (typeof kinds)[number];
    const worker = createWorker({
      pool: p, queue: 'poison', batchSize: 50, listen: false,
      retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 10 },
      handler: (m, { client }) => {
        const { n, kind } = m.payload as { n: number; kind?: Kind };
        const write = () => client.query('INSERT INTO effects (message_id, n) VALUES ($1, $2)', [m.id, n]);
        switch (kind) {
          case 'no-proto':
            return write().then(() => {
              throw Object.create(null);
            });
          case 'dead-undefined':
            return write().then(() => Outcome.deadLetter(undefined as unknown as string));
          case 'retry-nan':
            return write().then(() => Outcome.retry({ delayMs: Number.NaN }));
          case 'retry-negative':
            return { kind: 'retry', delayMs: -5, reason: undefined } as const;
          case 'nul-string':
            return write().then(() => {
              throw 'bad\0byte';
            });
          case 'swallowed-sql-error':
            // The handler catches the failed statement and returns normally: its
            // transaction is aborted, so nothing of the batch may be assumed committed.
            return write().then(() => client.query('SELECT 1/0').then(() => undefined, () => undefined));
          case 'sync-throw':
            throw new RangeError('thrown before any await');
          default:
            return write().then(() => undefined);
        }
      },
    });
    const poison = await send(kinds.map((kind, n) => ({ topic: 'poison.x', payload: { n, kind } })));
    const good = await send(Array.from({ length: 10 }, (_, i) => ({ topic: 'poison.x', payload: { n: 100 + i } })));
    await relay.runOnce();
    const t0 = Date.now();
    expect(await worker.runOnce()).toBe(poison.length + good.length); // one batch, the poison first
    expect(await count(`SELECT count(*) AS n FROM effects WHERE message_id = ANY($1)`, [good])).toBe(10);
    expect(Date.now() - t0).toBeLessThan(15_000);
    // Second attempts, after the 10 ms backoff: the failing ones reach maxAttempts.
    await waitFor('all poison dead-lettered', async () => {
      await worker.runOnce();
      return (await listDeadLetters(p, { queue: 'poison' })).length === kinds.length;
    });
    const dead = new Map((await listDeadLetters(p, { queue: 'poison' })).map((d) => [d.id, d]));
    const of = (kind: Kind) => dead.get(poison[kinds.indexOf(kind)]!)!;
    expect(of('no-proto')).toMatchObject({ reason: 'failed', attempts: 2, error: 'thrown object without a prototype {}' });
    expect(of('dead-undefined')).toMatchObject({ reason: 'non_retryable', attempts: 1 });
    expect(of('dead-undefined').error).toMatch(/no reason given/);
    expect(of('retry-nan')).toMatchObject({ reason: 'failed', attempts: 2 });
    expect(of('retry-nan').error).toMatch(/INVALID_OUTCOME.*delayMs must be a finite number.*NaN/s);
    expect(of('retry-negative').error).toMatch(/INVALID_OUTCOME.*-5/s);
    expect(of('nul-string')).toMatchObject({ reason: 'failed', attempts: 2, error: 'bad\\0byte' });
    expect(of('swallowed-sql-error')).toMatchObject({ reason: 'failed', attempts: 2 });
    expect(of('swallowed-sql-error').error).toMatch(/statement of the handler failed and the handler went on without rethrowing it.*25P02/s);
    expect(of('sync-throw').error).toMatch(/^RangeError: thrown before any await\n\s+at /);
    for (const d of dead.values()) expect(d.attempts).toBeLessThanOrEqual(2);
    // Poison effects were all rolled back; the queue is empty.
    expect(await count(`SELECT count(*) AS n FROM effects WHERE message_id = ANY($1)`, [poison])).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'poison'`)).toBe(0);
  });

  it('dead-letters a message claimed past maxAttempts (earlier attempts ended without a result) without running its handler', async () => {
    await p.query(`INSERT INTO sagabox.queues (name) VALUES ('crashy') ON CONFLICT DO NOTHING`);
    // As a worker killed by its handler leaves it: leased, lease run out, attempts used up.
    await p.query(`INSERT INTO sagabox.queue_messages (queue, id, topic, payload, created_at, lease_token, locked_until, locked_by, attempts)
                   VALUES ('crashy', gen_random_uuid(), 'c.x', '{}', now(), gen_random_uuid(), now() - interval '1 s', 'killed', 3)`);
    let calls = 0;
    const worker = createWorker({ pool: p, queue: 'crashy', listen: false, retry: { maxAttempts: 3 }, handler: () => void calls++ });
    expect(await worker.runOnce()).toBe(1);
    expect(calls).toBe(0);
    const [d] = await listDeadLetters(p, { queue: 'crashy' });
    expect(d).toMatchObject({ reason: 'failed', attempts: 4 });
    expect(d!.error).toMatch(/^claimed for attempt 4 with maxAttempts 3: no attempts left/);
  });

  it('dead-letters a message whose attempts exceed a lowered maxAttempts, saying so, without running its handler', async () => {
    await p.query(`INSERT INTO sagabox.queues (name) VALUES ('lowered') ON CONFLICT DO NOTHING`);
    // Retried twice under a higher maxAttempts (its last error recorded, no lease), then
    // the worker restarts with maxAttempts 1: the claim counts attempt 3.
    await p.query(`INSERT INTO sagabox.queue_messages (queue, id, topic, payload, created_at, attempts, last_error)
                   VALUES ('lowered', gen_random_uuid(), 'l.x', '{}', now(), 2, 'Error: second failure')`);
    let calls = 0;
    const worker = createWorker({ pool: p, queue: 'lowered', listen: false, retry: { maxAttempts: 1 }, handler: () => void calls++ });
    expect(await worker.runOnce()).toBe(1);
    expect(calls).toBe(0);
    const [d] = await listDeadLetters(p, { queue: 'lowered' });
    expect(d).toMatchObject({ reason: 'failed', attempts: 3 });
    expect(d!.error).toMatch(/^claimed for attempt 3 with maxAttempts 1: no attempts left \(maxAttempts was lowered since its earlier attempts, or /);
  });
});
