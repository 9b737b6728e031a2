import { afterEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { createRelay, createWorker, publish, type OutboxMessage, type Worker } from '@sagabox/core';
import { addDirectRoute, setQueueLimits } from '@sagabox/core/admin';
import { claimSql } from '../../packages/core/src/worker/claim-sql.js';
import { STRICT_PRIORITY_MS } from '../../packages/core/src/shared/claim-rank.js';
import { useDatabase } from '../support/test-pool.js';
import { waitFor } from '../support/wait-for.js';

// Claim order with priorities: a message goes ahead of one a level above it that became
// due more than priorityAgingMs later (strict priorities: never), ties in publish order.
// Each message's place is fixed when it is written, so aging rewrites no row.

const { pool } = await useDatabase();
const p = pool(8);
const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});

let queues = 0;

/** Publishes `messages` into a fresh queue, through the relay or one by one through a direct route. */
async function enqueue(queue: string, messages: Omit<OutboxMessage, 'topic'>[], direct: boolean): Promise<string[]> {
  const topic = `${queue}.m`;
  if (direct) {
    await addDirectRoute(p, { topic, queue });
    const ids: string[] = [];
    for (const m of messages) ids.push(...(await publish(p, { ...m, topic })).ids);
    return ids;
  }
  const { ids } = await publish(p, messages.map((m) => ({ ...m, topic })));
  // runOnce alone: one claimer, so the queue's seq follows publish order.
  const relay = createRelay({ pool: p, routes: [{ topic, queue }], batchSize: 1_000, listen: false });
  while ((await relay.runOnce()) > 0);
  return ids;
}

/** Claims one message with the worker's unlimited claim or (`limited`, for a queue with a limit) its limited one; null when none was claimable. */
async function claimOne(queue: string, limited: boolean): Promise<string | null> {
  const { rows } = limited
    ? await p.query<{ id: string | null }>(claimSql('sagabox').limited(1), [queue, randomUUID(), 'test', 60_000, randomUUID()])
    : await p.query<{ id: string | null }>(claimSql('sagabox').unlimited(1), [queue, randomUUID(), 'test', 60_000]);
  expect(rows).toHaveLength(1);
  return rows[0]!.id;
}

/** Claims the whole queue one message at a time, in its order. */
async function claimOrder(queue: string, n: number, limited: boolean): Promise<string[]> {
  const order: string[] = [];
  for (let i = 0; i < n; i++) order.push((await claimOne(queue, limited))!);
  return order;
}

/** Claims one message and acks it (deletes its row); null when none was claimable. */
async function claimAndAck(queue: string, limited: boolean): Promise<string | null> {
  const id = await claimOne(queue, limited);
  if (id !== null) await p.query('DELETE FROM sagabox.queue_messages WHERE queue = $1 AND id = $2', [queue, id]);
  return id;
}

describe('priority order', () => {
  it('claims by due time less priority x priorityAgingMs, ties in publish order: both claims, through the relay and direct routes, after a change of priorityAgingMs too', async () => {
    const base = Date.now() - 3_600_000;
    const aging = fc.constantFrom<number | null>(null, 100, 1_000, 60_000);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ priority: fc.integer({ min: -3, max: 3 }), dueMs: fc.integer({ min: 0, max: 300_000 }) }), { minLength: 1, maxLength: 25 }),
        aging,
        fc.option(aging, { nil: undefined }),
        fc.boolean(),
        fc.boolean(),
        async (messages, agingMs, changedTo, direct, limited) => {
          const queue = `prio-${++queues}`;
          // A limit that never binds makes the worker claim with the limited statement.
          await setQueueLimits(p, queue, { priorityAgingMs: agingMs, ...(limited ? { maxInFlight: 1_000 } : {}) });
          const ids = await enqueue(queue, messages.map((m) => ({ payload: {}, priority: m.priority, availableAt: new Date(base + m.dueMs) })), direct);
          const final = changedTo === undefined ? agingMs : changedTo;
          if (changedTo !== undefined) await setQueueLimits(p, queue, { priorityAgingMs: changedTo });
          const level = final ?? STRICT_PRIORITY_MS;
          const expected = messages
            .map((m, i) => ({ id: ids[i]!, rank: base + m.dueMs - m.priority * level, i }))
            .sort((a, b) => a.rank - b.rank || a.i - b.i)
            .map((m) => m.id);
          expect(await claimOrder(queue, ids.length, limited)).toEqual(expected);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('keeps per-key order over priorities and aging: a claim takes, in rank order, only messages whose key has no earlier one left', async () => {
    const base = Date.now() - 3_600_000;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({
          priority: fc.integer({ min: -3, max: 3 }),
          dueMs: fc.integer({ min: 0, max: 300_000 }),
          key: fc.option(fc.constantFrom('a', 'b', 'c'), { nil: undefined }),
        }), { minLength: 1, maxLength: 20 }),
        fc.constantFrom<number | null>(null, 1_000, 60_000),
        fc.boolean(),
        fc.boolean(),
        async (messages, agingMs, direct, limited) => {
          const queue = `keyed-${++queues}`;
          await setQueueLimits(p, queue, { priorityAgingMs: agingMs, ...(limited ? { maxInFlight: 1_000 } : {}) });
          const ids = await enqueue(queue, messages.map((m) => ({
            payload: {}, priority: m.priority, availableAt: new Date(base + m.dueMs), ...(m.key ? { key: m.key } : {}),
          })), direct);
          const level = agingMs ?? STRICT_PRIORITY_MS;
          let left = messages.map((m, i) => ({ id: ids[i]!, key: m.key, rank: base + m.dueMs - m.priority * level, i }));
          for (let n = 0; n < messages.length; n++) {
            const heads = left.filter((m) => m.key === undefined || !left.some((e) => e.key === m.key && e.i < m.i));
            const next = heads.sort((a, b) => a.rank - b.rank || a.i - b.i)[0]!;
            expect(await claimAndAck(queue, limited)).toBe(next.id);
            left = left.filter((m) => m !== next);
          }
          expect(await claimAndAck(queue, limited)).toBeNull();
        },
      ),
      { numRuns: 30 },
    );
  });

  it('ages waiting messages without rewriting them: no claim changes a waiting row\'s priority or place', async () => {
    const queue = `still-${++queues}`;
    await setQueueLimits(p, queue, { priorityAgingMs: 100 });
    await enqueue(queue, Array.from({ length: 60 }, (_, n) => ({ payload: { n }, priority: n % 4 })), false);
    const rows = async () => (await p.query<{ id: string; v: string }>(
      `SELECT id, priority || ':' || claim_rank AS v FROM sagabox.queue_messages WHERE queue = $1`, [queue],
    )).rows;
    const before = new Map((await rows()).map((r) => [r.id, r.v]));
    let handled = 0;
    const worker = createWorker({
      pool: p, queue, concurrency: 1, batchSize: 1, maxBatchSize: 1, pollIntervalMs: 20,
      handler: async () => {
        handled++;
        await new Promise((r) => setTimeout(r, 40));
      },
    });
    workers.push(worker);
    await worker.start();
    // Several aging intervals of claims.
    await waitFor('ten handled', () => handled >= 10, 10_000);
    await worker.stop();
    const after = await rows();
    expect(after.length).toBeGreaterThan(30);
    for (const r of after) expect(r.v).toBe(before.get(r.id));
  });

  it('gives the handler the priority the message was published with', async () => {
    const queue = `as-published-${++queues}`;
    await setQueueLimits(p, queue, { priorityAgingMs: 100 });
    const ids = await enqueue(queue, [{ payload: {}, priority: -2, availableAt: new Date(Date.now() - 10_000) }, { payload: {}, priority: 3 }], true);
    const seen = new Map<string, number>();
    const worker = createWorker({ pool: p, queue, concurrency: 1, batchSize: 1, handler: (m) => void seen.set(m.id, m.priority) });
    workers.push(worker);
    await worker.start();
    await waitFor('both handled', () => seen.size === 2);
    expect([seen.get(ids[0]!), seen.get(ids[1]!)]).toEqual([-2, 3]);
  });
});
