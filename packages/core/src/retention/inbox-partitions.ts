import type pg from 'pg';
import { assertNoProblems, checkInt } from '../shared/retry-policy.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { DEFAULT_SCHEMA, quoteSchema, validateSchemaName } from '../shared/schema-name.js';

/** Default width of one inbox partition, in milliseconds (one day). */
export const DEFAULT_INBOX_PARTITION_MS = 24 * 3_600_000;
/** Default time covered by partitions created ahead of now, in milliseconds (two days). */
export const DEFAULT_INBOX_AHEAD_MS = 2 * 24 * 3_600_000;
/** How long a maintainer waits for another one to finish before it gives up until its next run, in milliseconds. */
const MAINTAINER_WAIT_MS = 10_000;
/** Default lock wait of one maintenance step before it gives up until the next run, in milliseconds. */
export const DEFAULT_INBOX_LOCK_TIMEOUT_MS = 500;

/** Options of {@link maintainInbox}. */
export interface MaintainInboxOptions {
  /** Schema holding sagabox's tables. Default `'sagabox'`. */
  schema?: string;
  /**
   * How long a message id stays in the inbox, in milliseconds, counted from the time in
   * the id (UUIDv7: when it was published). A partition goes once all of its ids are
   * older; ids of other kinds (in `inbox_other`) go by their `processed_at`. Required.
   */
  retentionMs: number;
  /** Width of a new partition, in milliseconds. Default {@link DEFAULT_INBOX_PARTITION_MS}. */
  partitionMs?: number;
  /** Partitions are created to cover now + `aheadMs`. Default {@link DEFAULT_INBOX_AHEAD_MS}. */
  aheadMs?: number;
  /**
   * How long one step waits for a table lock before giving up until the next run, in
   * milliseconds; bounds how long inserts can queue behind a drop. Default {@link DEFAULT_INBOX_LOCK_TIMEOUT_MS}.
   */
  lockTimeoutMs?: number;
  /** The current time; tests inject it. Default: the clock. */
  now?: Date;
  /** Where maintenance logs what it created and dropped (default: silent). */
  logger?: Logger;
}

/** What one {@link maintainInbox} run did. */
export interface InboxMaintenance {
  /** Partitions created (table names). */
  created: string[];
  /** Partitions dropped (table names). */
  dropped: string[];
  /** Rows deleted from `inbox_other` by age. */
  purgedOther: number;
  /** Steps skipped because a lock was not granted in time (or the run, when another process kept maintaining); tried again next run. */
  skipped: number;
}

interface Partition {
  name: string;
  fromMs: number;
  toMs: number;
}

/** The UUID whose first 48 bits are `ms`, rest zero: the smallest UUIDv7 of that millisecond. */
export function uuidAtMs(ms: number): string {
  const hex = Math.max(0, Math.min(ms, 2 ** 48 - 1)).toString(16).padStart(12, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-0000-0000-000000000000`;
}

function msOfUuid(uuid: string): number {
  return Number.parseInt(uuid.replaceAll('-', '').slice(0, 12), 16);
}

/** inbox_p20261202 for a partition starting at midnight UTC, inbox_p20261202_101500_000 otherwise. */
function partitionName(fromMs: number): string {
  const iso = new Date(fromMs).toISOString(); // 2026-12-02T10:15:00.000Z
  const day = iso.slice(0, 10).replaceAll('-', '');
  const rest = iso.slice(11, 23).replaceAll(':', '').replace('.', '_');
  return rest === '000000_000' ? `inbox_p${day}` : `inbox_p${day}_${rest}`;
}

const BOUND = /FROM \('([0-9a-f-]{36})'\) TO \('([0-9a-f-]{36})'\)/;

async function listPartitions(client: pg.ClientBase, schema: string): Promise<Partition[]> {
  const { rows } = await client.query<{ name: string; bound: string }>(
    `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = to_regclass($1)`,
    [`${quoteSchema(schema)}.inbox`],
  );
  const partitions: Partition[] = [];
  for (const row of rows) {
    const m = BOUND.exec(row.bound);
    if (m) partitions.push({ name: row.name, fromMs: msOfUuid(m[1]!), toMs: msOfUuid(m[2]!) });
  }
  return partitions.sort((a, b) => a.fromMs - b.fromMs);
}

/** The ranges to create so that [nowMs - partitionMs, nowMs + aheadMs) is covered, fitted between existing partitions. */
export function missingRanges(existing: readonly { fromMs: number; toMs: number }[], nowMs: number, partitionMs: number, aheadMs: number): { fromMs: number; toMs: number }[] {
  const sorted = [...existing].sort((a, b) => a.fromMs - b.fromMs);
  const out: { fromMs: number; toMs: number }[] = [];
  let cursor = Math.floor(nowMs / partitionMs) * partitionMs;
  const end = nowMs + aheadMs;
  while (cursor < end) {
    const covering = sorted.find((p) => p.fromMs <= cursor && cursor < p.toMs);
    if (covering) {
      cursor = covering.toMs;
      continue;
    }
    const next = sorted.find((p) => p.fromMs > cursor);
    const toMs = Math.min(Math.floor(cursor / partitionMs) * partitionMs + partitionMs, next?.fromMs ?? Infinity);
    out.push({ fromMs: cursor, toMs });
    cursor = toMs;
  }
  return out;
}

/**
 * Keeps the inbox's time partitions: creates those that cover now and the next `aheadMs`,
 * drops those whose ids are all older than `retentionMs`, and deletes rows of
 * `inbox_other` (ids that are not UUIDv7 or outside every partition) processed more than
 * `retentionMs` ago. Dropping a partition leaves nothing for vacuum, unlike deleting
 * its rows one by one. The worker runs this at start and every `inboxPurgeIntervalMs`;
 * call it yourself (cron, a deploy hook) when no worker runs on the database.
 *
 * Safe while producers and workers run, with a snapshot held and across crashes: a run
 * holds an advisory lock (two processes never maintain at once; the second waits up to
 * 10 s, then skips), and each step is one short transaction with `lockTimeoutMs` on its
 * table locks, so a step that
 * cannot get its lock gives up (counted in `skipped`) instead of queueing inserts
 * behind it. A new partition takes the rows of its range out of `inbox_other` in the
 * transaction that attaches it, under a lock on `inbox_other`, so no id is ever in two
 * places or in none.
 *
 * Retention counts from the time in the id, not from processing: keep `retentionMs`
 * well above the longest a message can wait before it is handled (delays, backlogs),
 * or a redelivery after a late first handling may find its inbox row gone.
 *
 * @example
 * await maintainInbox(pool, { retentionMs: 7 * 24 * 3_600_000 });
 */
export async function maintainInbox(pool: pg.Pool, options: MaintainInboxOptions): Promise<InboxMaintenance> {
  const problems: string[] = [];
  if (options?.retentionMs === undefined) problems.push('retentionMs is required');
  checkInt(problems, 'retentionMs', options?.retentionMs, 1, Number.MAX_SAFE_INTEGER);
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
  assertNoProblems('maintainInbox', problems);

  const s = quoteSchema(schema);
  const log = (options.logger ?? silentLogger).child({ component: 'inbox-maintenance', schema });
  const nowMs = (options.now ?? new Date()).getTime();
  const partitionMs = options.partitionMs ?? DEFAULT_INBOX_PARTITION_MS;
  const aheadMs = options.aheadMs ?? DEFAULT_INBOX_AHEAD_MS;
  const lockTimeoutMs = options.lockTimeoutMs ?? DEFAULT_INBOX_LOCK_TIMEOUT_MS;
  const result: InboxMaintenance = { created: [], dropped: [], purgedOther: 0, skipped: 0 };

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
        log.info({ step: what }, 'inbox maintenance step did not get its lock in time; will try again');
        result.skipped += 1;
        return false;
      }
      throw err;
    }
  };
  let locked = false;
  try {
    // One maintainer at a time, for the whole run. Workers that start together wait
    // here for the first one (whose first step creates the current partition) instead
    // of claiming while it attaches: an id routed to inbox_other during the attach
    // fails its batch. A maintainer that waits too long gives up until the next run.
    await client.query(`SELECT set_config('lock_timeout', $1, false)`, [`${MAINTAINER_WAIT_MS}ms`]);
    try {
      await client.query(`SELECT pg_advisory_lock(hashtext($1))`, [`sagabox inbox maintenance ${schema}`]);
      locked = true;
    } catch (err) {
      if ((err as { code?: string }).code !== '55P03') throw err;
      result.skipped += 1;
      log.info({}, 'another process is maintaining the inbox; will try again');
      return result;
    } finally {
      await client.query('RESET lock_timeout');
    }
    const existing = await listPartitions(client, schema);
    for (const range of missingRanges(existing, nowMs, partitionMs, aheadMs)) {
      const name = partitionName(range.fromMs);
      const from = uuidAtMs(range.fromMs);
      const to = uuidAtMs(range.toMs);
      const done = await step(`create ${name}`, async () => {
        await client.query(`CREATE TABLE ${s}.${name} (LIKE ${s}.inbox INCLUDING DEFAULTS)`);
        // Inserts routed to inbox_other wait from here to COMMIT; the rows of the new
        // range move with the attach, so an id is never in two partitions or none.
        await client.query(`LOCK TABLE ${s}.inbox_other IN ACCESS EXCLUSIVE MODE`);
        await client.query(
          `WITH moved AS (DELETE FROM ${s}.inbox_other WHERE message_id >= $1 AND message_id < $2 RETURNING consumer, message_id, processed_at)
           INSERT INTO ${s}.${name} (consumer, message_id, processed_at) SELECT consumer, message_id, processed_at FROM moved`,
          [from, to],
        );
        await client.query(`ALTER TABLE ${s}.inbox ATTACH PARTITION ${s}.${name} FOR VALUES FROM ('${from}') TO ('${to}')`);
      });
      if (!done) break;
      result.created.push(name);
    }
    const cutoffMs = nowMs - options.retentionMs;
    for (const p of existing.filter((x) => x.toMs <= cutoffMs)) {
      // DROP takes an exclusive lock on the parent for an instant; lock_timeout keeps a
      // long transaction that holds the inbox from stalling inserts behind the drop.
      const done = await step(`drop ${p.name}`, async () => {
        await client.query(`DROP TABLE ${s}.${p.name}`);
      });
      if (!done) break;
      result.dropped.push(p.name);
    }
    for (;;) {
      const { rowCount } = await client.query(
        `DELETE FROM ${s}.inbox_other WHERE ctid = ANY(ARRAY(
           SELECT ctid FROM ${s}.inbox_other WHERE processed_at < $1::timestamptz LIMIT 5000))`,
        [new Date(cutoffMs)],
      );
      result.purgedOther += rowCount ?? 0;
      if ((rowCount ?? 0) < 5_000) break;
    }
  } catch (err) {
    broken ??= err as Error;
    throw err;
  } finally {
    if (locked) await client.query(`SELECT pg_advisory_unlock(hashtext($1))`, [`sagabox inbox maintenance ${schema}`]).catch((e: Error) => (broken = e));
    client.off('error', onError);
    client.release(broken);
  }
  if (result.created.length > 0 || result.dropped.length > 0 || result.purgedOther > 0) {
    log.info({ created: result.created, dropped: result.dropped, purgedOther: result.purgedOther, skipped: result.skipped }, 'inbox partitions maintained');
  }
  return result;
}
