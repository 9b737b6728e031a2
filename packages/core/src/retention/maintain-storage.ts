import type pg from 'pg';
import { assertNoProblems, checkInt } from '../shared/retry-policy.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { DEFAULT_SCHEMA, quoteSchema, validateSchemaName } from '../shared/schema-name.js';
import { missingRanges, msOfUuid, partitionName, uuidAtMs } from './partition-ranges.js';
import { keepSql, PURGE_BATCH, purgeOtherSql, RETAINED_TABLES, type RetainedData, type RetainedTables } from './retained-tables.js';

export type { RetainedData } from './retained-tables.js';

/** Default width of one partition, in milliseconds (one day). */
export const DEFAULT_PARTITION_MS = 24 * 3_600_000;
/** Default time covered by partitions created ahead of now, in milliseconds (two days; see {@link MaintainStorageOptions.aheadMs}). */
export const DEFAULT_PARTITION_AHEAD_MS = 2 * 24 * 3_600_000;
/** With the default `aheadMs`, at most this many partitions of a table are made ahead (narrow partitions). */
const MAX_DEFAULT_PARTITIONS_AHEAD = 32;
/** Default lock wait of one maintenance step before it gives up until the next run, in milliseconds. */
export const DEFAULT_MAINTENANCE_LOCK_TIMEOUT_MS = 500;
/** Longest retention accepted, in milliseconds (100 years). */
export const MAX_RETENTION_MS = 100 * 365 * 86_400_000;
/** How long a maintainer waits for another one to finish before it gives up until its next run, in milliseconds. */
const MAINTAINER_WAIT_MS = 10_000;
/** How far ahead of the clock rows may be written (ids from a machine whose clock is ahead), in milliseconds. */
const WRITERS_AHEAD_MS = 5 * 60_000;

/**
 * How long each kind of data is kept, in milliseconds. A kind left out is not expired by
 * this run (its partitions are still created): the worker passes only `inboxMs`, and a
 * cron job running `sagabox storage maintain` can expire the rest.
 */
export interface StorageRetention {
  /**
   * Inbox rows, counted from the time in the message id (UUIDv7: when it was published).
   * Keep it well above the longest a message can wait before it is handled.
   */
  inboxMs?: number;
  /** Dead letters, counted from when the message died. */
  deadLettersMs?: number;
  /**
   * Half-message decisions, counted from the time in the message id (when it was
   * prepared); a message still in the outbox keeps its whole history.
   */
  halfMessageDecisionsMs?: number;
  /**
   * Finished sagas (`completed`, `compensated`) and their step history, counted from when
   * they finished. Running, compensating and failed sagas never expire.
   */
  sagasMs?: number;
}

/** Options of {@link maintainStorage}. */
export interface MaintainStorageOptions {
  /** Schema holding sagabox's tables. Default `'sagabox'`. */
  schema?: string;
  /** Retention per kind of data; `{}` only creates partitions. Required. */
  retention: StorageRetention;
  /**
   * Width of a new partition, in milliseconds. Default: the width of the table's newest
   * partition, so a run with the defaults (every worker's) keeps the width an operator
   * chose; {@link DEFAULT_PARTITION_MS} for a table without partitions.
   */
  partitionMs?: number;
  /**
   * Partitions are created to cover now + `aheadMs`. Default {@link DEFAULT_PARTITION_AHEAD_MS},
   * or 32 partitions' width when that is less (narrow partitions).
   */
  aheadMs?: number;
  /**
   * How long one step waits for a table lock before giving up until the next run, in
   * milliseconds; bounds how long writers can queue behind a drop. Default {@link DEFAULT_MAINTENANCE_LOCK_TIMEOUT_MS}.
   */
  lockTimeoutMs?: number;
  /** The current time; tests inject it. Default: the clock. */
  now?: Date;
  /** Where maintenance logs what it created and dropped (default: silent). */
  logger?: Logger;
}

/** What one {@link maintainStorage} run did to one kind of data. */
export interface PartitionMaintenance {
  /** Partitions created (table names of the first table: `inbox_p20261202`, `sagas_p20261202`, ...). */
  created: string[];
  /** Expired partitions dropped (table names of the first table). */
  dropped: string[];
  /** Rows of dropped partitions that had to stay (sagas not finished, decisions of messages still in the outbox), moved to the default partition. */
  kept: number;
  /** Expired rows deleted one by one from the default partition (`*_other`). */
  purgedOther: number;
}

/** What one {@link maintainStorage} run did. */
export interface StorageMaintenance {
  /** The inbox's partitions. */
  inbox: PartitionMaintenance;
  /** The dead letters' partitions. */
  deadLetters: PartitionMaintenance;
  /** The half-message decisions' partitions. */
  halfMessageDecisions: PartitionMaintenance;
  /** The partitions of sagas and their step history (named after `sagas`). */
  sagas: PartitionMaintenance;
  /** Steps skipped because a lock was not granted in time (or the whole run, when another process kept maintaining); tried again next run. */
  skipped: number;
}

const RETENTION_KEYS: Record<RetainedData, keyof StorageRetention> = {
  inbox: 'inboxMs',
  deadLetters: 'deadLettersMs',
  halfMessageDecisions: 'halfMessageDecisionsMs',
  sagas: 'sagasMs',
};

interface Partition {
  name: string;
  fromMs: number;
  toMs: number;
}

/** Bounds are read back as text in the session's time zone, so time bounds are cast by PostgreSQL. */
async function listPartitions(client: pg.ClientBase, s: string, t: RetainedTables): Promise<Partition[]> {
  const bounds = `regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\) TO \\(''([^'']+)''\\)')`;
  const { rows } = await client.query<{ name: string; lo: string; hi: string }>(
    t.kind === 'uuid'
      ? `SELECT c.relname AS name, b[1] AS lo, b[2] AS hi
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid, ${bounds} b
         WHERE i.inhparent = to_regclass($1) AND b IS NOT NULL`
      : `SELECT c.relname AS name, (extract(epoch FROM b[1]::timestamptz) * 1000)::float8::text AS lo,
                (extract(epoch FROM b[2]::timestamptz) * 1000)::float8::text AS hi
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid, ${bounds} b
         WHERE i.inhparent = to_regclass($1) AND b IS NOT NULL`,
    [`${s}.${t.tables[0]}`],
  );
  const toMs = (v: string): number => (t.kind === 'uuid' ? msOfUuid(v) : Number(v));
  return rows.map((r) => ({ name: r.name, fromMs: toMs(r.lo), toMs: toMs(r.hi) })).sort((a, b) => a.fromMs - b.fromMs);
}

/** The table of `parent` holding the range starting at `fromMs`: `sagas` -> `saga_steps_p20261202` for the second table. */
function partitionOf(parent: string, leaderPartition: string, leader: string): string {
  return `${parent}${leaderPartition.slice(leader.length)}`;
}

/**
 * Keeps sagabox's time-partitioned tables: for the inbox, dead letters, half-message
 * decisions and sagas (with their step history) it creates the partitions that cover
 * now and the next `aheadMs`, drops those past their retention, and purges old rows of
 * the default partitions (`*_other`: ids that are not UUIDv7, rows written before their
 * partition existed, rows that had to outlive theirs) one by one. Dropping a partition
 * leaves nothing for vacuum, unlike deleting its rows one by one. Every worker runs it
 * at start and every `inboxPurgeIntervalMs` with only the inbox's retention; run it with
 * the others' (cron, `sagabox storage maintain`) to expire them too.
 *
 * One function for all four, not one per table: they share one advisory lock, one
 * schedule and one set of partition settings, and callers need one call to keep them.
 *
 * Safe while producers, relays, workers and orchestrators run, with a snapshot held and
 * across crashes: a run holds an advisory lock (two processes never maintain at once;
 * the second waits up to 10 s, then skips), and each step (create one range, expire one
 * range) is one short transaction with `lockTimeoutMs` on its table locks, so a step
 * that cannot get its lock gives up (counted in `skipped`) instead of queueing writers
 * behind it; a process killed mid-step leaves nothing half done. A new partition takes
 * the rows of its range out of the default partition in the transaction that attaches
 * it, and an expiring one hands the rows that must stay (sagas not finished, decisions of
 * messages still in the outbox) to the default partition in the transaction that drops
 * it, so no row is ever in two places or, unless expired, in none.
 *
 * As with `TRUNCATE`, a drop is not MVCC-safe: a transaction that has read one of these
 * tables holds a lock that makes the drop wait (and give up), but one whose snapshot is
 * older than the drop and that reads the table first afterwards does not see the rows
 * that moved to the default partition.
 *
 * @example
 * await maintainStorage(pool, {
 *   retention: { inboxMs: 7 * DAY, deadLettersMs: 30 * DAY, halfMessageDecisionsMs: 30 * DAY, sagasMs: 90 * DAY },
 * });
 */
export async function maintainStorage(pool: pg.Pool, options: MaintainStorageOptions): Promise<StorageMaintenance> {
  const problems: string[] = [];
  const retention = options?.retention;
  if (typeof retention !== 'object' || retention === null || Array.isArray(retention)) {
    problems.push('retention is required: an object of retention periods in milliseconds ({} only creates partitions)');
  } else {
    const known = new Set<string>(Object.values(RETENTION_KEYS));
    for (const key of Object.keys(retention)) if (!known.has(key)) problems.push(`retention.${key} is not a retention period (${[...known].join(', ')})`);
    for (const key of known) checkInt(problems, `retention.${key}`, (retention as Record<string, unknown>)[key], 0, MAX_RETENTION_MS);
  }
  checkInt(problems, 'partitionMs', options?.partitionMs, 1_000, 366 * 24 * 3_600_000);
  checkInt(problems, 'aheadMs', options?.aheadMs, 0, 366 * 24 * 3_600_000);
  checkInt(problems, 'lockTimeoutMs', options?.lockTimeoutMs, 1, 600_000);
  if (options?.now !== undefined && !(options.now instanceof Date && Number.isFinite(options.now.getTime()))) problems.push('now must be a valid Date');
  const schema = options?.schema ?? DEFAULT_SCHEMA;
  try {
    validateSchemaName(schema);
  } catch (err) {
    problems.push((err as Error).message);
  }
  assertNoProblems('maintainStorage', problems);

  const s = quoteSchema(schema);
  const log = (options.logger ?? silentLogger).child({ component: 'storage-maintenance', schema });
  const nowMs = (options.now ?? new Date()).getTime();
  const lockTimeoutMs = options.lockTimeoutMs ?? DEFAULT_MAINTENANCE_LOCK_TIMEOUT_MS;
  const empty = (): PartitionMaintenance => ({ created: [], dropped: [], kept: 0, purgedOther: 0 });
  const result: StorageMaintenance = { inbox: empty(), deadLetters: empty(), halfMessageDecisions: empty(), sagas: empty(), skipped: 0 };
  const lockKey = `sagabox storage maintenance ${schema}`;

  const client = await pool.connect();
  const onError = (err: Error): void => log.warn({ err }, 'database connection lost');
  client.on('error', onError);
  let broken: Error | undefined;
  // One step = one transaction: returns false when it did not run (lock not granted).
  const step = async (what: string, fn: () => Promise<void>): Promise<boolean> => {
    await client.query('BEGIN');
    try {
      await client.query(`SELECT set_config('lock_timeout', $1, true)`, [`${lockTimeoutMs}ms`]);
      await fn();
      await client.query('COMMIT');
      return true;
    } catch (err) {
      await client.query('ROLLBACK').catch((e: Error) => (broken = e));
      // 55P03: lock_not_available (lock_timeout). Anything else is a real failure.
      if ((err as { code?: string }).code === '55P03') {
        log.info({ step: what }, 'storage maintenance step did not get its lock in time; will try again');
        result.skipped += 1;
        return false;
      }
      throw err;
    }
  };
  let locked = false;
  try {
    // One maintainer at a time, for the whole run. Workers that start together wait
    // here for the first one (whose first step creates the current inbox partition)
    // instead of claiming while it attaches: an id routed to inbox_other during the
    // attach fails its batch. A maintainer that waits too long gives up until next run.
    await client.query(`SELECT set_config('lock_timeout', $1, false)`, [`${MAINTAINER_WAIT_MS}ms`]);
    try {
      await client.query(`SELECT pg_advisory_lock(hashtext($1))`, [lockKey]);
      locked = true;
    } catch (err) {
      if ((err as { code?: string }).code !== '55P03') throw err;
      result.skipped += 1;
      log.info({}, 'another process is maintaining storage; will try again');
      return result;
    } finally {
      await client.query('RESET lock_timeout');
    }
    for (const t of RETAINED_TABLES) {
      const done = result[t.data];
      const leader = t.tables[0]!;
      const bound = (ms: number): string => (t.kind === 'uuid' ? uuidAtMs(ms) : new Date(ms).toISOString());
      const existing = await listPartitions(client, s, t);
      const newest = existing.at(-1);
      const partitionMs = options.partitionMs ?? (newest ? newest.toMs - newest.fromMs : DEFAULT_PARTITION_MS);
      const aheadMs = options.aheadMs ?? Math.min(DEFAULT_PARTITION_AHEAD_MS, MAX_DEFAULT_PARTITIONS_AHEAD * partitionMs);
      for (const range of missingRanges(existing, nowMs, partitionMs, aheadMs)) {
        const name = partitionName(leader, range.fromMs);
        const from = bound(range.fromMs);
        const to = bound(range.toMs);
        const ok = await step(`create ${name}`, async () => {
          for (const parent of t.tables) {
            await client.query(`CREATE TABLE ${s}.${partitionOf(parent, name, leader)} (LIKE ${s}.${parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`);
          }
          // A range that writers may be filling now (its rows wait in the default
          // partition): they wait from here to COMMIT and then route by the new partitions
          // (one routed to the default before the attach would fail its partition check).
          // Ranges ahead get no writes, so creating them holds no writer.
          if (range.fromMs <= Math.max(nowMs, Date.now()) + WRITERS_AHEAD_MS) {
            await client.query(`LOCK TABLE ONLY ${t.tables.map((p) => `${s}.${p}`).join(', ')} IN SHARE ROW EXCLUSIVE MODE`);
          }
          // The rows of the new range move with the attach, so a row is never in two
          // partitions or none. Readers are not blocked.
          await client.query(`LOCK TABLE ${t.tables.map((p) => `${s}.${p}_other`).join(', ')} IN ACCESS EXCLUSIVE MODE`);
          for (const [i, parent] of t.tables.entries()) {
            const part = partitionOf(parent, name, leader);
            const key = t.keys[i]!;
            await client.query(
              `WITH moved AS (DELETE FROM ${s}.${parent}_other WHERE ${key} >= $1 AND ${key} < $2 RETURNING *)
               INSERT INTO ${s}.${part} SELECT * FROM moved`,
              [from, to],
            );
            await client.query(`ALTER TABLE ${s}.${parent} ATTACH PARTITION ${s}.${part} FOR VALUES FROM ('${from}') TO ('${to}')`);
          }
        });
        if (!ok) break;
        done.created.push(name);
      }
      const retentionMs = retention[RETENTION_KEYS[t.data]];
      if (retentionMs === undefined) continue;
      const cutoff = new Date(nowMs - retentionMs);
      for (const p of existing.filter((x) => x.toMs <= cutoff.getTime())) {
        // Detaching takes an exclusive lock on each parent for an instant; lock_timeout
        // keeps a long transaction that holds one from stalling writers behind the drop.
        const parts = t.tables.map((parent) => partitionOf(parent, p.name, leader));
        const ok = await step(`drop ${p.name}`, async () => {
          for (const [i, parent] of t.tables.entries()) await client.query(`ALTER TABLE ${s}.${parent} DETACH PARTITION ${s}.${parts[i]}`);
          const keep = keepSql(s, t, parts, cutoff);
          if (keep) {
            const [sql, values] = keep;
            const { rows } = await client.query<{ n: number }>(sql, values);
            done.kept += rows[0]?.n ?? 0;
          }
          await client.query(`DROP TABLE ${parts.map((x) => `${s}.${x}`).join(', ')}`);
        });
        if (!ok) break;
        done.dropped.push(p.name);
      }
      for (;;) {
        const { rows } = await client.query<{ n: number }>(purgeOtherSql(s, t), [cutoff]);
        const n = rows[0]?.n ?? 0;
        done.purgedOther += n;
        if (n < PURGE_BATCH) break;
      }
    }
  } catch (err) {
    broken ??= err as Error;
    throw err;
  } finally {
    if (locked) await client.query(`SELECT pg_advisory_unlock(hashtext($1))`, [lockKey]).catch((e: Error) => (broken = e));
    client.off('error', onError);
    client.release(broken);
  }
  for (const t of RETAINED_TABLES) {
    const r = result[t.data];
    if (r.created.length > 0 || r.dropped.length > 0 || r.purgedOther > 0) {
      log.info({ data: t.data, created: r.created, dropped: r.dropped, kept: r.kept, purgedOther: r.purgedOther, skipped: result.skipped }, 'partitions maintained');
    }
  }
  return result;
}
