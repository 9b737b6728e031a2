import { SagaboxError } from '../shared/errors.js';
import { toRunQuery, type Executor } from '../shared/executor.js';
import { outboxChannel, queueChannel } from '../shared/channels.js';
import { DEFAULT_SCHEMA, quoteSchema, validateSchemaName } from '../shared/schema-name.js';
import { isStorableText } from '../publish/message-label.js';
import { validateQueueName, validateTopic } from '../publish/topic-name.js';
import { filterProblems, matchingSql, type MessageFilter, type MessageState } from './messages.js';

/** Largest `limit` of the message actions: messages changed by one call. */
export const MAX_MESSAGE_ACTION_LIMIT = 10_000;
/** Default `limit` of the message actions. */
export const DEFAULT_MESSAGE_ACTION_LIMIT = 1_000;
/** Longest `reason` (and `by`) of {@link cancelMessages}, in characters. */
export const MAX_ACTION_REASON_LENGTH = 2_000;

/**
 * The messages an action applies to: the filter of `listMessages` without its paging.
 * `queue` omitted means the outbox. Give `id` to act on one message.
 */
export interface MessageActionFilter extends Omit<MessageFilter, 'after' | 'limit'> {
  /**
   * Most matching messages looked at in one call, oldest first: 1 to
   * {@link MAX_MESSAGE_ACTION_LIMIT}. Default {@link DEFAULT_MESSAGE_ACTION_LIMIT}.
   * When more match, the result says `more` and a second call takes the next ones.
   */
  limit?: number;
}

/** Options of every message action. */
export interface MessageActionOptions {
  /** Count and list what the action would change, and change nothing. Default false. */
  dryRun?: boolean;
}

/** Options of {@link cancelMessages}. */
export interface CancelMessagesOptions extends MessageActionOptions {
  /** Why: kept as the dead letter's error (`cancelled by <by>: <reason>`), 1-2,000 characters. */
  reason: string;
  /** Who cancels (an operator's name), 1-2,000 characters. Default `'operator'`. */
  by?: string;
}

/** What a message action did (or, in a dry run, would do). */
export interface MessageActionResult {
  /** Which action ran. */
  action: 'retry' | 'cancel' | 'delete';
  /** True for a preview: nothing was changed. */
  dryRun: boolean;
  /** Messages changed (dry run: that would be changed). */
  affected: number;
  /** Their ids, oldest first. */
  ids: string[];
  /**
   * Matching messages left alone because they are being handled: leased by a worker
   * under a live lease, or (outbox) being moved by a relay right now.
   */
  inFlight: number;
  /** Their ids. */
  inFlightIds: string[];
  /** Matching messages the action does not apply to: a retry of a ready message, a prepared half message. */
  unchanged: number;
  /** True when more messages matched than `limit`: call again for the next ones. */
  more: boolean;
}

type Action = MessageActionResult['action'];

/** The states each action changes; `in_flight` never. */
const APPLIES_TO: Record<Action, readonly MessageState[]> = {
  retry: ['retrying', 'scheduled'],
  cancel: ['ready', 'retrying', 'scheduled'],
  delete: ['ready', 'retrying', 'scheduled'],
};

const ACTION_NAMES: Record<Action, string> = { retry: 'retryMessages', cancel: 'cancelMessages', delete: 'deleteMessages' };

/**
 * The action's statement. Parameters: $1-$8 the filter (see `matchingSql`), $9 limit + 1,
 * $10 the queue (null: the outbox), $11 the states the action applies to, $12 the limit,
 * $13 the dead letter's error (cancel). Returns every matching row (up to limit + 1) with
 * `done`: changed by this statement.
 *
 * The rows changed are locked FOR UPDATE SKIP LOCKED and must be out of any live lease
 * by the database clock: a worker's claim commits its lease, so a leased row is not
 * locked and only `locked_until` tells it is being handled; a relay moving an outbox row
 * holds its lock, which SKIP LOCKED steps around. Either way the row is counted in flight.
 */
function actionSql(schema: string, queue: boolean, action: Action, dryRun: boolean): string {
  const s = quoteSchema(schema);
  const head = `WITH t AS (SELECT coalesce($1::timestamptz, now()) AS now),
    s AS (SELECT * FROM (${matchingSql(schema, queue)}) s ORDER BY s.seq LIMIT $9),
    within AS (SELECT * FROM s ORDER BY seq LIMIT $12)`;
  const tail = (done: string): string => `
    SELECT s.id, s.state, ${done} AS done, $10::text IS NULL AS outbox, $12::int AS lim,
           $11::text[] IS NULL AS no_states, $13::text IS NULL AS no_error
    FROM s ORDER BY s.seq`;
  if (dryRun) return `${head}${tail('false')}`;
  const target = queue
    ? `target AS (
        SELECT m.queue, m.id FROM ${s}.queue_messages m
        WHERE m.queue = $10 AND m.id IN (SELECT id FROM within WHERE state = ANY($11::text[]))
          AND (m.locked_until IS NULL OR m.locked_until < now())
        FOR UPDATE SKIP LOCKED
      )`
    : `target AS (
        SELECT m.seq, m.part FROM ${s}.outbox m
        WHERE m.seq IN (SELECT seq FROM within WHERE state = ANY($11::text[])) AND m.state = 'ready'
        FOR UPDATE SKIP LOCKED
      )`;
  const match = queue ? `m.queue = target.queue AND m.id = target.id` : `m.seq = target.seq AND m.part = target.part`;
  const table = queue ? `${s}.queue_messages` : `${s}.outbox`;
  let change: string;
  if (action === 'retry') {
    change = queue
      ? `done AS (UPDATE ${table} m SET run_at = now(), scheduled = false FROM target WHERE ${match} RETURNING m.id)`
      : `done AS (UPDATE ${table} m SET available_at = now() FROM target WHERE ${match} RETURNING m.id)`;
  } else if (action === 'delete') {
    change = `done AS (DELETE FROM ${table} m USING target WHERE ${match} RETURNING m.id)`;
  } else {
    // A cancelled message keeps everything replayDeadLetters needs to put it back.
    change = `moved AS (DELETE FROM ${table} m USING target WHERE ${match} RETURNING m.*),
      done AS (
        INSERT INTO ${s}.dead_letters (source, queue, id, topic, key, group_key, payload, headers, priority, reason, error, attempts, created_at)
        SELECT ${queue ? `'queue', queue` : `'outbox', NULL`}, id, topic, key, group_key, payload, headers, priority, 'cancelled', $13::text, attempts, created_at
        FROM moved
        RETURNING id
      )`;
  }
  return `${head}, ${target}, ${change}${tail('s.id IN (SELECT id FROM done)')}`;
}

function checkText(problems: string[], name: string, value: unknown, required: boolean): void {
  if (value === undefined && !required) return;
  if (typeof value !== 'string' || value.length < 1 || value.length > MAX_ACTION_REASON_LENGTH || !isStorableText(value)) {
    problems.push(`${name} must be a string of 1 to ${MAX_ACTION_REASON_LENGTH} characters`);
  }
}

async function act(db: Executor, action: Action, filter: MessageActionFilter, options: MessageActionOptions, error: string | null): Promise<MessageActionResult> {
  const what = ACTION_NAMES[action];
  // Checked whole before any SQL, so a bad call is a typed error and never an aborted transaction.
  const problems = typeof filter === 'object' && filter !== null && 'after' in filter && filter.after !== undefined
    ? ['after is not an action filter (actions take every match, `limit` at a time)']
    : [];
  const { limit, ...rest } = typeof filter === 'object' && filter !== null ? filter : ({} as MessageActionFilter);
  problems.push(...filterProblems(typeof filter === 'object' && filter !== null ? (rest as MessageFilter) : (filter as MessageFilter)));
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= MAX_MESSAGE_ACTION_LIMIT)) {
    problems.push(`limit must be an integer from 1 to ${MAX_MESSAGE_ACTION_LIMIT}`);
  }
  if (rest.state === 'in_flight') problems.push('in_flight messages are being handled: no action takes them');
  if (rest.state === 'prepared') problems.push('prepared half messages are decided with decideHalfMessage, not this action');
  if (typeof options !== 'object' || options === null) problems.push('options must be an object');
  else if (options.dryRun !== undefined && typeof options.dryRun !== 'boolean') problems.push('dryRun must be a boolean');
  if (problems.length > 0) throw new SagaboxError('INVALID_OPTIONS', `${what}: ${problems.join('; ')}`, { details: { problems } });
  const schema = validateSchemaName(rest.schema ?? DEFAULT_SCHEMA);
  const queue = rest.queue === undefined ? null : validateQueueName(rest.queue);
  const topic = rest.topic === undefined ? null : validateTopic(rest.topic);
  const dryRun = options.dryRun ?? false;
  const lim = limit ?? DEFAULT_MESSAGE_ACTION_LIMIT;

  const run = toRunQuery(db);
  if (queue !== null) {
    const known = await run<{ n: number }>(`SELECT count(*)::int AS n FROM ${quoteSchema(schema)}.queues WHERE name = $1`, [queue]);
    if (known[0]!.n === 0) throw new SagaboxError('NOT_FOUND', `unknown queue: ${queue}`, { details: { queue } });
  }
  const rows = await run<{ id: string; state: MessageState; done: boolean }>(actionSql(schema, queue !== null, action, dryRun), [
    rest.now ?? null, rest.state ?? null, topic, rest.key ?? null, rest.group ?? null, rest.id ?? null, rest.errorContains ?? null, null,
    lim + 1, queue, APPLIES_TO[action], lim, error,
  ]);
  const within = rows.slice(0, lim);
  const applies = (r: { state: MessageState }): boolean => APPLIES_TO[action].includes(r.state);
  const changed = within.filter((r) => (dryRun ? applies(r) : r.done));
  const held = within.filter((r) => r.state === 'in_flight' || (!dryRun && applies(r) && !r.done));
  if (!dryRun && changed.length > 0 && action === 'retry') {
    // Wake the workers (or relays) now rather than at their next poll.
    await run(`SELECT pg_notify($1, $2)`, queue === null ? [outboxChannel(schema), ''] : [queueChannel(schema), queue]);
  }
  return {
    action,
    dryRun,
    affected: changed.length,
    ids: changed.map((r) => r.id),
    inFlight: held.length,
    inFlightIds: held.map((r) => r.id),
    unchanged: within.length - changed.length - held.length,
    more: rows.length > lim,
  };
}

/**
 * Makes waiting messages ready now: a queue's `retrying` and `scheduled` messages run at
 * once (their attempts are kept), the outbox's are delivered at once. A message a worker
 * holds under a live lease is left alone and counted in `inFlight`; one already ready is
 * `unchanged`. Runs in `db`'s transaction when given one.
 *
 * @throws {SagaboxError} `INVALID_OPTIONS` naming every bad filter value, `INVALID_QUEUE_NAME`,
 *   `INVALID_TOPIC`, `INVALID_SCHEMA_NAME` (all before any SQL), or `NOT_FOUND` for an unknown queue.
 * @example
 * const preview = await retryMessages(pool, { queue: 'mail', errorContains: 'SMTP 451' }, { dryRun: true });
 * if (preview.affected > 0) await retryMessages(pool, { queue: 'mail', errorContains: 'SMTP 451' });
 */
export function retryMessages(db: Executor, filter: MessageActionFilter, options: MessageActionOptions = {}): Promise<MessageActionResult> {
  return act(db, 'retry', filter, options, null);
}

/**
 * Cancels pending messages: each moves to the dead letters with reason `cancelled` and
 * the error `cancelled by <by>: <reason>`, so `replayDeadLetters` can put it back later.
 * Ready, retrying and scheduled messages of a queue (or of the outbox) are cancelled; a
 * message under a live lease is left alone (`inFlight`), a prepared half message too
 * (`unchanged`: decide it with `decideHalfMessage`).
 *
 * @throws {SagaboxError} as {@link retryMessages}; `INVALID_OPTIONS` for a missing or bad `reason` or `by`.
 * @example
 * await cancelMessages(pool, { queue: 'mail', id }, { reason: 'customer unsubscribed', by: 'alice' });
 */
export function cancelMessages(db: Executor, filter: MessageActionFilter, options: CancelMessagesOptions): Promise<MessageActionResult> {
  const problems: string[] = [];
  checkText(problems, 'reason', options?.reason, true);
  checkText(problems, 'by', options?.by, false);
  if (problems.length > 0) throw new SagaboxError('INVALID_OPTIONS', `cancelMessages: ${problems.join('; ')}`, { details: { problems } });
  return act(db, 'cancel', filter, options, `cancelled by ${options.by ?? 'operator'}: ${options.reason}`);
}

/**
 * Deletes pending messages for good: ready, retrying and scheduled messages of a queue
 * (or of the outbox). A message under a live lease is left alone (`inFlight`); a
 * prepared half message too (`unchanged`: roll it back with `decideHalfMessage`).
 * Prefer {@link cancelMessages} when the message may be wanted again.
 *
 * @throws {SagaboxError} as {@link retryMessages}.
 * @example
 * const preview = await deleteMessages(pool, { queue: 'mail', topic: 'mail.test' }, { dryRun: true });
 */
export function deleteMessages(db: Executor, filter: MessageActionFilter, options: MessageActionOptions = {}): Promise<MessageActionResult> {
  return act(db, 'delete', filter, options, null);
}
