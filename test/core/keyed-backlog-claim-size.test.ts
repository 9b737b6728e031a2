import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createWorker } from '@sagabox/core';
import { useDatabase } from '../support/test-pool.js';
import { stopAfterEach } from '../support/stop-after-each.js';
import { waitFor } from '../support/wait-for.js';

const { db, pool } = await useDatabase();
const p = pool(3);
const { track } = stopAfterEach();

/** Rows read from queue_messages' partitions so far, by sequential and index scans (flushed statistics). */
async function rowsRead(): Promise<number> {
  const c = await p.connect();
  try {
    await c.query('SELECT pg_stat_clear_snapshot()');
    const { rows } = await c.query<{ n: string }>(
      `SELECT (SELECT coalesce(sum(seq_tup_read), 0) FROM pg_stat_user_tables
               WHERE schemaname = 'sagabox' AND relname LIKE 'queue\\_messages\\__')
            + (SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes
               WHERE schemaname = 'sagabox' AND relname LIKE 'queue\\_messages\\__') AS n`,
    );
    return Number(rows[0]!.n);
  } finally {
    c.release();
  }
}

/** The statistics once every backend of an ended pool has flushed them: two reads a while apart agree. */
async function settledRowsRead(): Promise<number> {
  let last = -1;
  return waitFor('the statistics to settle', async () => {
    await new Promise((r) => setTimeout(r, 300));
    const now = await rowsRead();
    const settled = now === last;
    last = now;
    return settled ? now + 1 : 0; // + 1: zero rows read is an answer too
  }).then((n) => n - 1);
}

// A keyed backlog has one claimable message per key: its head. Ten slots claiming up to
// 400 each ask for more heads than 1,000 keys have, and a claim that cannot fill its LIMIT
// reads the whole backlog. After such a short claim the worker keeps its slots' batches
// to what the backlog can give, and its claims read near the front.
describe('a keyed backlog with fewer keys than the slots could take', () => {
  it('is drained in key order, each message once, by claims that do not read the backlog over and over', async () => {
    const MESSAGES = 20_000;
    const KEYS = 1_000;
    await p.query(`INSERT INTO sagabox.queues (name) VALUES ('keyed')`);
    await p.query(
      `INSERT INTO sagabox.queue_messages (queue, id, topic, key, payload, created_at)
       SELECT 'keyed', gen_random_uuid(), 'job', 'k-' || (g % $2), jsonb_build_object('n', g), now()
       FROM generate_series(1, $1::int) g ORDER BY g`,
      [MESSAGES, KEYS],
    );
    await p.query('ANALYZE sagabox.queue_messages');
    const before = await settledRowsRead();

    // Its own pool, ended after the drain: a backend flushes its statistics as it exits.
    const wp = new pg.Pool({ connectionString: db.url, max: 12 });
    wp.on('error', () => {});
    const last = new Map<string, number>();
    let handled = 0;
    let outOfOrder = 0;
    const worker = track(
      createWorker({
        pool: wp, queue: 'keyed', concurrency: 10,
        handler: async (m) => {
          const n = (m.payload as { n: number }).n;
          if ((last.get(m.key!) ?? 0) >= n) outOfOrder++;
          last.set(m.key!, n);
          handled++;
        },
      }),
    );
    try {
      await worker.start();
      await waitFor('the backlog to drain', () => handled >= MESSAGES, 120_000);
      await worker.stop();
    } finally {
      await wp.end();
    }

    expect(handled).toBe(MESSAGES);
    expect(outOfOrder).toBe(0);
    expect(await p.query(`SELECT 1 FROM sagabox.queue_messages`).then((r) => r.rowCount)).toBe(0);
    const perMessage = ((await settledRowsRead()) - before) / MESSAGES;
    // Without the cap, a short claim at every fill reads what is left of the backlog.
    expect(perMessage).toBeLessThan(30);
  });
});
