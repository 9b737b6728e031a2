import type pg from 'pg';
import type { Logger } from './logger.js';

/**
 * Checks a client out of `pool` with an 'error' listener attached for as long as it is
 * out. node-postgres emits 'error' on a checked-out client whose connection dies
 * between queries (a Postgres restart, a terminated backend); with no listener that
 * is an uncaught exception that takes the whole process down. The failure still
 * surfaces to the caller through the next query, so the listener only logs it.
 */
export async function checkoutClient(pool: pg.Pool, logger: Logger): Promise<{ client: pg.PoolClient; release(err?: Error): void }> {
  const client = await pool.connect();
  const onError = (err: Error): void => logger.warn({ err }, 'database connection lost');
  client.on('error', onError);
  return {
    client,
    release(err) {
      client.off('error', onError);
      client.release(err);
    },
  };
}
