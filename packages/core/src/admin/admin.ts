import { claimRankFrom } from '../shared/claim-rank.js';
import { InvalidOptionsError, SagaboxError } from '../shared/errors.js';
import { isStorableText } from '../publish/message-label.js';
import { toRunQuery, type Executor } from '../shared/executor.js';
import { MAX_AGE_FILTER_MS } from '../shared/retry-policy.js';
import { DEFAULT_SCHEMA, quoteSchema } from '../shared/schema-name.js';
import { validateQueueName, validateTopic } from '../publish/topic-name.js';
import { limitsFromRow, type QueueLimits } from '../flow-control/queue-limits.js';

/** Options shared by the admin functions. */
export interface AdminOptions {
  /** sagabox schema. Default `'sagabox'`. */
  schema?: string;
}

/** Depth of one queue. */
export interface QueueStats {
  /** The queue's name. */
  queue: string;
  /** Runnable now and not leased. */
  ready: number;
  /**
   * Of `ready`: messages of a group past its `groupMaxInFlight` window, waiting outside
   * the claims' index until the group's earlier messages are claimed (see flow control).
   */
  held: number;
  /** Leased by a worker (being handled, or waiting for a dead worker's lease to run out). */
  inFlight: number;
  /** Waiting for their run time: `retrying` plus `scheduled`. */
  delayed: number;
  /** Failed at least once and waiting for their next attempt. */
  retrying: number;
  /** Published with a delay and not due yet (never failed). */
  scheduled: number;
  /** In the dead letters. */
  dead: number;
  /**
   * How long the most overdue runnable message has waited, in milliseconds: now minus
   * the later of its publish time and its run time, so a message scheduled for later
   * counts only from when it is due (null when nothing is runnable or in flight).
   */
  oldestAgeMs: number | null;
  /** Flow-control limits in force (see `setQueueLimits`). */
  limits: QueueLimits;
  /** When an operator paused the queue (`pauseQueue`): no worker claims from it; null while running. */
  pausedAt: Date | null;
}

/**
 * Depth of every queue (or of the given ones): ready, in flight, delayed, dead, oldest age.
 * @example const [billing] = await queueStats(pool, { queues: ['billing'] });
 */
export async function queueStats(db: Executor, options: AdminOptions & { queues?: string[] } = {}): Promise<QueueStats[]> {
  const s = quoteSchema(options.schema ?? DEFAULT_SCHEMA);
  if (options.queues !== undefined && !Array.isArray(options.queues)) throw new InvalidOptionsError('queueStats', ['queues must be an array of queue names']);
  const queues = options.queues?.map((q) => validateQueueName(q)) ?? null;
  const rows = await toRunQuery(db)<{
    queue: string; paused_at: Date | null; ready: number; held: number; in_flight: number; retrying: number; scheduled: number; dead: number; oldest_ms: number | null;
  } & Parameters<typeof limitsFromRow>[0]>(
    `SELECT q.name AS queue, q.paused_at, q.max_in_flight, q.rate_per_second, q.burst, q.group_max_in_flight,
            q.group_rate_per_second, q.group_burst, q.priority_aging_ms,
            coalesce(m.ready, 0)::int AS ready, coalesce(m.held, 0)::int AS held, coalesce(m.in_flight, 0)::int AS in_flight,
            coalesce(m.retrying, 0)::int AS retrying, coalesce(m.scheduled, 0)::int AS scheduled,
            coalesce(d.dead, 0)::int AS dead, m.oldest_ms
     FROM ${s}.queues q
     LEFT JOIN (
       SELECT queue,
              count(*) FILTER (WHERE run_at <= now() AND (locked_until IS NULL OR locked_until < now())) AS ready,
              count(*) FILTER (WHERE held AND run_at <= now()) AS held,
              count(*) FILTER (WHERE locked_until >= now()) AS in_flight,
              count(*) FILTER (WHERE run_at > now() AND attempts > 0 AND (locked_until IS NULL OR locked_until < now())) AS retrying,
              count(*) FILTER (WHERE run_at > now() AND attempts = 0 AND (locked_until IS NULL OR locked_until < now())) AS scheduled,
              (extract(epoch FROM now() - min(greatest(created_at, run_at)) FILTER (WHERE run_at <= now() OR locked_until >= now())) * 1000)::float8 AS oldest_ms
       FROM ${s}.queue_messages GROUP BY queue
     ) m ON m.queue = q.name
     LEFT JOIN (SELECT queue, count(*) AS dead FROM ${s}.dead_letters WHERE queue IS NOT NULL GROUP BY queue) d ON d.queue = q.name
     WHERE $1::text[] IS NULL OR q.name = ANY($1::text[])
     ORDER BY q.name`,
    [queues],
  );
  if (queues) {
    const known = new Set(rows.map((r) => r.queue));
    const unknown = queues.filter((q) => !known.has(q));
    if (unknown.length > 0) throw new SagaboxError('NOT_FOUND', `unknown queue(s): ${unknown.join(', ')}`, { details: { queues: unknown } });
  }
  return rows.map((r) => ({
    queue: r.queue, ready: r.ready, held: r.held, inFlight: r.in_flight, delayed: r.retrying + r.scheduled, retrying: r.retrying, scheduled: r.scheduled, dead: r.dead,
    oldestAgeMs: r.oldest_ms === null ? null : Math.max(0, Math.round(r.oldest_ms)),
    limits: limitsFromRow(r),
    pausedAt: r.paused_at,
  }));
}

/** State of the outbox: what the relay still has to move. */
export interface OutboxStats {
  /** Committed messages not yet delivered. */
  ready: number;
  /** Half messages waiting for commit, rollback or check-back. */
  prepared: number;
  /** Dead letters of the relay (unroutable, invalid, expired, unresolved half messages, failed deliveries). */
  dead: number;
  /** Age of the oldest undelivered committed message, in milliseconds: the relay lag (null when empty). */
  lagMs: number | null;
}

/** Relay lag and outbox contents. */
export async function outboxStats(db: Executor, options: AdminOptions = {}): Promise<OutboxStats> {
  const s = quoteSchema(options.schema ?? DEFAULT_SCHEMA);
  const [r] = await toRunQuery(db)<{ ready: number; prepared: number; dead: number; lag_ms: number | null }>(
    `SELECT count(*) FILTER (WHERE state = 'ready')::int AS ready,
            count(*) FILTER (WHERE state = 'prepared')::int AS prepared,
            (SELECT count(*)::int FROM ${s}.dead_letters WHERE source = 'outbox') AS dead,
            (extract(epoch FROM now() - min(created_at) FILTER (WHERE state = 'ready')) * 1000)::float8 AS lag_ms
     FROM ${s}.outbox`,
    [],
  );
  return { ready: r!.ready, prepared: r!.prepared, dead: r!.dead, lagMs: r!.lag_ms === null ? null : Math.max(0, Math.round(r!.lag_ms)) };
}

/** A dead letter, as listed by {@link listDeadLetters}. */
export interface DeadLetter {
  /** Id of the dead-letter entry (replay and purge take it). */
  deadId: string;
  /** Where the message died: in the relay ('outbox') or at a worker ('queue'). */
  source: 'outbox' | 'queue';
  /** The queue, or null for the outbox. */
  queue: string | null;
  /** The message id. */
  id: string;
  /** Its topic. */
  topic: string;
  /** Ordering key, or null. */
  key: string | null;
  /** The payload as published. */
  payload: unknown;
  /** Its string headers. */
  headers: Record<string, string>;
  /** Why: 'failed', 'timeout', 'non_retryable', 'expired', 'invalid', 'unroutable', 'unresolved', or 'cancelled' by an operator (`cancelMessages`). */
  reason: string;
  /** The last error text. */
  error: string;
  /** Attempts made before it died. */
  attempts: number;
  /** When it was published. */
  createdAt: Date;
  /** When it was dead-lettered. */
  deadAt: Date;
}

/** Which dead letters an admin call applies to. All filters combine with AND. */
export interface DeadLetterFilter extends AdminOptions {
  /** Only dead letters of this queue. */
  queue?: string;
  /** Only dead letters of this topic. */
  topic?: string;
  /** Only dead letters with exactly this reason (for example `max-attempts`). */
  reason?: string;
  /** Only dead letters older than this, in milliseconds. */
  olderThanMs?: number;
  /** Only these dead-letter ids. */
  deadIds?: string[];
  /** Most rows to list, 1 to {@link MAX_DEAD_LETTER_LIST_LIMIT}. Default 100. */
  limit?: number;
  /**
   * A cursor for {@link listDeadLetters}, which alone reads it: only dead letters listed
   * after this `deadId` (newest first, so older ones). Pass the last `deadId` of a page
   * to get the next page.
   * @example
   * const page1 = await listDeadLetters(pool, { queue: 'billing', limit: 50 });
   * const page2 = await listDeadLetters(pool, { queue: 'billing', limit: 50, before: page1.at(-1)?.deadId });
   */
  before?: string;
}

/** Largest `limit` of {@link listDeadLetters}. */
export const MAX_DEAD_LETTER_LIST_LIMIT = 10_000;

const MAX_BIGINT = 9_223_372_036_854_775_807n;

/**
 * Checks a dead-letter filter before any SQL, so a bad value is a typed error and not
 * an aborted transaction; returns its bind values.
 * @throws {SagaboxError} `INVALID_SCHEMA_NAME`, `INVALID_QUEUE_NAME`, `INVALID_TOPIC`;
 * `INVALID_OPTIONS` listing every other problem.
 */
function filterValues(f: DeadLetterFilter, what: string): unknown[] {
  if (typeof f !== 'object' || f === null) throw new InvalidOptionsError(what, ['the filter must be an object']);
  // Names keep their own codes (INVALID_SCHEMA_NAME, INVALID_QUEUE_NAME, INVALID_TOPIC), as everywhere else.
  if (f.schema !== undefined) quoteSchema(f.schema);
  if (f.queue !== undefined) validateQueueName(f.queue);
  if (f.topic !== undefined) validateTopic(f.topic);
  const problems: string[] = [];
  if (f.reason !== undefined && (typeof f.reason !== 'string' || f.reason.length > 255 || !isStorableText(f.reason))) {
    problems.push('reason must be a string of at most 255 characters');
  }
  if (f.olderThanMs !== undefined && (typeof f.olderThanMs !== 'number' || !(f.olderThanMs >= 0) || !(f.olderThanMs <= MAX_AGE_FILTER_MS))) {
    problems.push(`olderThanMs must be a number from 0 to ${MAX_AGE_FILTER_MS} (1,000 years)`);
  }
  if (f.deadIds !== undefined) {
    if (!Array.isArray(f.deadIds) || f.deadIds.length > 100_000) problems.push('deadIds must be an array of at most 100,000 ids');
    else if (f.deadIds.some((d) => typeof d !== 'string' || !/^\d{1,19}$/.test(d) || BigInt(d) > MAX_BIGINT || BigInt(d) < 1n)) {
      problems.push('deadIds must be decimal ids from 1 to 9223372036854775807');
    }
  }
  if (f.limit !== undefined && (typeof f.limit !== 'number' || !Number.isInteger(f.limit) || f.limit < 1 || f.limit > MAX_DEAD_LETTER_LIST_LIMIT)) {
    problems.push(`limit must be an integer from 1 to ${MAX_DEAD_LETTER_LIST_LIMIT}`);
  }
  if (f.before !== undefined && !(typeof f.before === 'string' && /^\d{1,19}$/.test(f.before) && BigInt(f.before) <= MAX_BIGINT)) {
    problems.push('before must be a deadId (a decimal id from 0 to 9223372036854775807)');
  }
  if (problems.length > 0) throw new InvalidOptionsError(what, problems);
  return [f.queue ?? null, f.topic ?? null, f.reason ?? null, f.olderThanMs ?? null, f.deadIds ?? null];
}

const FILTER = `($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR topic = $2) AND ($3::text IS NULL OR reason = $3)
  AND ($4::float8 IS NULL OR dead_at < now() - $4::float8 * interval '1 millisecond')
  AND ($5::bigint[] IS NULL OR dead_id = ANY($5::bigint[]))`;

/**
 * Lists dead letters, newest first; page with `before` (the last `deadId` of a page).
 * @throws {SagaboxError} `INVALID_OPTIONS` for a malformed filter, before any SQL.
 */
export async function listDeadLetters(db: Executor, filter: DeadLetterFilter = {}): Promise<DeadLetter[]> {
  const values = filterValues(filter, 'listDeadLetters');
  const s = quoteSchema(filter.schema ?? DEFAULT_SCHEMA);
  const rows = await toRunQuery(db)<Record<string, unknown>>(
    `SELECT * FROM ${s}.dead_letters WHERE ${FILTER} AND ($7::bigint IS NULL OR dead_id < $7::bigint) ORDER BY dead_id DESC LIMIT $6`,
    [...values, filter.limit ?? 100, filter.before ?? null],
  );
  return rows.map((r) => ({
    deadId: String(r.dead_id), source: r.source as 'outbox' | 'queue', queue: r.queue as string | null, id: r.id as string,
    topic: r.topic as string, key: r.key as string | null, payload: r.payload, headers: r.headers as Record<string, string>,
    reason: r.reason as string, error: r.error as string, attempts: r.attempts as number,
    createdAt: r.created_at as Date, deadAt: r.dead_at as Date,
  }));
}

/**
 * How many dead letters a filter matches: the preview of {@link replayDeadLetters} and
 * {@link purgeDeadLetters} with the same filter (`limit` and `before` are ignored, as they ignore them).
 * @throws {SagaboxError} `INVALID_OPTIONS` for a malformed filter, before any SQL.
 * @example const n = await countDeadLetters(pool, { queue: 'billing', reason: 'failed' });
 */
export async function countDeadLetters(db: Executor, filter: DeadLetterFilter = {}): Promise<number> {
  const values = filterValues(filter, 'countDeadLetters');
  const s = quoteSchema(filter.schema ?? DEFAULT_SCHEMA);
  const [r] = await toRunQuery(db)<{ n: number }>(`SELECT count(*)::int AS n FROM ${s}.dead_letters WHERE ${FILTER}`, values);
  return r!.n;
}

/**
 * Moves dead letters back to where they died, attempts reset: a queue's back to that
 * queue (ready now), the relay's back to the outbox. Returns how many moved. A message
 * whose id is already back in its queue or outbox is left in the dead letters.
 * @throws {SagaboxError} `INVALID_OPTIONS` for a malformed filter, before any SQL.
 */
export async function replayDeadLetters(db: Executor, filter: DeadLetterFilter = {}): Promise<number> {
  const values = filterValues(filter, 'replayDeadLetters');
  const s = quoteSchema(filter.schema ?? DEFAULT_SCHEMA);
  const [r] = await toRunQuery(db)<{ n: number }>(
    `WITH picked AS (
       DELETE FROM ${s}.dead_letters d WHERE ${FILTER}
         AND NOT EXISTS (SELECT 1 FROM ${s}.queue_messages m WHERE m.queue = d.queue AND m.id = d.id)
         AND NOT EXISTS (SELECT 1 FROM ${s}.outbox o WHERE o.id = d.id)
       RETURNING *
     ), to_queue AS (
       INSERT INTO ${s}.queue_messages (queue, id, part, topic, key, group_key, payload, headers, priority, created_at, claim_rank)
       SELECT queue, id, ${s}.queue_part(id), topic, key, group_key, payload, headers, priority, created_at,
              ${claimRankFrom(s, 'queue', 'priority', 'now()')}
       FROM picked WHERE source = 'queue'
       RETURNING queue
     ), to_outbox AS (
       INSERT INTO ${s}.outbox (id, topic, key, group_key, priority, payload, headers, created_at)
       SELECT id, topic, key, group_key, priority, payload, headers, created_at FROM picked WHERE source = 'outbox' ORDER BY dead_id
       RETURNING id
     ), wake AS (
       SELECT pg_notify($6::text, queue) FROM (SELECT DISTINCT queue FROM to_queue) q
     )
     SELECT ((SELECT count(*) FROM to_queue) + (SELECT count(*) FROM to_outbox) + 0 * (SELECT count(*) FROM wake))::int AS n`,
    [...values, `${filter.schema ?? DEFAULT_SCHEMA}.queue`],
  );
  return r!.n;
}

/**
 * Deletes dead letters for good. Returns how many were deleted.
 * @throws {SagaboxError} `INVALID_OPTIONS` for a malformed filter, before any SQL.
 */
export async function purgeDeadLetters(db: Executor, filter: DeadLetterFilter = {}): Promise<number> {
  const values = filterValues(filter, 'purgeDeadLetters');
  const s = quoteSchema(filter.schema ?? DEFAULT_SCHEMA);
  const [r] = await toRunQuery(db)<{ n: number }>(
    `WITH gone AS (DELETE FROM ${s}.dead_letters WHERE ${FILTER} RETURNING 1) SELECT count(*)::int AS n FROM gone`,
    values,
  );
  return r!.n;
}
