import { afterEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { createRelay, createWorker, publish, type OutboxMessage, type Worker } from '@sagabox/core';
import { addDirectRoute, queueStats, setQueueLimits } from '@sagabox/core/admin';
import { claimSql } from '../../packages/core/src/worker/claim-sql.js';
import { HELD_WINDOW_FACTOR } from '../../packages/core/src/shared/held.js';
import { useDatabase } from '../support/test-pool.js';
import { waitFor } from '../support/wait-for.js';

// Held rows: a group's messages past HELD_WINDOW_FACTOR x groupMaxInFlight waiting are
// written out of the claim index, and come back into it as the group's window moves on.
// The group limit never depends on the flag; what could break is liveness (a held row
// nobody clears) and the claim's cost (a noisy group's backlog walked at every claim).

const { pool, count } = await useDatabase();
const p = pool(12);
await p.query('CREATE TABLE held_runs (id uuid PRIMARY KEY, queue text, grp text, started timestamptz, ended timestamptz)');
const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});

let queues = 0;
const fresh = (name: string): string => `${name}-${++queues}`;

type Way = 'direct-one' | 'direct-many' | 'relay';

/** Publishes `messages` into `queue` the way given, in order; returns their ids. */
async function enqueue(queue: string, messages: Omit<OutboxMessage, 'topic'>[], way: Way): Promise<string[]> {
  const topic = `${queue}.m`;
  if (way === 'relay') {
    const { ids } = await publish(p, messages.map((m) => ({ ...m, topic })));
    const relay = createRelay({ pool: p, routes: [{ topic, queue }], batchSize: 1_000, listen: false });
    while ((await relay.runOnce()) > 0);
    return ids;
  }
  await addDirectRoute(p, { topic, queue });
  if (way === 'direct-many') return (await publish(p, messages.map((m) => ({ ...m, topic })))).ids;
  const ids: string[] = [];
  for (const m of messages) ids.push(...(await publish(p, { ...m, topic })).ids);
  return ids;
}

/** The queue's rows in seq order: group and held flag. */
async function rowsOf(queue: string): Promise<{ id: string; group_key: string | null; held: boolean }[]> {
  const { rows } = await p.query('SELECT id, group_key, held FROM sagabox.queue_messages WHERE queue = $1 ORDER BY seq', [queue]);
  return rows;
}

/** What `held` should be for rows written one after another into an empty queue, nothing consumed. */
function expectedHeld(groups: (string | null)[], groupMax: number | null): boolean[] {
  const seen = new Map<string, number>();
  return groups.map((g) => {
    if (g === null || groupMax === null) return false;
    const n = seen.get(g) ?? 0;
    seen.set(g, n + 1);
    return n >= HELD_WINDOW_FACTOR * groupMax;
  });
}

/** Starts `n` workers on `queue` recording each handler's run in held_runs. */
function startWorkers(queue: string, n: number, handle: (m: { id: string; group: string | null }) => Promise<void> = async () => {}): void {
  for (let i = 0; i < n; i++) {
    const w = createWorker({
      pool: p, queue, concurrency: 4, pollIntervalMs: 50,
      handler: async (m, { client }) => {
        await client.query('INSERT INTO held_runs (id, queue, grp, started) VALUES ($1, $2, $3, clock_timestamp())', [m.id, queue, m.group]);
        await handle(m);
        await client.query('UPDATE held_runs SET ended = clock_timestamp() WHERE id = $1', [m.id]);
      },
    });
    workers.push(w);
    w.start();
  }
}

/** Most handlers of one group of `queue` running at one instant. */
const maxGroupOverlap = (queue: string): Promise<number> => count(
  `SELECT coalesce(max((SELECT count(*) FROM held_runs r2 WHERE r2.queue = r1.queue AND r2.grp = r1.grp
                          AND r2.started <= r1.started AND r2.ended > r1.started)), 0) AS n
   FROM held_runs r1 WHERE r1.queue = $1 AND r1.grp IS NOT NULL`, [queue]);

const handled = (queue: string): Promise<number> => count('SELECT count(*) AS n FROM held_runs WHERE queue = $1 AND ended IS NOT NULL', [queue]);

describe('held rows of a group over its limit', () => {
  it('writes a message held exactly when its group already has 2 x groupMaxInFlight waiting: direct routes one by one and in one publish, and the relay, generated', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.option(fc.constantFrom('a', 'b', 'c'), { nil: null }), { minLength: 1, maxLength: 30 }),
        fc.option(fc.integer({ min: 1, max: 4 }), { nil: null }),
        fc.constantFrom<Way>('direct-one', 'direct-many', 'relay'),
        async (groups, groupMax, way) => {
          const queue = fresh('write');
          if (groupMax !== null) await setQueueLimits(p, queue, { groupMaxInFlight: groupMax });
          const ids = await enqueue(queue, groups.map((g) => ({ payload: {}, ...(g === null ? {} : { group: g }) })), way);
          const rows = await rowsOf(queue);
          expect(rows.map((r) => r.id)).toEqual(ids);
          expect(rows.map((r) => r.held)).toEqual(expectedHeld(groups, groupMax));
        },
      ),
      { numRuns: 40 },
    );
  });

  it('a limited claim walks none of a noisy group\'s held backlog of 200,000: its buffer reads do not grow with it, nor is it compiled', async () => {
    const queue = fresh('noisy');
    await setQueueLimits(p, queue, { groupMaxInFlight: 5 });
    await p.query(
      `INSERT INTO sagabox.queue_messages (queue, id, topic, group_key, payload, created_at, held)
       SELECT $1, gen_random_uuid(), 't', 'noisy', '{}', now(), n > 10 FROM generate_series(1, 200000) n`, [queue]);
    // The window: five leased, in flight.
    await p.query(`UPDATE sagabox.queue_messages SET lease_token = gen_random_uuid(), locked_until = now() + interval '1 hour'
                   WHERE queue = $1 AND seq IN (SELECT seq FROM sagabox.queue_messages WHERE queue = $1 ORDER BY seq LIMIT 5)`, [queue]);
    await enqueue(queue, Array.from({ length: 20 }, (_, n) => ({ payload: { n }, group: `quiet-${n}` })), 'relay');
    await p.query('ANALYZE sagabox.queue_messages');
    const client = await p.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<{ 'QUERY PLAN': string }>(
        `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${claimSql('sagabox').limited(10)}`, [queue, randomUUID(), 'test', 60_000, randomUUID()]);
      const explained = (rows[0]!['QUERY PLAN'] as unknown as [{ Plan: { 'Shared Hit Blocks': number; 'Shared Read Blocks': number }; JIT?: unknown }])[0];
      const plan = explained.Plan;
      // Priced by the held backlog, the claim would be compiled (JIT) at every call: 100 ms.
      expect(explained.JIT).toBeUndefined();
      const { rows: leased } = await client.query<{ group_key: string }>(
        'SELECT group_key FROM sagabox.queue_messages WHERE queue = $1 AND locked_by = $2', [queue, 'test']);
      await client.query('ROLLBACK');
      expect(leased.map((r) => r.group_key).sort()).toEqual(Array.from({ length: 10 }, (_, n) => `quiet-${n}`).sort());
      // Walking the 199,990 held rows would read hundreds of thousands of buffers.
      expect(plan['Shared Hit Blocks'] + plan['Shared Read Blocks']).toBeLessThan(1_500);
    } finally {
      client.release();
    }
  });

  it('a claim clears as many held rows of a group as it leases, oldest first, so the claim index keeps 2 x groupMaxInFlight of it', async () => {
    const queue = fresh('clear');
    await setQueueLimits(p, queue, { groupMaxInFlight: 2 });
    const ids = await enqueue(queue, Array.from({ length: 10 }, (_, n) => ({ payload: { n }, group: 'g' })), 'direct-many');
    const heldIds = async () => (await rowsOf(queue)).filter((r) => r.held).map((r) => r.id);
    expect(await heldIds()).toEqual(ids.slice(4));
    for (let round = 0; round < 5; round++) {
      const { rows } = await p.query<{ id: string | null }>(claimSql('sagabox').limited(10), [queue, randomUUID(), 'test', 60_000, randomUUID()]);
      // The window: the group's first two, and as many held rows cleared behind them.
      expect(rows.map((r) => r.id)).toEqual(ids.slice(2 * round, 2 * round + 2));
      expect(await heldIds()).toEqual(ids.slice(Math.min(10, 4 + 2 * (round + 1))));
      await p.query('DELETE FROM sagabox.queue_messages WHERE queue = $1 AND id = ANY($2)', [queue, rows.map((r) => r.id)]);
    }
  });

  it('drains every group through its window, each message once and never more of a group at once than its limit, with several workers, generated', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ group: fc.option(fc.constantFrom('x', 'y', 'z'), { nil: null }), way: fc.constantFrom<Way>('direct-one', 'direct-many', 'relay') }),
          { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 5, max: 40 }),
        async (bursts, groupMax, size) => {
          const queue = fresh('drain');
          await setQueueLimits(p, queue, { groupMaxInFlight: groupMax });
          startWorkers(queue, 2, () => new Promise((r) => setTimeout(r, 2)));
          let total = 0;
          for (const b of bursts) {
            total += (await enqueue(queue, Array.from({ length: size }, (_, n) => ({ payload: { n }, ...(b.group === null ? {} : { group: b.group }) })), b.way)).length;
          }
          await waitFor('all handled', async () => (await handled(queue)) === total, 60_000);
          await Promise.all(workers.splice(0).map((w) => w.stop()));
          expect(await count('SELECT count(*) AS n FROM held_runs WHERE queue = $1', [queue])).toBe(total);
          expect(await maxGroupOverlap(queue)).toBeLessThanOrEqual(groupMax);
          expect(await count('SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = $1', [queue])).toBe(0);
        },
      ),
      { numRuns: 8 },
    );
  });

  it('clears a held row a publish left behind while its group drained (its transaction still open): the sweep finds it', async () => {
    const queue = fresh('race');
    await setQueueLimits(p, queue, { groupMaxInFlight: 1 });
    const first = await enqueue(queue, [{ payload: 1, group: 'g' }, { payload: 2, group: 'g' }], 'direct-one');
    // The group has its two (2 x 1) waiting: a publish now writes its message held, and
    // keeps its transaction open while a worker drains the other two.
    const late = await p.connect();
    try {
      await late.query('BEGIN');
      const [lateId] = (await publish(late, { topic: `${queue}.m`, payload: 3, group: 'g' })).ids;
      startWorkers(queue, 1);
      await waitFor('the first two handled', async () => (await handled(queue)) === first.length, 20_000);
      await late.query('COMMIT');
      expect((await rowsOf(queue)).map((r) => [r.id, r.held])).toEqual([[lateId, true]]);
      // No claim leases the group any more to clear it: the sweep does, within a second or so.
      await waitFor('the late message handled', async () => (await handled(queue)) === 3, 10_000);
    } finally {
      late.release();
    }
  });

  it('a group limit set on a backlog holds each group\'s tail; removed, it clears every held row', async () => {
    const queue = fresh('set');
    const groups = Array.from({ length: 30 }, (_, n) => (n % 3 === 0 ? null : `g${n % 2}`));
    await enqueue(queue, groups.map((g) => ({ payload: {}, ...(g === null ? {} : { group: g }) })), 'relay');
    expect((await rowsOf(queue)).some((r) => r.held)).toBe(false);
    await setQueueLimits(p, queue, { groupMaxInFlight: 2 });
    expect((await rowsOf(queue)).map((r) => r.held)).toEqual(expectedHeld(groups, 2));
    const [stats] = await queueStats(p, { queues: [queue] });
    expect(stats).toMatchObject({ ready: groups.length, held: expectedHeld(groups, 2).filter(Boolean).length });
    // A new value, or none given, leaves the flags as they are; removing the limit clears them.
    await setQueueLimits(p, queue, { groupMaxInFlight: 3 });
    await setQueueLimits(p, queue, {});
    expect((await rowsOf(queue)).map((r) => r.held)).toEqual(expectedHeld(groups, 2));
    await setQueueLimits(p, queue, { groupMaxInFlight: null });
    expect((await rowsOf(queue)).some((r) => r.held)).toBe(false);
    startWorkers(queue, 1);
    await waitFor('all handled', async () => (await handled(queue)) === groups.length, 20_000);
  });

  it('publish through a direct route follows a group limit set, changed and removed after the route was added', async () => {
    const queue = fresh('route-first');
    const topic = `${queue}.m`;
    await addDirectRoute(p, { topic, queue });
    const burst = async (n: number) => {
      for (let i = 0; i < n; i++) await publish(p, { topic, payload: { i }, group: 'g' });
      const rows = await rowsOf(queue);
      await p.query('DELETE FROM sagabox.queue_messages WHERE queue = $1', [queue]);
      return rows.map((r) => r.held);
    };
    expect(await burst(4)).toEqual([false, false, false, false]);
    await setQueueLimits(p, queue, { groupMaxInFlight: 1 });
    expect(await burst(4)).toEqual([false, false, true, true]);
    await setQueueLimits(p, queue, { groupMaxInFlight: 2 });
    expect(await burst(6)).toEqual([false, false, false, false, true, true]);
    await setQueueLimits(p, queue, { groupMaxInFlight: null });
    expect(await burst(4)).toEqual([false, false, false, false]);
  });

  it('a held row whose group limit was removed while it was being written is cleared by the sweep', async () => {
    const queue = fresh('removed');
    await setQueueLimits(p, queue, { groupMaxInFlight: 1 });
    await enqueue(queue, Array.from({ length: 4 }, (_, n) => ({ payload: { n }, group: 'g' })), 'direct-many');
    // As a publish that read the limit before it was removed would leave it.
    await p.query(`UPDATE sagabox.queues SET group_max_in_flight = NULL WHERE name = $1`, [queue]);
    expect((await rowsOf(queue)).filter((r) => r.held)).toHaveLength(2);
    startWorkers(queue, 1);
    await waitFor('all handled', async () => (await handled(queue)) === 4, 10_000);
  });
});
