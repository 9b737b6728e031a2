import { describe, expect, it } from 'vitest';
import { createRelay, publish } from '@sagabox/core';
import { useDatabase } from '../support/test-pool.js';
import { startChild } from '../support/child.js';
import { waitFor } from '../support/wait-for.js';
import { publishCommitted } from '../support/in-transaction.js';

const { db, pool, count } = await useDatabase();
const p = pool(12);
await p.query('CREATE TABLE effects (message_id uuid NOT NULL, n int)');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Publishes `payloads` on `<queue>.x` in one transaction and relays them into `queue`; returns their ids. */
async function queueCommitted(queue: string, payloads: Record<string, unknown>[]): Promise<string[]> {
  const ids = await publishCommitted(p, payloads.map((payload) => ({ topic: `${queue}.x`, payload })));
  const relay = createRelay({ pool: p, routes: [{ topic: `${queue}.*`, queue }] });
  await relay.start();
  await waitFor('queued', async () => (await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = $1`, [queue])) === payloads.length);
  await relay.stop();
  return ids;
}

describe('SIGKILL', () => {
  it('a relay killed mid-batch, again and again, loses nothing and delivers nothing rolled back', async () => {
    const committed: string[] = [];
    const rolledBack: string[] = [];
    let producing = true;
    const producer = async (seed: number) => {
      let i = 0;
      while (producing) {
        const c = await p.connect();
        try {
          await c.query('BEGIN');
          const n = 1 + ((seed + i) % 4);
          const { ids } = await publish(c, Array.from({ length: n }, (_, j) => ({ topic: 'kill.relay', payload: { seed, i, j } })));
          if ((seed + i) % 7 === 0) {
            await c.query('ROLLBACK');
            rolledBack.push(...ids);
          } else {
            await c.query('COMMIT');
            committed.push(...ids);
          }
        } finally {
          c.release();
        }
        i++;
        await sleep(2);
      }
    };
    const producers = [producer(1), producer(2)];
    let kills = 0;
    for (let round = 0; round < 6; round++) {
      const relay = startChild('relay-child.mjs', { DATABASE_URL: db.url, ROUTE_TOPIC: 'kill.*', ROUTE_QUEUE: 'killed', BATCH_SIZE: '20', SLOW_MS: '40' });
      await relay.waitForLine(/^ready$/);
      await sleep(150 + Math.floor(Math.random() * 250));
      await relay.kill('SIGKILL');
      kills++;
    }
    producing = false;
    await Promise.all(producers);
    expect(kills).toBe(6);
    // Some deliveries were cut off: what is left in the outbox is drained by a fresh relay.
    const relay = createRelay({ pool: p, routes: [{ topic: 'kill.*', queue: 'killed' }], pollIntervalMs: 50 });
    await relay.start();
    await waitFor('outbox drained', async () => (await count('SELECT count(*) AS n FROM sagabox.outbox')) === 0, 30_000);
    await relay.stop();
    const { rows } = await p.query<{ id: string }>(`SELECT id FROM sagabox.queue_messages WHERE queue = 'killed'`);
    const delivered = rows.map((r) => r.id).sort();
    expect(committed.length).toBeGreaterThan(100);
    expect(delivered).toEqual([...committed].sort());
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE id = ANY($1)`, [rolledBack])).toBe(0);
  });

  it('a worker killed inside a handler: the batch comes back after the lease and every effect exists once', async () => {
    const ids = await queueCommitted('killw', Array.from({ length: 20 }, (_, n) => ({ n, hang: n === 7 })));

    const first = startChild('worker-child.mjs', { DATABASE_URL: db.url, QUEUE: 'killw', LEASE_MS: '1000', BATCH_SIZE: '5' });
    await first.waitForLine(/^in-handler /);
    await first.kill('SIGKILL');
    // The killed batch's effects were in its open transaction: gone with it.
    expect(await count(`SELECT count(*) AS n FROM effects WHERE n BETWEEN 5 AND 9`)).toBe(0);
    const killedAt = Date.now();
    const second = startChild('worker-child.mjs', { DATABASE_URL: db.url, QUEUE: 'killw', LEASE_MS: '1000', NO_HANG: '1' });
    await waitFor('all handled', async () => (await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'killw'`)) === 0, 20_000);
    const hungDoneAt = Date.now();
    await second.kill('SIGTERM');
    expect(hungDoneAt - killedAt).toBeGreaterThanOrEqual(500); // waited for the dead worker's lease
    const { rows } = await p.query<{ message_id: string; c: number }>(`SELECT message_id, count(*)::int AS c FROM effects GROUP BY message_id`);
    expect(rows).toHaveLength(20);
    expect(rows.every((r) => r.c === 1)).toBe(true);
    expect(rows.map((r) => r.message_id).sort()).toEqual([...ids].sort());
  });

  it('a worker killed while it handles the rest of a failed batch under savepoints: nothing of that transaction stays, and every effect exists once', async () => {
    // 2 fails its first attempt, so the batch's rest goes again under savepoints, where 7 hangs.
    const ids = await queueCommitted('killsp', Array.from({ length: 20 }, (_, n) => ({ n: 100 + n, fail: n === 2, hang: n === 7 })));

    const first = startChild('worker-child.mjs', { DATABASE_URL: db.url, QUEUE: 'killsp', LEASE_MS: '1000', BATCH_SIZE: '20' });
    await first.waitForLine(/^in-handler /);
    await first.kill('SIGKILL');
    // 2's retry was recorded before the rest began; the rest's savepoints died with their transaction.
    expect(await count(`SELECT count(*) AS n FROM effects WHERE n BETWEEN 100 AND 119`)).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'killsp' AND (payload->>'n')::int = 102 AND attempts = 1 AND lease_token IS NULL`)).toBe(1);
    const second = startChild('worker-child.mjs', { DATABASE_URL: db.url, QUEUE: 'killsp', LEASE_MS: '1000', NO_HANG: '1' });
    await waitFor('all handled', async () => (await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'killsp'`)) === 0, 20_000);
    await second.kill('SIGTERM');
    const { rows } = await p.query<{ message_id: string; c: number }>(`SELECT message_id, count(*)::int AS c FROM effects WHERE n BETWEEN 100 AND 119 GROUP BY message_id`);
    expect(rows).toHaveLength(20);
    expect(rows.every((r) => r.c === 1)).toBe(true);
    expect(rows.map((r) => r.message_id).sort()).toEqual([...ids].sort());
  });
});
