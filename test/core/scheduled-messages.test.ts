import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createRelay, createWorker, Outcome, publish } from '@sagabox/core';
import { addDirectRoute, needsAttention, retryMessages } from '@sagabox/core/admin';
import { useDatabase } from '../support/test-pool.js';
import { stopAfterEach } from '../support/stop-after-each.js';
import { waitFor } from '../support/wait-for.js';
import { settledRowsRead } from '../support/rows-read.js';

const { db, pool } = await useDatabase();
const p = pool(4);
const { track } = stopAfterEach();

const scheduledOf = async (ids: string[]): Promise<Record<string, boolean>> => {
  const { rows } = await p.query<{ id: string; scheduled: boolean }>(`SELECT id, scheduled FROM sagabox.queue_messages WHERE id = ANY($1::uuid[])`, [ids]);
  return Object.fromEntries(rows.map((r) => [r.id, r.scheduled]));
};

// A message due further ahead than a worker's poll is written `scheduled`: out of the
// claim index that every claim walks, until a worker's sweep readies it shortly before
// it is due.
describe('scheduled messages', () => {
  it('are the ones due more than two seconds ahead, on a direct route, through the relay and in a batch publish', async () => {
    await addDirectRoute(p, { topic: 'direct.#', queue: 'sched-direct' });
    const [later, soon, now, batchLater, batchNow] = [randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    await publish(p, { id: later, topic: 'direct.one', payload: {}, delayMs: 3_600_000 });
    await publish(p, { id: soon, topic: 'direct.one', payload: {}, delayMs: 1_000 });
    await publish(p, { id: now, topic: 'direct.one', payload: {} });
    await publish(p, [
      { id: batchLater, topic: 'direct.many', payload: {}, availableAt: new Date(Date.now() + 60_000) },
      { id: batchNow, topic: 'direct.many', payload: {} },
    ]);
    const [relayedLater, relayedNow] = [randomUUID(), randomUUID()];
    await publish(p, [
      { id: relayedLater, topic: 'relayed.one', payload: {}, delayMs: 600_000 },
      { id: relayedNow, topic: 'relayed.one', payload: {} },
    ]);
    const relay = track(createRelay({ pool: p, routes: [{ topic: 'relayed.#', queue: 'sched-relayed' }], listen: false }));
    expect(await relay.runOnce()).toBe(2);

    expect(await scheduledOf([later, soon, now, batchLater, batchNow, relayedLater, relayedNow])).toEqual({
      [later]: true, [soon]: false, [now]: false, [batchLater]: true, [batchNow]: false, [relayedLater]: true, [relayedNow]: false,
    });
  });

  it('cost an idle worker and its claims no reads: 50,000 due in an hour beside a trickle', async () => {
    const DELAYED = 50_000;
    await p.query(`INSERT INTO sagabox.queues (name) VALUES ('sched-idle')`);
    await p.query(
      `INSERT INTO sagabox.queue_messages (queue, id, topic, payload, created_at, run_at, scheduled)
       SELECT 'sched-idle', gen_random_uuid(), 'job', jsonb_build_object('n', g), now(), now() + interval '1 hour', true
       FROM generate_series(1, $1::int) g`,
      [DELAYED],
    );
    await p.query('ANALYZE sagabox.queue_messages');
    const before = await settledRowsRead(p);
    // Its own pool, ended after the run: a backend flushes its statistics as it exits.
    const wp = new pg.Pool({ connectionString: db.url, max: 6 });
    wp.on('error', () => {});
    let handled = 0;
    const worker = track(createWorker({ pool: wp, queue: 'sched-idle', concurrency: 4, pollIntervalMs: 100, handler: () => void handled++ }));
    try {
      await worker.start();
      for (let i = 0; i < 10; i++) {
        await p.query(`INSERT INTO sagabox.queue_messages (queue, id, topic, payload, created_at) VALUES ('sched-idle', gen_random_uuid(), 'job', '{}', now())`);
        await new Promise((r) => setTimeout(r, 150));
      }
      await waitFor('the trickle to be handled', () => handled >= 10);
      await worker.stop();
    } finally {
      await wp.end();
    }
    expect(handled).toBe(10);
    // Some 60 claims and 15 sweeps in 1.5 s (more on a loaded machine), each reading the
    // trickle at the front of the claim order; one walking the delayed rows reads 50,000.
    expect((await settledRowsRead(p)) - before).toBeLessThan(5_000);
    expect(await p.query(`SELECT 1 FROM sagabox.queue_messages WHERE queue = 'sched-idle'`).then((r) => r.rowCount)).toBe(DELAYED);
  });

  it('are handled once due, not before', async () => {
    await addDirectRoute(p, { topic: 'due.#', queue: 'sched-due' });
    const handledAt = new Map<string, number>();
    const worker = track(createWorker({ pool: p, queue: 'sched-due', pollIntervalMs: 100, handler: (m) => void handledAt.set(m.id, Date.now()) }));
    await worker.start();
    const id = randomUUID();
    const dueAt = Date.now() + 3_000;
    await publish(p, { id, topic: 'due.one', payload: {}, availableAt: new Date(dueAt) });
    expect(await scheduledOf([id])).toEqual({ [id]: true });
    await waitFor('the message to be handled', () => handledAt.has(id), 10_000);
    expect(handledAt.get(id)!).toBeGreaterThanOrEqual(dueAt - 5);
    expect(handledAt.get(id)! - dueAt).toBeLessThan(1_000);
  });

  it('include a retry with a long backoff, which comes back when due', async () => {
    await addDirectRoute(p, { topic: 'again.#', queue: 'sched-retry' });
    const attempts: number[] = [];
    const worker = track(createWorker({
      pool: p, queue: 'sched-retry', pollIntervalMs: 100,
      handler: (m) => {
        attempts.push(Date.now());
        return m.attempts === 1 ? Outcome.retry({ delayMs: 2_500 }) : undefined;
      },
    }));
    const id = randomUUID();
    await publish(p, { id, topic: 'again.one', payload: {} });
    await worker.start();
    await waitFor('the first attempt', () => attempts.length === 1);
    await waitFor('the retry to be written', async () => (await scheduledOf([id]))[id] === true);
    await waitFor('the second attempt', () => attempts.length === 2, 10_000);
    expect(attempts[1]! - attempts[0]!).toBeGreaterThanOrEqual(2_500 - 5);
    expect(attempts[1]! - attempts[0]!).toBeLessThan(2_500 + 1_000);
    await waitFor('the queue to be empty', async () => (await p.query(`SELECT 1 FROM sagabox.queue_messages WHERE id = $1`, [id])).rowCount === 0);
    expect(attempts).toHaveLength(2);
  });

  it('left scheduled past their run time (a sweep lost in a crash) are still handled, also by runOnce, and more than a sweep at once', async () => {
    const MANY = 2_500; // more than two sweeps' worth
    await p.query(`INSERT INTO sagabox.queues (name) VALUES ('sched-late')`);
    await p.query(
      `INSERT INTO sagabox.queue_messages (queue, id, topic, payload, created_at, run_at, scheduled)
       SELECT 'sched-late', gen_random_uuid(), 'job', jsonb_build_object('n', g), now(), now() - interval '1 minute', true
       FROM generate_series(1, $1::int) g`,
      [MANY],
    );
    const seen = new Set<number>();
    const once = track(createWorker({ pool: p, queue: 'sched-late', listen: false, handler: (m) => void seen.add((m.payload as { n: number }).n) }));
    expect(await once.runOnce()).toBeGreaterThan(0);
    const worker = track(createWorker({ pool: p, queue: 'sched-late', concurrency: 4, pollIntervalMs: 100, handler: (m) => void seen.add((m.payload as { n: number }).n) }));
    await worker.start();
    await waitFor('every late message to be handled', () => seen.size >= MANY, 30_000);
    await worker.stop();
    expect(seen.size).toBe(MANY);
    expect(await p.query(`SELECT 1 FROM sagabox.queue_messages WHERE queue = 'sched-late'`).then((r) => r.rowCount)).toBe(0);
  });

  it('are listed when near their last attempt, and are ready at once when an operator retries them now', async () => {
    await addDirectRoute(p, { topic: 'op.#', queue: 'sched-op' });
    const id = randomUUID();
    await publish(p, { id, topic: 'op.one', payload: {}, delayMs: 3_600_000 });
    expect(await scheduledOf([id])).toEqual({ [id]: true });
    // A retry waiting out a long backoff, behind more ready messages than the scan reads.
    await p.query(`UPDATE sagabox.queue_messages SET attempts = 4 WHERE id = $1`, [id]);
    await publish(p, Array.from({ length: 20 }, (_, n) => ({ topic: 'op.other', payload: { n } })));
    const report = await needsAttention(p, { maxAttempts: 5, scanLimit: 10, vacuumBlockedAfterMs: 3_600_000_000 });
    expect(report.nearMaxAttempts.map((m) => m.id)).toEqual([id]);
    expect(report.beyondScan.queues).toContain('sched-op');
    expect((await retryMessages(p, { queue: 'sched-op', id })).affected).toBe(1);
    expect(await scheduledOf([id])).toEqual({ [id]: false });
    await p.query(`DELETE FROM sagabox.queue_messages WHERE queue = 'sched-op' AND id <> $1`, [id]);
    const worker = track(createWorker({ pool: p, queue: 'sched-op', listen: false, handler: () => {} }));
    expect(await worker.runOnce()).toBe(1);
  });
});
