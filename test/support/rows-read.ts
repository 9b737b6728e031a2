import type pg from 'pg';
import { waitFor } from './wait-for.js';

/** Rows read from queue_messages' partitions so far, by sequential and index scans (flushed statistics). */
export async function rowsRead(p: pg.Pool): Promise<number> {
  const c = await p.connect();
  try {
    await c.query('SELECT pg_stat_clear_snapshot()');
    const { rows } = await c.query<{ n: string }>(
      `SELECT (SELECT coalesce(sum(seq_tup_read), 0) FROM pg_stat_user_tables
               WHERE schemaname = 'sagabox' AND relname ~ '^queue_messages_[0-3]$')
            + (SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes
               WHERE schemaname = 'sagabox' AND relname ~ '^queue_messages_[0-3]$') AS n`,
    );
    return Number(rows[0]!.n);
  } finally {
    c.release();
  }
}

/**
 * {@link rowsRead} once every backend of an ended pool has flushed its statistics: two
 * reads a while apart agree.
 */
export async function settledRowsRead(p: pg.Pool): Promise<number> {
  let last = -1;
  return waitFor('the statistics to settle', async () => {
    await new Promise((r) => setTimeout(r, 300));
    const now = await rowsRead(p);
    const settled = now === last;
    last = now;
    return settled ? now + 1 : 0; // + 1: zero rows read is an answer too
  }).then((n) => n - 1);
}
