import pg from 'pg';
import { databaseUnreachableError } from '@sagabox/core';
import { requireDatabaseUrl, type ConnectionFlags } from './connection-options.js';

/**
 * Opens a pool on the flags' database, checks that it answers (one clear error when
 * it does not), runs `fn`, and closes the pool.
 */
export async function withPool<T>(flags: ConnectionFlags, fn: (pool: pg.Pool) => Promise<T>, max = 4): Promise<T> {
  const pool = openPool(requireDatabaseUrl(flags), max);
  try {
    await checkReachable(pool, flags.databaseUrl);
    return await fn(pool);
  } finally {
    await pool.end();
  }
}

/** A pool whose idle-connection errors are absorbed (they surface on the next query). */
export function openPool(connectionString: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString, max, connectionTimeoutMillis: 10_000 });
  pool.on('error', () => {});
  return pool;
}

/** Throws `DATABASE_UNREACHABLE` naming host and port when the pool cannot connect. */
export async function checkReachable(pool: pg.Pool, connectionString: string | undefined): Promise<void> {
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    throw databaseUnreachableError(err, connectionString);
  }
}
