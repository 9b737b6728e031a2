import pg from 'pg';
import { DEFAULT_SCHEMA } from '@sagabox/core';
import { databaseUnreachableError, validateSchemaName } from '@sagabox/core/extension';
import { SAGABOX_MIGRATION_TABLE } from '@sagabox/core/migrate';
import { requireDatabaseUrl, type ConnectionFlags } from './connection-options.js';
import { CliExit, EXIT_FAILURE } from './exit-codes.js';

/**
 * Opens a pool on the flags' database, checks that it answers and holds a migrated
 * sagabox schema (one clear error when not), runs `fn`, and closes the pool.
 */
export async function withPool<T>(flags: ConnectionFlags, fn: (pool: pg.Pool) => Promise<T>, max = 4): Promise<T> {
  const pool = openPool(requireDatabaseUrl(flags), max);
  try {
    await checkReachable(pool, flags.databaseUrl);
    await checkMigrated(pool, flags.schema);
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

/**
 * Fails with one line telling what to run when the database was never migrated, instead
 * of the first query's `relation "sagabox.…" does not exist` (exit code 1).
 */
export async function checkMigrated(pool: pg.Pool, schema: string = DEFAULT_SCHEMA): Promise<void> {
  const name = validateSchemaName(schema);
  const { rows } = await pool.query<{ migrated: boolean }>(
    `SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL AS migrated`,
    [name, SAGABOX_MIGRATION_TABLE],
  );
  if (!rows[0]?.migrated) {
    const flag = name === DEFAULT_SCHEMA ? '' : ` --schema ${name}`;
    throw new CliExit(EXIT_FAILURE, `schema "${name}" was never migrated in this database: run \`sagabox migrate up${flag}\` first`);
  }
}
