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

/**
 * Runs `fn` in a transaction on a client checked out with {@link checkoutClient}:
 * BEGIN, `fn`, COMMIT; on a throw, ROLLBACK and rethrow. A connection whose transaction
 * failed is discarded, not returned to the pool, unless `keepConnection(err)` says the
 * failure was the caller's own decision (the connection itself is fine).
 */
export async function withTransaction<T>(
  pool: pg.Pool,
  logger: Logger,
  fn: (client: pg.PoolClient) => Promise<T>,
  keepConnection: (err: unknown) => boolean = () => false,
): Promise<T> {
  const { client, release } = await checkoutClient(pool, logger);
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch((e: Error) => (broken = e));
    if (!keepConnection(err)) broken ??= err as Error;
    throw err;
  } finally {
    release(broken);
  }
}

/**
 * Warns once, at construction, when `pool` has no `connectionTimeoutMillis`. A connect
 * made while the server is away can be black-holed instead of refused (a failover, a
 * stale NAT entry, a dropped route); node-postgres then waits for the operating system
 * to give up on the SYN, which takes minutes, and every caller of the pool queues
 * behind it. With a timeout the connect fails and the component's retry loop goes on.
 */
export function warnIfConnectUnbounded(pool: pg.Pool, logger: Logger): void {
  const timeout = (pool as { options?: { connectionTimeoutMillis?: number } }).options?.connectionTimeoutMillis;
  if (timeout) return;
  logger.warn(
    { connectionTimeoutMillis: timeout ?? 0 },
    'the pool has no connectionTimeoutMillis: a connect the network swallows stalls this component for minutes; set it (e.g. 10000) on the pg.Pool',
  );
}
