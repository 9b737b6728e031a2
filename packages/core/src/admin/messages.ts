import { SagaboxError } from '../shared/errors.js';
import { toRunQuery, type Executor } from '../shared/executor.js';
import { DEFAULT_SCHEMA, quoteSchema } from '../shared/schema-name.js';
import { isMessageLabel } from '../publish/message-label.js';
import { validateQueueName, validateTopic } from '../publish/topic-name.js';
import { halfMessageHistory, type HalfMessageDecisionRecord } from '../half-messages/half-message-admin.js';
import { listDeadLetters, type DeadLetter } from './admin.js';

/**
 * Where a message waits, seen by an operator:
 * - `ready`: runnable now and not leased;
 * - `in_flight`: leased by a worker (queues only);
 * - `retrying`: failed at least once, waiting for its next attempt;
 * - `scheduled`: published with a delay, not failed yet, waiting for its run time;
 * - `prepared`: a half message awaiting commit, rollback or check-back (outbox only).
 */
export type MessageState = 'ready' | 'in_flight' | 'retrying' | 'scheduled' | 'prepared';

/** Every {@link MessageState}, in the order a message usually passes through them. */
export const MESSAGE_STATES: readonly MessageState[] = ['prepared', 'scheduled', 'ready', 'in_flight', 'retrying'];

/** Default and largest page size of {@link listMessages}. */
export const DEFAULT_MESSAGE_PAGE_SIZE = 50;
/** Largest page size {@link listMessages} accepts. */
export const MAX_MESSAGE_PAGE_SIZE = 1_000;

/** Which messages {@link listMessages} returns. Filters combine with AND. */
export interface MessageFilter {
  /** sagabox schema. Default `'sagabox'`. */
  schema?: string;
  /** The queue to browse; omitted: the outbox (messages the relay has still to move). */
  queue?: string;
  /** Only messages in this state. */
  state?: MessageState;
  /** Only this exact topic. */
  topic?: string;
  /** Only this ordering key. */
  key?: string;
  /** Only this flow-control group. */
  group?: string;
  /** Only this message id (UUID). */
  id?: string;
  /** Only messages whose last error contains this text (case-insensitive), 1-200 characters. */
  errorContains?: string;
  /** The `next` cursor of the previous page; omitted: the first page. */
  after?: string;
  /** Most messages per page: 1 to {@link MAX_MESSAGE_PAGE_SIZE}. Default {@link DEFAULT_MESSAGE_PAGE_SIZE}. */
  limit?: number;
  /** The time states are judged at. Default: the database's `now()`. */
  now?: Date;
}

/** One message as listed: what it is and why it waits, without its payload. */
export interface MessageSummary {
  /** The message id (UUIDv7). */
  id: string;
  /** The queue it is in; null for the outbox. */
  queue: string | null;
  /** The message's topic. */
  topic: string;
  /** The ordering key, or null for an unordered message. */
  key: string | null;
  /** The flow-control group, or null. */
  group: string | null;
  /** The priority the message was published with (higher first). */
  priority: number;
  /** Where the message is now (see docs/message-states.md). */
  state: MessageState;
  /** Failed attempts so far (relay deliveries for the outbox, handler runs for a queue). */
  attempts: number;
  /** The last failure's text, null when it never failed. */
  lastError: string | null;
  /** When it may run (next attempt for `retrying`, run time for `scheduled`). */
  runAt: Date;
  /** When it expires unhandled, or null. */
  expiresAt: Date | null;
  /** When the producer published it. */
  createdAt: Date;
  /** The worker holding its lease (`in_flight`), or that held it last; null when never leased. */
  lockedBy: string | null;
  /** When the current or last lease runs out, or null. */
  lockedUntil: Date | null;
  /** `prepared` only: when the relay asks the producer's checker next, and how often it asked. */
  checkAt: Date | null;
  /** How many check-backs a prepared half message has had (0 otherwise). */
  checks: number;
}

/** One page of {@link listMessages}. */
export interface MessagePage {
  /** The messages of this page, in the listing's order. */
  messages: MessageSummary[];
  /** Pass as `after` for the next page; null on the last page. */
  next: string | null;
}

/** One message whole: each place it is in, its payload and headers, and its history. */
export interface MessageDetail {
  /** The message id (UUIDv7). */
  id: string;
  /** The copies waiting: the outbox's, and one per queue it was delivered to. */
  copies: (MessageSummary & { payload: unknown; headers: Record<string, string> })[];
  /** Its dead letters, newest first. */
  deadLetters: DeadLetter[];
  /** Decisions about it as a half message, oldest first (empty for an ordinary message). */
  decisions: HalfMessageDecisionRecord[];
  /** Consumers named after a queue (the workers' default) whose inbox recorded it as handled. */
  handledBy: { consumer: string; processedAt: Date }[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The state of a queue row at `t.now`; kept in step with `queueStats`' counts. */
const QUEUE_STATE = `CASE WHEN m.locked_until >= t.now THEN 'in_flight'
  WHEN m.run_at <= t.now THEN 'ready' WHEN m.attempts > 0 THEN 'retrying' ELSE 'scheduled' END`;
/** The state of an outbox row: the relay moves delayed messages at once (`run_at` rides along), so only a failed delivery waits. */
const OUTBOX_STATE = `CASE WHEN m.state = 'prepared' THEN 'prepared'
  WHEN m.available_at > t.now AND m.attempts > 0 THEN 'retrying' WHEN m.available_at > t.now THEN 'scheduled' ELSE 'ready' END`;

export const QUEUE_COLUMNS = `m.seq, m.queue, m.id, m.topic, m.key, m.group_key, m.priority, m.attempts, m.last_error, m.run_at,
  m.expires_at, m.created_at, m.locked_by, m.locked_until, NULL::timestamptz AS check_at, 0 AS checks, ${QUEUE_STATE} AS state`;
export const OUTBOX_COLUMNS = `m.seq, NULL::text AS queue, m.id, m.topic, m.key, m.group_key, m.priority, m.attempts, m.last_error,
  greatest(m.available_at, coalesce(m.run_at, m.available_at)) AS run_at, m.expires_at, m.created_at, NULL::text AS locked_by,
  NULL::timestamptz AS locked_until, m.check_at, m.checks, ${OUTBOX_STATE} AS state`;

/** The filters every listing shares: $1 now, $2 state, $3 topic, $4 key, $5 group, $6 id, $7 error text, $8 after seq. */
const FILTERS = `($2::text IS NULL OR s.state = $2) AND ($3::text IS NULL OR s.topic = $3) AND ($4::text IS NULL OR s.key = $4)
  AND ($5::text IS NULL OR s.group_key = $5) AND ($6::uuid IS NULL OR s.id = $6)
  AND ($7::text IS NULL OR strpos(lower(s.last_error), lower($7)) > 0) AND ($8::bigint IS NULL OR s.seq > $8)`;

/**
 * The messages a filter matches, each with its state, as `s`: $1-$8 as {@link FILTERS}, $10
 * the queue (queue form only). Needs a CTE `t` holding the time states are judged at.
 * Shared by the listing and the actions (message-actions.ts), so both select the same rows.
 */
export function matchingSql(schema: string, queue: boolean): string {
  const s = quoteSchema(schema);
  const from = queue
    ? `SELECT ${QUEUE_COLUMNS} FROM ${s}.queue_messages m, t WHERE m.queue = $10`
    : `SELECT ${OUTBOX_COLUMNS} FROM ${s}.outbox m, t`;
  return `SELECT * FROM (${from}) s WHERE ${FILTERS}`;
}

function listSql(schema: string, queue: boolean): string {
  return `WITH t AS (SELECT coalesce($1::timestamptz, now()) AS now)
    SELECT * FROM (${matchingSql(schema, queue)}) s ORDER BY s.seq LIMIT $9`;
}

/** A row of {@link matchingSql}. */
export interface Row {
  seq: string; queue: string | null; id: string; topic: string; key: string | null; group_key: string | null; priority: number;
  attempts: number; last_error: string | null; run_at: Date; expires_at: Date | null; created_at: Date; locked_by: string | null;
  locked_until: Date | null; check_at: Date | null; checks: number; state: MessageState;
}

/** The summary of a row of {@link matchingSql}. */
export function summary(r: Row): MessageSummary {
  return {
    id: r.id, queue: r.queue, topic: r.topic, key: r.key, group: r.group_key, priority: r.priority, state: r.state,
    attempts: r.attempts, lastError: r.last_error, runAt: r.run_at, expiresAt: r.expires_at, createdAt: r.created_at,
    lockedBy: r.locked_by, lockedUntil: r.locked_until, checkAt: r.check_at, checks: r.checks,
  };
}

/** Checks a filter before any SQL: every problem at once, as `INVALID_OPTIONS`. */
export function filterProblems(f: MessageFilter): string[] {
  const problems: string[] = [];
  if (typeof f !== 'object' || f === null) return ['the filter must be an object'];
  if (f.state !== undefined && !MESSAGE_STATES.includes(f.state)) problems.push(`state must be one of ${MESSAGE_STATES.join(', ')}`);
  if (f.state !== undefined && f.queue !== undefined && f.state === 'prepared') problems.push('state prepared is only in the outbox (omit queue)');
  if (f.state !== undefined && f.queue === undefined && f.state === 'in_flight') problems.push('state in_flight is only in queues (give a queue)');
  if (f.key !== undefined && !isMessageLabel(f.key)) problems.push('key must be 1-255 characters');
  if (f.group !== undefined && !isMessageLabel(f.group)) problems.push('group must be 1-255 characters');
  if (f.id !== undefined && !(typeof f.id === 'string' && UUID.test(f.id))) problems.push('id must be a UUID');
  if (f.errorContains !== undefined && !(typeof f.errorContains === 'string' && f.errorContains.length >= 1 && f.errorContains.length <= 200 && !f.errorContains.includes('\u0000'))) {
    problems.push('errorContains must be 1-200 characters');
  }
  if (f.after !== undefined && !(typeof f.after === 'string' && /^\d{1,19}$/.test(f.after))) problems.push('after must be a cursor returned as next');
  if (f.limit !== undefined && !(Number.isInteger(f.limit) && f.limit >= 1 && f.limit <= MAX_MESSAGE_PAGE_SIZE)) {
    problems.push(`limit must be an integer from 1 to ${MAX_MESSAGE_PAGE_SIZE}`);
  }
  // Years 1 to 9999: a date outside PostgreSQL's timestamp range would abort the caller's transaction.
  if (f.now !== undefined && !(f.now instanceof Date && f.now.getTime() >= -62_135_596_800_000 && f.now.getTime() <= 253_402_300_799_999)) {
    problems.push('now must be a valid Date from year 1 to 9999');
  }
  return problems;
}

/**
 * Lists the messages of a queue (or of the outbox) oldest first, a page at a time, with
 * why each waits: its state, attempts, last error, next run time and lease holder.
 * Pages follow the messages' sequence (keyset pagination), so paging stays correct and
 * cheap however deep the backlog and while messages come and go.
 *
 * @throws {SagaboxError} `INVALID_OPTIONS` naming every bad filter, `INVALID_QUEUE_NAME`,
 *   `INVALID_TOPIC`, or `NOT_FOUND` for a queue that does not exist.
 * @example
 * let page = await listMessages(pool, { queue: 'billing', state: 'retrying' });
 * while (page.next) page = await listMessages(pool, { queue: 'billing', state: 'retrying', after: page.next });
 */
export async function listMessages(db: Executor, filter: MessageFilter = {}): Promise<MessagePage> {
  const problems = filterProblems(filter);
  if (problems.length > 0) throw new SagaboxError('INVALID_OPTIONS', `invalid message filter: ${problems.join('; ')}`, { details: { problems } });
  const queue = filter.queue === undefined ? undefined : validateQueueName(filter.queue);
  const topic = filter.topic === undefined ? null : validateTopic(filter.topic);
  const schema = filter.schema ?? DEFAULT_SCHEMA;
  const run = toRunQuery(db);
  if (queue !== undefined) {
    const known = await run<{ n: number }>(`SELECT count(*)::int AS n FROM ${quoteSchema(schema)}.queues WHERE name = $1`, [queue]);
    if (known[0]!.n === 0) throw new SagaboxError('NOT_FOUND', `unknown queue: ${queue}`, { details: { queue } });
  }
  const limit = filter.limit ?? DEFAULT_MESSAGE_PAGE_SIZE;
  const values: unknown[] = [
    filter.now ?? null, filter.state ?? null, topic, filter.key ?? null, filter.group ?? null, filter.id ?? null,
    filter.errorContains ?? null, filter.after ?? null, limit + 1,
  ];
  if (queue !== undefined) values.push(queue);
  const rows = await run<Row>(listSql(schema, queue !== undefined), values);
  const more = rows.length > limit;
  const page = more ? rows.slice(0, limit) : rows;
  return { messages: page.map(summary), next: more ? String(page.at(-1)!.seq) : null };
}

/**
 * One message whole, wherever it is: its copy in the outbox and in each queue (payload
 * and headers included), its dead letters, its half-message decisions, and the
 * consumers that handled it. Null when the id is nowhere.
 *
 * Payloads can hold personal data: expose this only to those allowed to see them.
 * @throws {SagaboxError} `INVALID_OPTIONS` when `id` is not a UUID.
 * @example const message = await getMessage(pool, '0195f5c4-7c1e-7b6a-9e2f-1a2b3c4d5e6f');
 */
export async function getMessage(db: Executor, id: string, options: { schema?: string; now?: Date } = {}): Promise<MessageDetail | null> {
  if (!(typeof id === 'string' && UUID.test(id))) throw new SagaboxError('INVALID_OPTIONS', `message id must be a UUID, got ${JSON.stringify(id)}`);
  const schema = options.schema ?? DEFAULT_SCHEMA;
  const s = quoteSchema(schema);
  const run = toRunQuery(db);
  const copies = await run<Row & { payload: unknown; headers: Record<string, string> }>(
    `WITH t AS (SELECT coalesce($1::timestamptz, now()) AS now)
     SELECT ${OUTBOX_COLUMNS}, m.payload, m.headers FROM ${s}.outbox m, t WHERE m.id = $2
     UNION ALL
     SELECT ${QUEUE_COLUMNS}, m.payload, m.headers FROM ${s}.queue_messages m, t WHERE m.id = $2
     ORDER BY queue NULLS FIRST`,
    [options.now ?? null, id],
  );
  const dead = await run<{ dead_id: string }>(`SELECT dead_id FROM ${s}.dead_letters WHERE id = $1 ORDER BY dead_id DESC LIMIT 100`, [id]);
  const deadLetters = dead.length ? await listDeadLetters(db, { schema, deadIds: dead.map((d) => String(d.dead_id)) }) : [];
  const decisions = await halfMessageHistory(db, id, { schema });
  // The inbox is keyed by (consumer, message id) and may be large: look the id up under
  // each queue's name (a worker's default consumer) through that key, never by a scan.
  const handled = await run<{ consumer: string; processed_at: Date }>(
    `SELECT i.consumer, i.processed_at FROM ${s}.queues q JOIN ${s}.inbox i ON i.consumer = q.name AND i.message_id = $1
     ORDER BY i.processed_at`,
    [id],
  );
  if (copies.length === 0 && deadLetters.length === 0 && decisions.length === 0 && handled.length === 0) return null;
  return {
    id,
    copies: copies.map((r) => ({ ...summary(r), payload: r.payload, headers: r.headers })),
    deadLetters,
    decisions,
    handledBy: handled.map((h) => ({ consumer: h.consumer, processedAt: h.processed_at })),
  };
}
