import { SagaboxError } from '../shared/errors.js';
import { toRunQuery, type Executor } from '../shared/executor.js';
import { checkInt, DEFAULT_RETRY_POLICY } from '../shared/retry-policy.js';
import { DEFAULT_SCHEMA, quoteSchema, validateSchemaName } from '../shared/schema-name.js';
import type { PreparedHalfMessageInfo } from '../half-messages/half-message-admin.js';
import { DEFAULT_RELAY_RETRY } from '../relay/create-relay.js';
import { OUTBOX_COLUMNS, QUEUE_COLUMNS, summary, type MessageSummary, type Row } from './messages.js';
import { DEFAULT_VACUUM_BLOCKED_AFTER_MS, storageHealth, type VacuumHorizonHolder } from './storage-health.js';

/** Default `limit` of {@link needsAttention}: most rows in each list. */
export const DEFAULT_ATTENTION_LIMIT = 100;

/** Default `scanLimit` of {@link needsAttention}: messages looked at per queue, and in the outbox. */
export const DEFAULT_ATTENTION_SCAN_LIMIT = 10_000;

/** Options of {@link needsAttention}. */
export interface AttentionOptions {
  /** sagabox schema. Default `'sagabox'`. */
  schema?: string;
  /** The time everything is judged at. Default: the database's `now()`. */
  now?: Date;
  /** The workers' `maxAttempts`, 1 to 1,000,000. Default `DEFAULT_RETRY_POLICY.maxAttempts` (10). */
  maxAttempts?: number;
  /** The relays' `retry.maxAttempts`, 1 to 1,000,000. Default `DEFAULT_RELAY_RETRY.maxAttempts` (20). */
  relayMaxAttempts?: number;
  /** A message is near `maxAttempts` (`relayMaxAttempts` in the outbox) with at most this many attempts left, 0 to 1,000. Default 1. */
  attemptsLeft?: number;
  /** Most rows in each list, 1 to 1,000. Default {@link DEFAULT_ATTENTION_LIMIT}. */
  limit?: number;
  /** Age from which a held snapshot counts as blocking vacuum, in milliseconds (see `storageHealth`). Default 5 minutes. */
  vacuumBlockedAfterMs?: number;
  /**
   * Most messages looked at in each queue, in claim order (claim rank, then seq), and as
   * many of its scheduled ones (due later, by run time), and at the head of the outbox,
   * 1 to 1,000,000. Default {@link DEFAULT_ATTENTION_SCAN_LIMIT}
   * (10,000). Queues longer than this are named in {@link AttentionReport.beyondScan}.
   */
  scanLimit?: number;
}

/** A saga whose pending step (or compensation) is past its deadline. */
export interface OverdueSaga {
  /** The saga id. */
  id: string;
  /** Its saga type (definition name). */
  type: string;
  /** `running` or `compensating`. */
  status: string;
  /** Index of the pending step. */
  step: number;
  /** When its pending step's timeout was due. */
  deadline: Date;
  /** How long past its deadline, in milliseconds. */
  overdueMs: number;
}

/** What {@link needsAttention} found: each list is empty when all is well. */
export interface AttentionReport {
  /**
   * Queue messages still leased after their lease ran out: the worker that took them
   * died or hangs. Another worker takes them again once it claims; they show until then.
   */
  leaseExpired: MessageSummary[];
  /**
   * Messages with at most `attemptsLeft` attempts left before they are dead-lettered,
   * most attempts first: queue messages (handler runs), then outbox messages (relay
   * deliveries, `queue` null).
   */
  nearMaxAttempts: MessageSummary[];
  /** Running or compensating sagas past their step's deadline: their timeout has not been handled (is the orchestrator running?). */
  sagasPastDeadline: OverdueSaga[];
  /** Prepared half messages whose check-back is due and not done (is a relay with a checker running?). */
  halfMessagesPastCheck: PreparedHalfMessageInfo[];
  /** Vacuum held back past `vacuumBlockedAfterMs`, and by what (see `storageHealth`). */
  vacuum: { blocked: boolean; holder: VacuumHorizonHolder | null };
  /**
   * Where messages lie behind the first `scanLimit` and were not looked at for
   * `leaseExpired` and `nearMaxAttempts`: the queues that long, and whether the outbox is.
   */
  beyondScan: { queues: string[]; outbox: boolean };
  /** Rows in the lists above, plus 1 when vacuum is blocked: 0 when nothing needs attention. */
  total: number;
}

/**
 * One look at what needs an operator: messages whose worker died holding them, messages
 * about to be dead-lettered, sagas past their deadline, half messages nobody decides,
 * and vacuum blocked by a held snapshot. Read-only.
 *
 * No index serves the lease and attempts lists (one on columns every claim rewrites
 * would make each claim a non-HOT update), so they look only at the first `scanLimit`
 * messages of each queue in claim order (and as many of its scheduled ones, by run
 * time), and of the outbox in seq order: a claim takes from the head, so leased and
 * retried messages are there unless a deep backlog of blocked messages is ahead of them.
 * `beyondScan` says where the scan was cut. A group's held messages (docs/flow-control.md)
 * were never tried, and are not looked at.
 *
 * @throws {SagaboxError} `INVALID_OPTIONS` naming every bad option, `INVALID_SCHEMA_NAME` (before any SQL).
 * @example
 * const report = await needsAttention(pool, { maxAttempts: 5 });
 * if (report.total > 0) logger.warn({ sagas: report.sagasPastDeadline.length }, 'sagabox needs attention');
 */
export async function needsAttention(db: Executor, options: AttentionOptions = {}): Promise<AttentionReport> {
  const problems: string[] = [];
  if (typeof options !== 'object' || options === null) problems.push('options must be an object');
  const o = typeof options === 'object' && options !== null ? options : {};
  checkInt(problems, 'maxAttempts', o.maxAttempts, 1, 1_000_000);
  checkInt(problems, 'relayMaxAttempts', o.relayMaxAttempts, 1, 1_000_000);
  checkInt(problems, 'attemptsLeft', o.attemptsLeft, 0, 1_000);
  checkInt(problems, 'limit', o.limit, 1, 1_000);
  checkInt(problems, 'vacuumBlockedAfterMs', o.vacuumBlockedAfterMs, 0, Number.MAX_SAFE_INTEGER);
  checkInt(problems, 'scanLimit', o.scanLimit, 1, 1_000_000);
  if (o.now !== undefined && !(o.now instanceof Date && o.now.getTime() >= -62_135_596_800_000 && o.now.getTime() <= 253_402_300_799_999)) {
    problems.push('now must be a valid Date from year 1 to 9999');
  }
  if (problems.length > 0) throw new SagaboxError('INVALID_OPTIONS', `needsAttention: ${problems.join('; ')}`, { details: { problems } });
  const schema = validateSchemaName(o.schema ?? DEFAULT_SCHEMA);
  const s = quoteSchema(schema);
  const now = o.now ?? null;
  const limit = o.limit ?? DEFAULT_ATTENTION_LIMIT;
  const scanLimit = o.scanLimit ?? DEFAULT_ATTENTION_SCAN_LIMIT;
  const threshold = (o.maxAttempts ?? DEFAULT_RETRY_POLICY.maxAttempts) - (o.attemptsLeft ?? 1);
  const relayThreshold = (o.relayMaxAttempts ?? DEFAULT_RELAY_RETRY.maxAttempts) - (o.attemptsLeft ?? 1);
  const run = toRunQuery(db);
  const t = `WITH t AS (SELECT coalesce($1::timestamptz, now()) AS now)`;
  const leased = await run<Row>(
    `${queueHeads(s, '$3')}, t AS (SELECT coalesce($1::timestamptz, now()) AS now) SELECT ${QUEUE_COLUMNS} FROM head m, t
     WHERE m.lease_token IS NOT NULL AND m.locked_until < t.now ORDER BY m.locked_until LIMIT $2`,
    [now, limit, scanLimit],
  );
  const near = await run<Row>(
    `${queueHeads(s, '$4')}, t AS (SELECT coalesce($1::timestamptz, now()) AS now) SELECT ${QUEUE_COLUMNS} FROM head m, t
     WHERE m.attempts >= greatest($3::int, 1) ORDER BY m.attempts DESC, m.seq LIMIT $2`,
    [now, limit, threshold, scanLimit],
  );
  const nearInOutbox = near.length >= limit ? [] : await run<Row>(
    `${t} SELECT ${OUTBOX_COLUMNS} FROM (SELECT * FROM ${s}.outbox ORDER BY seq LIMIT $4) m, t
     WHERE m.state = 'ready' AND m.attempts >= greatest($3::int, 1) ORDER BY m.attempts DESC, m.seq LIMIT $2`,
    [now, limit - near.length, relayThreshold, scanLimit],
  );
  // Each probe walks the head it would have scanned once more: bounded like the lists.
  const [cut] = await run<{ queues: string[]; outbox: boolean }>(
    `${queueHeads(s, '$1')}
     SELECT coalesce((SELECT array_agg(qs.queue ORDER BY qs.queue) FROM qs WHERE qs.queue IS NOT NULL AND (EXISTS (
              SELECT 1 FROM ${s}.queue_messages m WHERE m.queue = qs.queue AND NOT m.scheduled AND NOT m.held ORDER BY m.claim_rank, m.seq OFFSET $1 LIMIT 1)
              OR EXISTS (SELECT 1 FROM ${s}.queue_messages m WHERE m.queue = qs.queue AND m.scheduled ORDER BY m.run_at OFFSET $1 LIMIT 1))), '{}') AS queues,
            EXISTS (SELECT 1 FROM ${s}.outbox ORDER BY seq OFFSET $1 LIMIT 1) AS outbox`,
    [scanLimit],
  );
  const sagas = await run<{ id: string; saga_type: string; status: string; current_step: number; deadline: Date; overdue_ms: number }>(
    `${t} SELECT id, saga_type, status, current_step, deadline, (extract(epoch FROM t.now - deadline) * 1000)::float8 AS overdue_ms
     FROM ${s}.sagas, t WHERE status IN ('running', 'compensating') AND deadline < t.now ORDER BY deadline LIMIT $2`,
    [now, limit],
  );
  const half = await run<{ id: string; topic: string; key: string | null; checks: number; check_at: Date; created_at: Date }>(
    `${t} SELECT id, topic, key, checks, check_at, created_at FROM ${s}.outbox, t
     WHERE state = 'prepared' AND check_at < t.now ORDER BY check_at, seq LIMIT $2`,
    [now, limit],
  );
  const health = await storageHealth(db, { schema, blockedAfterMs: o.vacuumBlockedAfterMs ?? DEFAULT_VACUUM_BLOCKED_AFTER_MS });
  const report: AttentionReport = {
    leaseExpired: leased.map(summary),
    nearMaxAttempts: [...near, ...nearInOutbox].map(summary),
    sagasPastDeadline: sagas.map((r) => ({
      id: r.id, type: r.saga_type, status: r.status, step: r.current_step, deadline: r.deadline, overdueMs: Math.max(0, Math.round(r.overdue_ms)),
    })),
    halfMessagesPastCheck: half.map((r) => ({ id: r.id, topic: r.topic, key: r.key, checks: r.checks, checkAt: r.check_at, createdAt: r.created_at })),
    vacuum: { blocked: health.vacuumBlocked, holder: health.vacuumBlocked ? health.oldest : null },
    beyondScan: { queues: cut!.queues, outbox: cut!.outbox },
    total: 0,
  };
  report.total = report.leaseExpired.length + report.nearMaxAttempts.length + report.sagasPastDeadline.length
    + report.halfMessagesPastCheck.length + (report.vacuum.blocked ? 1 : 0);
  return report;
}

/**
 * `qs`: the queues that hold messages, one index probe each (a skip scan of the
 * primary key, not a scan of the table); `head`: the first `scanLimit` messages of each
 * in claim order (queue_messages_claim, without the held rows), and its first `scanLimit`
 * scheduled ones by run time (queue_messages_scheduled), which the claim index does not
 * hold. `scanLimit` is the bind parameter named.
 */
function queueHeads(s: string, scanLimit: string): string {
  return `WITH RECURSIVE qs AS (
       (SELECT queue FROM ${s}.queue_messages ORDER BY queue LIMIT 1)
       UNION ALL
       SELECT (SELECT m.queue FROM ${s}.queue_messages m WHERE m.queue > qs.queue ORDER BY m.queue LIMIT 1) FROM qs WHERE qs.queue IS NOT NULL
     ), head AS (
       SELECT h.* FROM qs CROSS JOIN LATERAL (
         (SELECT * FROM ${s}.queue_messages m WHERE m.queue = qs.queue AND NOT m.scheduled AND NOT m.held ORDER BY m.claim_rank, m.seq LIMIT ${scanLimit}::int)
         UNION ALL
         (SELECT * FROM ${s}.queue_messages m WHERE m.queue = qs.queue AND m.scheduled ORDER BY m.run_at LIMIT ${scanLimit}::int)) h
       WHERE qs.queue IS NOT NULL
     )`;
}
