import { afterEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { createRelay, createWorker, publish, type Worker } from '@sagabox/core';
import { addDirectRoute, queueStats } from '@sagabox/core/admin';
import { claimSql } from '../../packages/core/src/worker/claim-sql.js';
import { CLAIM_PLAN_BY_INDEX_NO_JIT } from '../../packages/core/src/shared/claim-plan.js';
import { HOT_KEY_ROWS, KEY_HELD_WINDOW, KEY_HOLD_LIMIT } from '../../packages/core/src/shared/held.js';
import { startChild, type Child } from '../support/child.js';
import { useDatabase } from '../support/test-pool.js';
import { waitFor } from '../support/wait-for.js';

// Rows held for their key: the worker's sweep holds a hot key's ungrouped backlog past its
// first KEY_HELD_WINDOW out of the claim index, and claims and the sweep clear them as the
// key moves on. The head-of-key rule never depends on the flag; what could break is
// liveness (a held row nobody clears), order and once-only handling, and the claim's cost.

const { db, pool, count } = await useDatabase();
const p = pool(12);
const sql = claimSql('sagabox');
await p.query('CREATE TABLE key_runs (n bigserial PRIMARY KEY, id uuid, queue text, key text, i int)');
// What test/fixtures/worker-child.mjs writes (message_id, n), in the order committed.
await p.query('CREATE TABLE effects (seq bigserial PRIMARY KEY, message_id uuid NOT NULL, n int)');
const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});

let queues = 0;
const fresh = (name: string): string => `${name}-${++queues}`;

/**
 * Publishes one message per key given (null: no key), through a direct route or the
 * relay, payload its index among its key's (`seen` counts them across calls).
 */
async function enqueue(queue: string, keys: (string | null)[], way: 'direct' | 'relay', seen = new Map<string | null, number>()): Promise<string[]> {
  const topic = `${queue}.m`;
  const messages = keys.map((key) => {
    const i = seen.get(key) ?? 0;
    seen.set(key, i + 1);
    return { topic, payload: { i }, ...(key === null ? {} : { key }) };
  });
  if (way === 'direct') {
    await addDirectRoute(p, { topic, queue });
    return (await publish(p, messages)).ids;
  }
  const { ids } = await publish(p, messages);
  const relay = createRelay({ pool: p, routes: [{ topic, queue }], batchSize: 1_000, listen: false });
  while ((await relay.runOnce()) > 0);
  return ids;
}

/** The queue's rows in seq order. */
async function rowsOf(queue: string): Promise<{ id: string; key: string | null; held: boolean }[]> {
  const { rows } = await p.query('SELECT id, key, held FROM sagabox.queue_messages WHERE queue = $1 ORDER BY seq', [queue]);
  return rows;
}

/** Runs the sweep's hold until it holds nothing more; returns the rows held. */
async function holdAll(queue: string): Promise<number> {
  let total = 0;
  for (;;) {
    const { rows: [r] } = await p.query<{ held: string }>(sql.holdKeyTails, [queue]);
    total += Number(r!.held);
    if (Number(r!.held) === 0) return total;
  }
}

function startWorkers(queue: string, n: number, pause = 0): void {
  for (let i = 0; i < n; i++) {
    const w = createWorker({
      pool: p, queue, concurrency: 4, pollIntervalMs: 50,
      handler: async (m, { client }) => {
        await client.query('INSERT INTO key_runs (id, queue, key, i) VALUES ($1, $2, $3, $4)', [m.id, queue, m.key, (m.payload as { i: number }).i]);
        if (pause > 0) await new Promise((r) => setTimeout(r, pause));
      },
    });
    workers.push(w);
    w.start();
  }
}

const handled = (queue: string): Promise<number> => count('SELECT count(*) AS n FROM key_runs WHERE queue = $1', [queue]);

/** Each key's payload indexes in the order they were handled. */
async function handledOrder(queue: string): Promise<Map<string | null, number[]>> {
  const { rows } = await p.query<{ key: string | null; i: number }>('SELECT key, i FROM key_runs WHERE queue = $1 ORDER BY n', [queue]);
  const order = new Map<string | null, number[]>();
  for (const r of rows) order.set(r.key, [...(order.get(r.key) ?? []), r.i]);
  return order;
}

describe('rows held for a hot key', () => {
  it('workers SIGKILLed again and again while hot keys are held and released, with a producer on: every message once, each key in order, none left held', async () => {
    const queue = 'kill-hot';
    const topic = `${queue}.m`;
    await addDirectRoute(p, { topic, queue });
    const keyOf = new Map<string, string>();
    const next = new Map<string, number>();
    const produce = async (perKey: number): Promise<void> => {
      const messages = ['hot0', 'hot1', 'hot2', null].flatMap((key) => Array.from({ length: key === null ? 20 : perKey }, () => {
        const k = key ?? 'none';
        const n = next.get(k) ?? 0;
        next.set(k, n + 1);
        return { topic, payload: { n }, ...(key === null ? {} : { key }) };
      }));
      const { ids } = await publish(p, messages);
      ids.forEach((id, i) => keyOf.set(id, messages[i]!.key ?? 'none'));
    };
    await produce(2_000);
    let producing = true;
    const producer = (async () => {
      while (producing) {
        await produce(40);
        await new Promise((r) => setTimeout(r, 30));
      }
    })();
    const env = { DATABASE_URL: db.url, QUEUE: queue, LEASE_MS: '1000', BATCH_SIZE: '10' };
    try {
      for (let round = 0; round < 5; round++) {
        const victim: Child = startChild('worker-child.mjs', env);
        await victim.waitForLine(/^ready$/);
        await waitFor('rows held', async () => (await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = $1 AND held`, [queue])) > 0, 20_000);
        await new Promise((r) => setTimeout(r, 100 + 150 * round));
        await victim.kill('SIGKILL');
      }
    } finally {
      producing = false;
      await producer;
    }
    const last = startChild('worker-child.mjs', env);
    await last.waitForLine(/^ready$/);
    await waitFor('all handled', async () => (await count('SELECT count(*) AS n FROM effects')) === keyOf.size, 90_000);
    await last.kill('SIGTERM');
    expect(await count('SELECT count(DISTINCT message_id) AS n FROM effects')).toBe(keyOf.size);
    const { rows } = await p.query<{ message_id: string; n: number }>('SELECT message_id, n FROM effects ORDER BY seq');
    const order = new Map<string, number[]>();
    for (const r of rows) order.set(keyOf.get(r.message_id)!, [...(order.get(keyOf.get(r.message_id)!) ?? []), r.n]);
    for (const key of ['hot0', 'hot1', 'hot2']) expect(order.get(key)).toEqual(Array.from({ length: next.get(key)! }, (_, i) => i));
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = $1`, [queue])).toBe(0);
  });

  it(`the sweep holds a key with more than ${HOT_KEY_ROWS} waiting down to its first ${KEY_HELD_WINDOW}, leaves the others alone, and a claim clears one held row per head it leases`, async () => {
    const queue = fresh('hold');
    const keys = [...Array.from({ length: 40 }, () => 'hot'), ...Array.from({ length: HOT_KEY_ROWS }, () => 'warm'), null, null, null];
    const ids = await enqueue(queue, keys, 'direct');
    expect(await holdAll(queue)).toBe(40 - KEY_HELD_WINDOW);
    const heldIds = async () => (await rowsOf(queue)).filter((r) => r.held).map((r) => r.id);
    expect(await heldIds()).toEqual(ids.slice(KEY_HELD_WINDOW, 40));
    expect((await queueStats(p, { queues: [queue] }))[0]).toMatchObject({ ready: keys.length, held: 36 });
    for (let round = 0; round < 5; round++) {
      const { rows } = await p.query<{ id: string | null; key: string | null }>(sql.unlimited(10), [queue, randomUUID(), 'test', 60_000]);
      // The heads of both keys (the warm key's held by nobody), and the unkeyed rows once.
      expect(rows.filter((r) => r.key === 'hot').map((r) => r.id)).toEqual([ids[round]]);
      expect(rows.filter((r) => r.key === 'warm').map((r) => r.id)).toEqual([ids[40 + round]]);
      expect(await heldIds()).toEqual(ids.slice(KEY_HELD_WINDOW + round + 1, 40));
      await p.query('DELETE FROM sagabox.queue_messages WHERE queue = $1 AND id = ANY($2)', [queue, rows.map((r) => r.id)]);
    }
  });

  it('a claim walks none of a hot key\'s held backlog of 100,000: its buffer reads do not grow with it, nor is it compiled', async () => {
    const queue = fresh('deep');
    // The claim is planned as the worker plans one under a backlog (claim-plan.ts): as
    // the planner likes, with the statistics of 100,000 rows of one key, its head-of-key
    // test may read a partition whole, held rows or not (35,410 buffers on one server). A
    // hold is an UPDATE: the old versions stay in the claim index until vacuum, or the
    // first scan past them, removes them, and a snapshot in this database (an
    // autoanalyze, with autovacuum on) keeps them. So no autovacuum on the queue, and a
    // VACUUM before each look, a few looks at most: this test is about the live rows.
    for (let slot = 0; slot < 4; slot++) await p.query(`ALTER TABLE sagabox.queue_messages_${slot} SET (autovacuum_enabled = off)`);
    await p.query(
      `INSERT INTO sagabox.queue_messages (queue, id, topic, key, payload, created_at)
       SELECT $1, gen_random_uuid(), 't', 'hot', '{}', now() FROM generate_series(1, 100000)`, [queue]);
    await enqueue(queue, Array.from({ length: 20 }, (_, n) => `quiet-${n}`), 'relay');
    await p.query('ANALYZE sagabox.queue_messages');
    // Bounded transactions: each sweep's hold stops at KEY_HOLD_LIMIT rows.
    const { rows: [first] } = await p.query<{ held: string }>(sql.holdKeyTails, [queue]);
    expect(Number(first!.held)).toBe(KEY_HOLD_LIMIT);
    expect(KEY_HOLD_LIMIT + (await holdAll(queue))).toBe(100_000 - KEY_HELD_WINDOW);
    const claimOnce = async (byIndex = true): Promise<{ blocks: number; jit: unknown; keys: string[] }> => {
      await p.query('VACUUM sagabox.queue_messages');
      const client = await p.connect();
      try {
        await client.query('BEGIN');
        if (byIndex) await client.query(CLAIM_PLAN_BY_INDEX_NO_JIT);
        const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: { 'Shared Hit Blocks': number; 'Shared Read Blocks': number }; JIT?: unknown }] }>(
          `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql.unlimited(10)}`, [queue, randomUUID(), 'test', 60_000]);
        const explained = rows[0]!['QUERY PLAN'][0];
        const { rows: leased } = await client.query<{ key: string }>('SELECT key FROM sagabox.queue_messages WHERE queue = $1 AND locked_by = $2', [queue, 'test']);
        return { blocks: explained.Plan['Shared Hit Blocks'] + explained.Plan['Shared Read Blocks'], jit: explained.JIT, keys: leased.map((r) => r.key).sort() };
      } finally {
        await client.query('ROLLBACK');
        client.release();
      }
    };
    // Planned as the planner likes (a trickle's claim), it is not compiled (JIT) either.
    expect((await claimOnce(false)).jit).toBeUndefined();
    let claim = await claimOnce();
    for (let look = 1; look < 5 && claim.blocks >= 1_500; look++) claim = await claimOnce();
    expect(claim.keys).toEqual(['hot', ...Array.from({ length: 9 }, (_, n) => `quiet-${n}`)].sort());
    // Walking the 99,996 held rows would read tens of thousands of buffers at every look.
    expect(claim.blocks).toBeLessThan(1_500);
  });

  it('handles every message once, each key in publish order, with holds by the workers\' sweeps and rows held at random as a missed release would leave them, generated', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ key: fc.option(fc.constantFrom('hot', 'a', 'b'), { nil: null }), size: fc.integer({ min: 1, max: 120 }) }),
          { minLength: 1, maxLength: 5 }),
        fc.constantFrom<'direct' | 'relay'>('direct', 'relay'),
        fc.constantFrom(0, 0.1, 0.3, 0.6),
        async (bursts, way, chaos) => {
          const queue = fresh('drain');
          const keys = bursts.flatMap((b) => Array.from({ length: b.size }, () => b.key));
          startWorkers(queue, 2, 1);
          // Two publishes, the second while the workers drain the first.
          const half = bursts.slice(0, Math.ceil(bursts.length / 2)).reduce((n, b) => n + b.size, 0);
          const seen = new Map<string | null, number>();
          const ids = [...(await enqueue(queue, keys.slice(0, half), way, seen)), ...(await enqueue(queue, keys.slice(half), way, seen))];
          // Rows held out of turn, the key's head among them: the sweep's repair finds them.
          await p.query(`UPDATE sagabox.queue_messages SET held = true
                         WHERE queue = $1 AND key IS NOT NULL AND lease_token IS NULL AND random() < $2`, [queue, chaos]);
          await waitFor('all handled', async () => (await handled(queue)) === ids.length, 30_000);
          await Promise.all(workers.splice(0).map((w) => w.stop()));
          expect(await count('SELECT count(DISTINCT id) AS n FROM key_runs WHERE queue = $1', [queue])).toBe(ids.length);
          expect(await handled(queue)).toBe(ids.length);
          const order = await handledOrder(queue);
          for (const [key, n] of seen) {
            if (key !== null) expect(order.get(key)).toEqual(Array.from({ length: n }, (_, i) => i));
          }
          expect(await count('SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = $1', [queue])).toBe(0);
        },
      ),
      { numRuns: 8 },
    );
  });

  it('a key whose rows are all held, its head among them (a release missed), is cleared by the sweep and handled in order', async () => {
    const queue = fresh('stalled');
    const keys = Array.from({ length: 30 }, () => 'k');
    await enqueue(queue, keys, 'direct');
    await p.query('UPDATE sagabox.queue_messages SET held = true WHERE queue = $1', [queue]);
    startWorkers(queue, 1);
    await waitFor('all handled', async () => (await handled(queue)) === keys.length, 20_000);
    expect((await handledOrder(queue)).get('k')).toEqual(Array.from({ length: 30 }, (_, i) => i));
  });

  it('a hot key behind which others wait: they are handled while the key goes on in order, and its backlog is held meanwhile', async () => {
    const queue = fresh('others');
    const keys = [...Array.from({ length: 3_000 }, () => 'hot'), ...Array.from({ length: 200 }, (_, n) => `k${n % 20}`)];
    await enqueue(queue, keys, 'direct');
    startWorkers(queue, 1, 2);
    await waitFor('the others handled', async () => (await count(`SELECT count(*) AS n FROM key_runs WHERE queue = $1 AND key <> 'hot'`, [queue])) === 200, 30_000);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = $1 AND key = 'hot' AND held`, [queue])).toBeGreaterThan(2_000);
    const order = await handledOrder(queue);
    expect(order.get('hot')).toEqual(Array.from({ length: order.get('hot')!.length }, (_, i) => i));
    for (let n = 0; n < 20; n++) expect(order.get(`k${n}`)).toEqual(Array.from({ length: 10 }, (_, i) => i));
  });
});
