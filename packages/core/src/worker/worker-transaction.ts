import type pg from 'pg';
import { checkoutClient } from '../shared/checkout-client.js';
import type { Logger } from '../shared/logger.js';
import { pipelined, type PipelinedStatement } from '../shared/pipelined.js';
import { commitHandlingOrRolledBack, ROLLED_BACK_AT_COMMIT } from './inbox.js';

/**
 * One handling transaction on a pooled connection. Unlike a plain BEGIN/COMMIT helper it
 * can be abandoned: when a handler times out it may still be using the connection (a
 * query in progress, or one it will send later), so the transaction cannot be ended by
 * a ROLLBACK queued behind that work; the connection is closed and its backend
 * terminated instead, which ends the transaction and releases its row locks at once.
 */
export interface WorkerTransaction {
  readonly client: pg.PoolClient;
  /** COMMIT and return the connection. Throws when the server rolled back instead (the transaction had failed). */
  commit(): Promise<void>;
  /** ROLLBACK and return the connection; a connection whose ROLLBACK failed is destroyed. Never throws. */
  rollback(): Promise<void>;
  /** Ends the transaction without waiting on its connection: closes it and terminates its backend. Never throws. */
  abandon(): Promise<void>;
}

/**
 * Checks a connection out of `pool` and opens a transaction on it. With `first`, the
 * transaction's first statement goes out with the BEGIN (see {@link pipelined}), saving
 * a round trip, and its result comes back with the transaction. When either fails the
 * connection is released as broken (discarded, never handed back mid-transaction) and
 * the error is thrown: nothing was committed, and there is no transaction to end.
 */
export async function beginTransaction(pool: pg.Pool, logger: Logger): Promise<WorkerTransaction>;
export async function beginTransaction<R extends pg.QueryResultRow>(
  pool: pg.Pool,
  logger: Logger,
  first: PipelinedStatement,
): Promise<{ tx: WorkerTransaction; first: pg.QueryResult<R> }>;
export async function beginTransaction(
  pool: pg.Pool,
  logger: Logger,
  first?: PipelinedStatement,
): Promise<WorkerTransaction | { tx: WorkerTransaction; first: pg.QueryResult }> {
  const { client, release } = await checkoutClient(pool, logger);
  let result: pg.QueryResult | undefined;
  try {
    if (first === undefined) await client.query('BEGIN');
    else [, result] = await pipelined(client, ['BEGIN', first]);
  } catch (err) {
    release(err as Error);
    throw err;
  }
  let done = false;
  const finish = (err?: Error): void => {
    if (done) return;
    done = true;
    release(err);
  };
  const tx: WorkerTransaction = {
    client,
    async commit() {
      let committed: boolean;
      try {
        committed = await commitHandlingOrRolledBack(client);
      } catch (err) {
        finish(err as Error);
        throw err;
      }
      finish();
      if (!committed) throw new Error(ROLLED_BACK_AT_COMMIT);
    },
    async rollback() {
      if (done) return;
      try {
        await client.query('ROLLBACK');
        finish();
      } catch (err) {
        finish(err as Error);
      }
    },
    async abandon() {
      if (done) return;
      const pid = (client as unknown as { processID?: number }).processID;
      // Closing the socket ends an idle transaction at once; a backend busy with the
      // handler's query notices only when the query ends, so it is terminated too.
      finish(new Error('handler timed out: connection closed'));
      if (typeof pid !== 'number') return;
      await pool
        .query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE pid = $1 AND pid <> pg_backend_pid() AND state <> 'idle'`,
          [pid],
        )
        .catch((err: unknown) => logger.warn({ err, pid }, 'could not terminate the timed-out handler\'s backend; it ends when its query does'));
    },
  };
  return result === undefined ? tx : { tx, first: result };
}
