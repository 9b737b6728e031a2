import { afterEach, describe, expect, it } from 'vitest';
import { addDirectRoute } from '@sagabox/core/admin';
import { createWorker, publish, type Worker } from '@sagabox/core';
import { useDatabase } from '../support/test-pool.js';
import { inTransaction } from '../support/in-transaction.js';
import { waitFor } from '../support/wait-for.js';
import { captureLogger } from '../support/capture-logger.js';
import { ringState } from '../support/queue-ring.js';

const { pool, count } = await useDatabase();
const p = pool(12);
const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});

// queue_messages is partitioned (a ring of four slots): its vacuums are its partitions'.
const vacuums = (): Promise<number> =>
  count(`SELECT coalesce(sum(s.vacuum_count), 0) AS n FROM pg_partition_tree('sagabox.queue_messages') t
         JOIN pg_stat_user_tables s ON s.relid = t.relid WHERE t.isleaf`);

/** Publishes `n` messages one at a time, each handled before the next is published. */
async function trickle(queue: string, n: number, handled: () => number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await inTransaction(p, (c) => publish(c, { topic: `trickle.${queue}`, payload: { i, pad: 'x'.repeat(40) } }));
    await waitFor('message handled', async () => handled() > i, 5_000, 1);
  }
}

describe('queue_messages under a trickle', () => {
  // Runs first: no other worker of this file has vacuumed, or is still vacuuming, the table.
  it('leaves the table to autovacuum, without an error, when the worker\'s role may not vacuum it', async () => {
    const role = `trickle_app_${process.pid}`;
    await p.query(`CREATE ROLE ${role}`);
    await p.query(`GRANT USAGE, CREATE ON SCHEMA sagabox TO ${role}`);
    await p.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA sagabox TO ${role}`);
    await p.query(`GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA sagabox TO ${role}`);
    await addDirectRoute(p, { topic: 'trickle.t2', queue: 't2' });
    // The role from the connection's start: a SET ROLE sent on 'connect' would race the
    // pool's first query on that client.
    const app = pool(12, { options: `-c role=${role}` });
    let handled = 0;
    const errors: unknown[] = [];
    const logger = captureLogger();
    const worker = createWorker({ pool: app, queue: 't2', concurrency: 4, pollIntervalMs: 50, inbox: false, trickleVacuum: true, logger, handler: async () => void handled++ });
    worker.events.on('error', (e) => errors.push(e.error));
    workers.push(worker);
    await worker.start();
    const vacuumed = await vacuums();
    await trickle('t2', 300, () => handled);
    expect(errors).toEqual([]);
    // A handler's call is counted before its transaction commits the ack.
    await waitFor('the last ack', async () => (await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 't2'`)) === 0);
    expect(await vacuums()).toBe(vacuumed);
    expect(logger.lines.filter((l) => l.msg?.includes('does not own queue_messages'))).toHaveLength(1);
    await worker.stop();
    workers.length = 0;
    await p.query(`DROP OWNED BY ${role}`);
    await p.query(`DROP ROLE ${role}`);
  });

  // Runs before the worker that vacuums: any vacuum_count seen here would be this worker's.
  it('does not vacuum the table when trickleVacuum is false', async () => {
    await addDirectRoute(p, { topic: 'trickle.t3', queue: 't3' });
    let handled = 0;
    const worker = createWorker({ pool: p, queue: 't3', concurrency: 4, pollIntervalMs: 50, inbox: false, trickleVacuum: false, handler: async () => void handled++ });
    workers.push(worker);
    await worker.start();
    const vacuumed = await vacuums();
    // Three times the trickle vacuum's period: on, it would have vacuumed by now.
    await trickle('t3', 300, () => handled);
    await waitFor('the last ack', async () => (await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 't3'`)) === 0);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await vacuums()).toBe(vacuumed);
  });

  // At fillfactor 50 a trickle's insert page is left with just more free space than
  // opportunistic pruning needs to fire, so without anything else the table would grow
  // by a page of dead rows every few dozen messages. The ring bounds it: a slot that
  // holds 256 dead rows is truncated a few seconds after its turn (the worker's own
  // vacuum is off by default). Its pages rise and fall as slots fill and are truncated
  // (70-190 at the end of this test, by server and timing), so the test checks the
  // truncations, not a page count.
  it('leaves a trickle to the ring: no vacuum of its own, and the slots its dead rows fill are truncated', async () => {
    await addDirectRoute(p, { topic: 'trickle.t1', queue: 't1' });
    let handled = 0;
    const worker = createWorker({ pool: p, queue: 't1', concurrency: 4, pollIntervalMs: 50, handler: async () => void handled++ });
    workers.push(worker);
    await worker.start();
    const vacuumed = await vacuums();
    const ring = await ringState(p);
    await trickle('t1', 3_600, () => handled);
    // A handler's call is counted before its transaction commits the ack.
    await waitFor('the last ack', async () => (await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 't1'`)) === 0);
    expect(await vacuums()).toBe(vacuumed);
    const truncated = (await ringState(p)).filter((slot, i) => slot.filenode !== ring[i]!.filenode);
    expect(truncated.length).toBeGreaterThan(0);
  });
});
