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
