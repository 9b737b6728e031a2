import type { HalfMessageCheckDecision } from './check-back.js';
import { SagaboxError } from '../shared/errors.js';
import { toRunQuery, type Executor } from '../shared/executor.js';
import { assertNoProblems, checkInt, MAX_AGE_FILTER_MS } from '../shared/retry-policy.js';
import { DEFAULT_SCHEMA } from '../shared/schema-name.js';
import { statementsFor } from '../shared/statements.js';

// The admin reads and the purge of half messages, for one schema.
const adminSql = statementsFor((s) => ({
  // Prepared messages, next due first: $1 topic (null: any), $2 due only, $3 limit.
  list: `
    SELECT id, topic, key, checks, check_at, created_at
    FROM ${s}.outbox
    WHERE state = 'prepared'
      AND ($1::text IS NULL OR topic = $1::text)
      AND ($2::boolean IS NOT TRUE OR check_at <= now())
    ORDER BY check_at, seq
    LIMIT $3`,
  // Every decision about message $1, oldest first.
  history: `
    SELECT seq, message_id, topic, decision, source, detail, decided_at
    FROM ${s}.half_message_decisions
    WHERE message_id = $1::uuid
    ORDER BY seq`,
  // Decisions older than $1 ms, of messages that left the outbox only: a prepared message
  // keeps its whole history.
  purgeDecisions: `
    WITH purged AS (
      DELETE FROM ${s}.half_message_decisions d
      WHERE d.decided_at < now() - $1::double precision * interval '1 millisecond'
        AND NOT EXISTS (SELECT 1 FROM ${s}.outbox o WHERE o.id = d.message_id)
      RETURNING 1
    )
    SELECT count(*)::int AS n FROM purged`,
}));
import { describeValue } from '../shared/describe-value.js';

/** A half message still prepared: neither committed nor rolled back yet. */
export interface PreparedHalfMessageInfo {
  /** The half message's id. */
  id: string;
  /** The half message's topic. */
  topic: string;
  /** The ordering key, or null. */
  key: string | null;
  /** How many times a checker was asked about it so far. */
  checks: number;
  /** When the relay asks its checker next (or first). */
  checkAt: Date;
  /** When it was prepared. */
  createdAt: Date;
}

/** One recorded decision about a half message. */
export interface HalfMessageDecisionRecord {
  /** The half message decided. */
  messageId: string;
  /** The half message's topic. */
  topic: string;
  /** `prepared`, a producer's or checker's `commit` / `rollback`, a checker's `unknown` or `check_failed`, or the relay's `no_checker` / `unresolved`. */
  decision: 'prepared' | HalfMessageCheckDecision;
  /** Who decided: the producer (`prepare`, `commitHalfMessage`, `rollbackHalfMessage`), the topic's checker, the relay, or an operator (`decideHalfMessage`). */
  source: 'producer' | 'checker' | 'relay' | 'operator';
  /** The producer's note, the checking relay, the error of a failed check, or the operator's `<by>: <reason>`. */
  detail: string | null;
  /** When the decision was recorded. */
  decidedAt: Date;
}

/** Options of {@link listHalfMessages}. */
export interface ListHalfMessagesOptions {
  /** sagabox schema. Default `'sagabox'`. */
  schema?: string;
  /** Only this topic. */
  topic?: string;
  /** Only messages whose check is due now. Default false. */
  dueOnly?: boolean;
  /** Most rows returned. Default 100, at most 10,000. */
  limit?: number;
}

/**
 * Lists the half messages still prepared -- awaiting their producer's decision or a
 * check-back -- soonest check first.
 *
 * @example
 * const stuck = await listHalfMessages(pool, { dueOnly: true });
 * for (const m of stuck) logger.warn({ messageId: m.id, topic: m.topic, checks: m.checks }, 'half message awaiting check');
 */
export async function listHalfMessages(db: Executor, options: ListHalfMessagesOptions = {}): Promise<PreparedHalfMessageInfo[]> {
  const problems: string[] = [];
  checkInt(problems, 'limit', options.limit, 1, 10_000);
  assertNoProblems('listHalfMessages', problems);
  const sql = adminSql(options.schema ?? DEFAULT_SCHEMA);
  const rows = await toRunQuery(db)<{ id: string; topic: string; key: string | null; checks: number; check_at: Date; created_at: Date }>(
    sql.list,
    [options.topic ?? null, options.dueOnly ?? false, options.limit ?? 100],
  );
  return rows.map((r) => ({ id: r.id, topic: r.topic, key: r.key, checks: r.checks, checkAt: r.check_at, createdAt: r.created_at }));
}

/**
 * Every decision recorded about one half message, oldest first: prepared, then the
 * producer's commit or rollback, or each check-back answer up to the final one.
 * Empty for an id never prepared (or whose history was purged).
 *
 * @example
 * const history = await halfMessageHistory(pool, id);
 * // [{ decision: 'prepared', source: 'producer' }, { decision: 'unknown', source: 'checker' }, { decision: 'commit', source: 'checker' }]
 */
export async function halfMessageHistory(db: Executor, id: string, options: { schema?: string } = {}): Promise<HalfMessageDecisionRecord[]> {
  if (typeof id !== 'string' || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) {
    throw new SagaboxError('INVALID_MESSAGE', `half message id ${describeValue(id)} is not a UUID`, { details: { id } });
  }
  const sql = adminSql(options.schema ?? DEFAULT_SCHEMA);
  const rows = await toRunQuery(db)<{
    message_id: string;
    topic: string;
    decision: HalfMessageDecisionRecord['decision'];
    source: HalfMessageDecisionRecord['source'];
    detail: string | null;
    decided_at: Date;
  }>(sql.history, [id]);
  return rows.map((r) => ({
    messageId: r.message_id,
    topic: r.topic,
    decision: r.decision,
    source: r.source,
    detail: r.detail,
    decidedAt: r.decided_at,
  }));
}

/**
 * Deletes the decision history of half messages that left the outbox (delivered,
 * rolled back or dead-lettered) more than `olderThanMs` ago; resolves to the number
 * of records deleted. After the purge, a late `commitHalfMessage` of such a message
 * gets `NOT_FOUND` instead of an idempotent answer, and its id can be prepared again:
 * keep the window longer than any producer could still retry.
 *
 * @example
 * await purgeHalfMessageDecisions(pool, { olderThanMs: 30 * 24 * 3_600_000 });
 */
export async function purgeHalfMessageDecisions(db: Executor, options: { olderThanMs: number; schema?: string }): Promise<number> {
  const problems: string[] = [];
  if (options?.olderThanMs === undefined) problems.push('olderThanMs is required');
  checkInt(problems, 'olderThanMs', options?.olderThanMs, 0, MAX_AGE_FILTER_MS);
  assertNoProblems('purgeHalfMessageDecisions', problems);
  const sql = adminSql(options.schema ?? DEFAULT_SCHEMA);
  const rows = await toRunQuery(db)<{ n: number }>(sql.purgeDecisions, [options.olderThanMs]);
  return rows[0]?.n ?? 0;
}
