import type pg from 'pg';
import { publish, type OutboxMessage } from '@sagabox/core';

/** Runs `fn` on a client of `pool` between BEGIN and COMMIT (or ROLLBACK when `commit` is false or `fn` throws). */
export async function inTransaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>, commit = true): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    const r = await fn(c);
    await c.query(commit ? 'COMMIT' : 'ROLLBACK');
    return r;
  } catch (err) {
    await c.query('ROLLBACK');
    throw err;
  } finally {
    c.release();
  }
}

/** Publishes `messages` in a transaction of their own on `pool` and commits; resolves to their ids. */
export async function publishCommitted(pool: pg.Pool, messages: OutboxMessage | OutboxMessage[]): Promise<string[]> {
  return (await inTransaction(pool, (c) => publish(c, messages))).ids;
}

/**
 * Backends of the current database left in a failed transaction: 'idle in transaction
 * (aborted)' in two samples `ms` apart, with the same state change. A consumer that is
 * still retrying passes through that state for a round trip on each attempt (between
 * the failed statement and its ROLLBACK), so one sample alone would catch those.
 */
export async function stuckInFailedTransaction(pool: pg.Pool, ms = 300): Promise<number[]> {
  const sample = async (): Promise<Map<number, string>> => {
    const { rows } = await pool.query<{ pid: number; at: string }>(
      `SELECT pid, state_change::text AS at FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction (aborted)'`,
    );
    return new Map(rows.map((r) => [r.pid, r.at]));
  };
  const first = await sample();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const second = await sample();
  return [...first].filter(([pid, at]) => second.get(pid) === at).map(([pid]) => pid);
}

/**
 * Two overlapping transactions on `pool` publish one key: T1 publishes `first` and stays
 * open, then T2 publishes `second`. Resolves, once both have committed, to whether T2's
 * publish was still waiting 150 ms after T1's publish (for T1's key lock).
 */
export async function publishOverlapping(pool: pg.Pool, topic: string, key: string): Promise<boolean> {
  const c1 = await pool.connect();
  const c2 = await pool.connect();
  try {
    await c1.query('BEGIN');
    await c2.query('BEGIN');
    await publish(c1, { topic, key, payload: 'first' });
    let t2Done = false;
    const t2 = publish(c2, { topic, key, payload: 'second' }).then(() => (t2Done = true));
    await new Promise((resolve) => setTimeout(resolve, 150));
    const waited = !t2Done;
    await c1.query('COMMIT');
    await t2;
    await c2.query('COMMIT');
    return waited;
  } finally {
    c1.release();
    c2.release();
  }
}
