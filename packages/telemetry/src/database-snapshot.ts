import { outboxStats, queueStats, storageHealth, type OutboxStats, type QueueStats, type StorageHealth } from '@sagabox/core/admin';
import { quoteSchema, toRunQuery } from '@sagabox/core/extension';
import { type Executor } from '@sagabox/core';
import { countSagas, type SagaCount } from '@sagabox/saga';

/** A saga that started, or reached an end status, since the previous snapshot. */
export interface SagaChange {
  id: string;
  type: string;
  status: string;
  /** Seconds from start to this status (for finished sagas). */
  seconds: number;
  createdAt: Date;
  updatedAt: Date;
}

/** What one scrape read from the database. */
export interface DatabaseSnapshot {
  queues: QueueStats[];
  outbox: OutboxStats;
  sagas: SagaCount[];
  /** Sagas started since the previous snapshot (none on the first). */
  started: SagaChange[];
  /** Sagas that became completed, compensated or failed since the previous snapshot. */
  finished: SagaChange[];
  /** What holds vacuum back, and dead tuples and size of each sagabox table. */
  storage: StorageHealth;
}

/**
 * How far back each snapshot looks again, in milliseconds: a transition's `updated_at`
 * is its transaction's start time, so a row can commit (and become visible) with a
 * timestamp older than the previous snapshot. Rows seen already are remembered by id.
 */
export const SAGA_CHANGE_OVERLAP_MS = 120_000;

/**
 * Reads queue depth, relay lag and saga counts through the admin API, and the sagas
 * that started or finished since the previous call (for counters and the duration
 * histogram). Only the saga-changes query is its own: it reads through the
 * `(status, updated_at)` index, so its cost follows the number of running sagas and of
 * recent changes, not the table size.
 */
export function createDatabaseSnapshotReader(db: Executor, schema: string): () => Promise<DatabaseSnapshot> {
  const s = quoteSchema(schema);
  const changesSql = `
    SELECT id, saga_type, status, created_at, updated_at,
           extract(epoch FROM updated_at - created_at)::float8 AS seconds,
           -- compared here, in microseconds: a JS Date keeps milliseconds, and a saga
           -- created in the same millisecond as the first scrape was missed
           created_at > $1::timestamptz AS created_since
    FROM ${s}.sagas
    WHERE (status IN ('completed', 'compensated', 'failed') AND updated_at > $1::timestamptz)
       OR (status IN ('running', 'compensating') AND created_at > $1::timestamptz)`;
  let watermark: Date | undefined;
  const seenStarted = new Map<string, number>();
  const seenFinished = new Map<string, number>();
  const run = toRunQuery(db);

  let floor: number | undefined;
  /** The changes since the previous snapshot, and `commit` to move the window past them. */
  const readChanges = async (): Promise<{ started: SagaChange[]; finished: SagaChange[]; commit: () => void }> => {
    const [clock] = await run<{ now: Date }>('SELECT now() AS now', []);
    const now = clock!.now;
    if (watermark === undefined || floor === undefined) {
      // First snapshot: counters start at zero now, like any process's counters (even
      // when another read of this scrape fails: the start is not a change to lose).
      watermark = now;
      floor = now.getTime();
      return { started: [], finished: [], commit: () => {} };
    }
    const since = new Date(Math.max(floor, watermark.getTime() - SAGA_CHANGE_OVERLAP_MS));
    const rows = await run<{ id: string; saga_type: string; status: string; created_at: Date; updated_at: Date; seconds: number; created_since: boolean }>(
      changesSql,
      [since],
    );
    const started: SagaChange[] = [];
    const finished: SagaChange[] = [];
    const finishedKeys: string[] = [];
    for (const r of rows) {
      const change = { id: r.id, type: r.saga_type, status: r.status, seconds: Math.max(0, r.seconds), createdAt: r.created_at, updatedAt: r.updated_at };
      if (r.created_since && !seenStarted.has(r.id)) started.push(change);
      const finishedKey = `${r.id}:${r.status}:${r.updated_at.getTime()}`;
      if (r.status !== 'running' && r.status !== 'compensating' && !seenFinished.has(finishedKey)) {
        finishedKeys.push(finishedKey);
        finished.push(change);
      }
    }
    const commit = (): void => {
      for (const c of started) seenStarted.set(c.id, c.createdAt.getTime());
      finished.forEach((c, i) => seenFinished.set(finishedKeys[i]!, c.updatedAt.getTime()));
      watermark = now;
      // Anything older than the next window can never be seen again.
      const horizon = now.getTime() - 2 * SAGA_CHANGE_OVERLAP_MS;
      for (const m of [seenStarted, seenFinished]) for (const [k, at] of m) if (at < horizon) m.delete(k);
    };
    return { started, finished, commit };
  };

  return async () => {
    const [queues, outbox, sagas, changes] = await Promise.all([queueStats(db, { schema }), outboxStats(db, { schema }), countSagas(db, { schema }), readChanges()]);
    // After the others: run beside them, one of their own queries would be the oldest snapshot.
    const storage = await storageHealth(db, { schema });
    // Only a whole snapshot moves the window: a scrape whose other reads failed (too
    // many connections, a timeout) is discarded, and the next one reads its changes again.
    changes.commit();
    return { queues, outbox, sagas, started: changes.started, finished: changes.finished, storage };
  };
}
