import type { TopicRegistry } from '../publish/define-topics.js';
import { encodeMessage, resolveMaxPayloadBytes, type OutboxMessage } from '../publish/envelope.js';
import { SagaboxError } from '../shared/errors.js';
import { toRunQuery, type Executor, type RunQuery } from '../shared/executor.js';
import type { Logger } from '../shared/logger.js';
import { assertNoProblems, checkInt } from '../shared/retry-policy.js';
import { DEFAULT_SCHEMA } from '../shared/schema-name.js';
import { outboxChannel } from '../shared/channels.js';
import { halfMessageSql, type HalfMessageSql } from './half-message-sql.js';
import { describeValue } from '../shared/describe-value.js';

/** Default delay before the relay first asks the checker about a half message, in milliseconds (1 minute). */
export const DEFAULT_CHECK_AFTER_MS = 60_000;
/** Largest `checkAfterMs` accepted, in milliseconds (30 days). */
export const MAX_CHECK_AFTER_MS = 30 * 24 * 3_600_000;
/** Longest `note` recorded with a decision, in characters. */
export const MAX_DECISION_NOTE_LENGTH = 2_000;

/** Options of {@link prepare}. */
export interface PrepareOptions {
  /**
   * How long the producer has to commit or roll back before the relay starts asking
   * the topic's checker, in milliseconds. Default {@link DEFAULT_CHECK_AFTER_MS} (60,000).
   * Make it comfortably longer than the producer's action normally takes.
   */
  checkAfterMs?: number;
  /** sagabox schema. Default `'sagabox'`. */
  schema?: string;
  /** Largest serialised payload accepted, in bytes. Default 1 MiB. */
  maxPayloadBytes?: number;
  /** Typed topic contracts: the payload is validated against its schema before insert. */
  topics?: TopicRegistry;
  /** Free text recorded with the `prepared` decision (at most 2,000 characters). */
  note?: string;
}

/** What {@link prepare} returns: the handle the producer commits or rolls back. */
export interface PreparedHalfMessage {
  /** The message id (generated as a UUIDv7 unless the message had one). */
  id: string;
}

/** Options of {@link commitHalfMessage} and {@link rollbackHalfMessage}. */
export interface HalfMessageDecisionOptions {
  /** sagabox schema. Default `'sagabox'`. */
  schema?: string;
  /** Wake the relay with a NOTIFY sent when the decision commits. Default true. */
  notify?: boolean;
  /** Free text recorded with the decision (e.g. the external reference), at most 2,000 characters. */
  note?: string;
  /** Logs the decision (`info`, with the message id). Default: silent. */
  logger?: Logger;
}

/** What a producer's decision did. */
export interface HalfMessageDecisionResult {
  /** The half message decided. */
  id: string;
  /** The decision that stands (the first one taken). */
  decision: 'commit' | 'rollback';
  /**
   * True when the same decision had already been taken (by the producer or by the
   * relay's check-back) and this call changed nothing.
   */
  repeated: boolean;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function checkNote(problems: string[], note: unknown): void {
  if (note === undefined) return;
  if (typeof note !== 'string' || note.length > MAX_DECISION_NOTE_LENGTH || note.includes('\u0000')) {
    problems.push(`note must be a string of at most ${MAX_DECISION_NOTE_LENGTH} characters without NUL`);
  }
}

function checkId(id: unknown): string {
  if (typeof id !== 'string' || !UUID.test(id)) {
    throw new SagaboxError('INVALID_MESSAGE', `half message id ${describeValue(id)} is not a UUID`, { details: { id } });
  }
  return id.toLowerCase();
}

interface LookupRow {
  /** 'prepared' while a prepared row has the id; a ready row is not looked for (no index on its id). */
  state: 'prepared' | null;
  decided: 'commit' | 'rollback' | 'unresolved' | null;
  known: boolean;
}

async function lookup(run: RunQuery, sql: HalfMessageSql, id: string): Promise<LookupRow> {
  const [row] = await run<LookupRow>(sql.lookup, [id]);
  return row ?? { state: null, decided: null, known: false };
}

function alreadyDecided(id: string, decided: string, attempted: string): SagaboxError {
  return new SagaboxError(
    'HALF_MESSAGE_ALREADY_DECIDED',
    `half message ${id} was already decided (${decided}); ${attempted} refused, the first decision stands`,
    { details: { id, decision: decided, attempted } },
  );
}

function notFound(id: string, why: string): SagaboxError {
  return new SagaboxError('NOT_FOUND', `no half message ${id}: ${why}`, { details: { id } });
}

/**
 * Stores a half message: an outbox row in the `prepared` state, which the relay does
 * not deliver until it is committed. Use it when the action the message announces
 * cannot join a Postgres transaction (an HTTP call to a payment provider, a write to
 * another database): prepare, perform the action, then {@link commitHalfMessage} or
 * {@link rollbackHalfMessage}. If neither comes within `checkAfterMs`, the relay asks
 * the checker registered for the topic (`relay.onCheck(topic, checker)`).
 *
 * Runs through `db`, like {@link publish}: your transaction (kysely `Transaction`, `pg`
 * client inside BEGIN) or a pool (autocommit). The row takes its key's place in commit
 * order now, so a committed half message is delivered in its key's order, and later
 * messages of the same key wait behind it until it is committed or rolled back.
 *
 * The message is checked and stored as by `publish`: its `priority` and `group` are
 * kept with the prepared row, so once committed the relay enqueues it with both, and
 * the queue's flow limits (`setQueueLimits`) and priority order apply to it like to any
 * other message. A half message dead-lettered as unresolved keeps them too.
 *
 * Idempotent by id while prepared: preparing the same id again returns the same handle.
 * An id that was already committed, rolled back or dead-lettered is refused. Give a
 * half message an id of its own: one shared with a plain published message is a
 * repeat of it, and delivery keeps only one of the two.
 *
 * @throws {SagaboxError} `HALF_MESSAGE_ALREADY_DECIDED` for an id with a final decision;
 * the message errors of `publish` (`INVALID_TOPIC`, `INVALID_MESSAGE`, `INVALID_PAYLOAD`,
 * `PAYLOAD_TOO_LARGE`, ...); `INVALID_OPTIONS`.
 *
 * @example
 * const { id } = await prepare(pool, {
 *   topic: 'payments.captured', key: orderId, payload: { orderId, amount },
 *   group: merchantId, priority: 10,
 * }, { checkAfterMs: 30_000 });
 * await paymentProvider.capture({ orderId, amount, idempotencyKey: id });
 * await commitHalfMessage(pool, id);
 */
export async function prepare(db: Executor, message: OutboxMessage, options: PrepareOptions = {}): Promise<PreparedHalfMessage> {
  const problems: string[] = [];
  checkInt(problems, 'checkAfterMs', options.checkAfterMs, 0, MAX_CHECK_AFTER_MS);
  checkNote(problems, options.note);
  const maxPayloadBytes = resolveMaxPayloadBytes(options.maxPayloadBytes, problems);
  assertNoProblems('prepare', problems);
  const m = encodeMessage(message, maxPayloadBytes);
  if (options.topics) await options.topics.validate(message.topic, message.payload);
  const sql = halfMessageSql(options.schema ?? DEFAULT_SCHEMA);
  const run = toRunQuery(db);
  const values = [
    m.id, m.topic, m.key, m.payload, m.headers, m.availableAt, m.expiresAt, m.priority, m.group,
    options.checkAfterMs ?? DEFAULT_CHECK_AFTER_MS, options.note ?? null,
  ];
  const inserted = await run<{ id: string }>(sql.prepare, values);
  if (inserted.length > 0) return { id: m.id };
  const seen = await lookup(run, sql, m.id);
  if (seen.decided) throw alreadyDecided(m.id, seen.decided, 'prepare');
  if (seen.state === 'prepared') return { id: m.id };
  // The prepared row it met was decided and its decision purged in between: not a
  // state a retry can fix silently, so say so.
  throw new SagaboxError('HALF_MESSAGE_ALREADY_DECIDED', `half message ${m.id} was decided while it was being prepared again`, {
    details: { id: m.id, topic: m.topic, attempted: 'prepare' },
  });
}

async function decide(
  db: Executor,
  rawId: string,
  decision: 'commit' | 'rollback',
  options: HalfMessageDecisionOptions,
): Promise<HalfMessageDecisionResult> {
  const problems: string[] = [];
  checkNote(problems, options.note);
  if (options.notify !== undefined && typeof options.notify !== 'boolean') problems.push('notify must be a boolean');
  assertNoProblems(decision === 'commit' ? 'commitHalfMessage' : 'rollbackHalfMessage', problems);
  const id = checkId(rawId);
  const sql = halfMessageSql(options.schema ?? DEFAULT_SCHEMA);
  const run = toRunQuery(db);
  const notify = options.notify ?? true;
  const values = [id, options.note ?? null, 'producer', notify ? outboxChannel(options.schema ?? DEFAULT_SCHEMA) : null];
  // A second pass only when a prepare committed between our statement and the lookup.
  for (let pass = 0; pass < 2; pass++) {
    const changed = await run(sql[decision], values);
    if (changed.length > 0) {
      options.logger?.info({ messageId: id, decision, source: 'producer' }, 'half message decided');
      return { id, decision, repeated: false };
    }
    const seen = await lookup(run, sql, id);
    if (seen.decided === decision) return { id, decision, repeated: true };
    if (seen.decided) throw alreadyDecided(id, seen.decided, decision);
    if (seen.state === 'prepared') continue;
    throw notFound(id, 'it was never prepared (or its history was purged)');
  }
  throw notFound(id, 'it could not be decided; retry');
}

/**
 * Commits a half message: it becomes deliverable now, in its key's order. Idempotent:
 * committing again (or after the relay's check-back committed it, even once it has
 * been delivered) returns `{ repeated: true }`.
 *
 * Pass your transaction as `db` to commit the message together with your own writes,
 * or a pool to commit it on its own. If a relay is asking the checker about this very
 * message at that moment, the call waits for that check (it holds the row's lock).
 *
 * @throws {SagaboxError} `HALF_MESSAGE_ALREADY_DECIDED` when it was rolled back or
 * dead-lettered as unresolved (the first decision stands; `details.decision` says which);
 * `NOT_FOUND` for an id that was never prepared; `INVALID_MESSAGE` for a non-UUID id.
 *
 * @example
 * const receipt = await paymentProvider.capture({ amount, idempotencyKey: id });
 * await commitHalfMessage(pool, id, { note: receipt.id });
 */
export function commitHalfMessage(db: Executor, id: string, options: HalfMessageDecisionOptions = {}): Promise<HalfMessageDecisionResult> {
  return decide(db, id, 'commit', options);
}

/**
 * Rolls back a half message: it is removed from the outbox and never delivered.
 * Idempotent: rolling back again returns `{ repeated: true }`.
 *
 * @throws {SagaboxError} `HALF_MESSAGE_ALREADY_DECIDED` when it was committed or
 * dead-lettered as unresolved (the first decision stands); `NOT_FOUND` for an id that
 * was never prepared; `INVALID_MESSAGE` for a non-UUID id.
 *
 * @example
 * try {
 *   await paymentProvider.capture({ amount, idempotencyKey: id });
 * } catch (err) {
 *   if (isDeclined(err)) await rollbackHalfMessage(pool, id, { note: 'declined' });
 *   throw err;
 * }
 */
export function rollbackHalfMessage(db: Executor, id: string, options: HalfMessageDecisionOptions = {}): Promise<HalfMessageDecisionResult> {
  return decide(db, id, 'rollback', options);
}
