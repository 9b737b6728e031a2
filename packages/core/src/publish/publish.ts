import { encodeMessage, resolveMaxPayloadBytes, type EncodedMessage, type OutboxMessage } from './envelope.js';
import { toRunCount, toRunQuery, type Executor } from '../shared/executor.js';
import { DEFAULT_SCHEMA, validateSchemaName } from '../shared/schema-name.js';
import { assertNoProblems, checkInt } from '../shared/retry-policy.js';
import { outboxChannel, queueChannel } from '../shared/channels.js';
import { idSlot, publishSql, queuedShape, statementShape } from './publish-sql.js';
import type { TopicRegistry } from './define-topics.js';
import { startPublishSpans } from './publish-spans.js';
import { NotifyThrottle } from './notify-throttle.js';

/**
 * Default NOTIFY throttle, in milliseconds: a process sends at most one wake-up
 * NOTIFY per schema in this window. See {@link PublishOptions.notifyThrottleMs}.
 */
export const DEFAULT_NOTIFY_THROTTLE_MS = 2;

/** Options of {@link publish}. */
export interface PublishOptions {
  /** sagabox schema. Default `'sagabox'`. */
  schema?: string;
  /** Largest serialised payload accepted, in bytes. Default {@link DEFAULT_MAX_PAYLOAD_BYTES} (1 MiB). */
  maxPayloadBytes?: number;
  /**
   * Wake the relay with a NOTIFY (sent by Postgres when your transaction commits).
   * `true` (default) sends at most one per `notifyThrottleMs` per process (a window for
   * the outbox, and one for each topic with a direct route); `'always'` sends one every
   * time; `false` never, leaving the relay to its polling.
   */
  notify?: boolean | 'always';
  /**
   * Throttle window for wake-up NOTIFYs, in milliseconds. Default
   * {@link DEFAULT_NOTIFY_THROTTLE_MS}. A NOTIFY makes the committing transaction take a
   * database-wide lock at commit, which serialises concurrent committers; sending one
   * per window instead of one per message keeps publish cheap under many writers,
   * while a relay that has just been woken keeps draining the backlog anyway. While
   * publishes come less than 1 ms apart the window is five times longer; the first
   * publish after a pause uses this one.
   */
  notifyThrottleMs?: number;
  /**
   * Run the INSERT as a named prepared statement on a `pg` client (parsed and planned
   * once per connection; about 1.5x the publish rate here). Default true. Set false
   * behind PgBouncer in transaction mode older than 1.21 (or without
   * `max_prepared_statements`), which cannot route named statements.
   */
  preparedStatements?: boolean;
  /** Typed topic contracts: payloads are validated against their schema before insert. */
  topics?: TopicRegistry;
}

/** What {@link publish} did: the ids it wrote. */
export interface PublishResult {
  /** Ids of all messages given, in order (generated ones included). */
  ids: string[];
  /**
   * Ids this call wrote. Every outbox message is written (a repeated id is removed at
   * delivery); a message on a direct route whose id is still in that queue is not
   * written again, so it is missing here.
   */
  inserted: string[];
}

/** {@link PublishOptions} checked and completed with defaults. */
export interface ResolvedPublishOptions {
  schema: string;
  maxPayloadBytes: number;
  notify: boolean | 'always';
  notifyThrottleMs: number;
  preparedStatements: boolean;
  topics: TopicRegistry | undefined;
}

/** Largest `notifyThrottleMs` accepted, in milliseconds. */
export const MAX_NOTIFY_THROTTLE_MS = 60_000;

const resolved = new WeakMap<object, ResolvedPublishOptions>();

/**
 * Checks publish options, reporting every problem at once (an options object is
 * checked once and remembered, so a caller reusing one pays nothing per publish).
 * @throws {SagaboxError} `INVALID_SCHEMA_NAME`; `INVALID_OPTIONS` for the others.
 */
export function resolvePublishOptions(options: PublishOptions | undefined): ResolvedPublishOptions {
  if (options === undefined) options = EMPTY_OPTIONS;
  if (typeof options !== 'object' || options === null) assertNoProblems('publish', ['options must be an object']);
  const known = resolved.get(options);
  if (known) return known;
  // A bad schema name keeps its own code (INVALID_SCHEMA_NAME), as everywhere else.
  const schema = validateSchemaName(options.schema ?? DEFAULT_SCHEMA);
  const problems: string[] = [];
  const maxPayloadBytes = resolveMaxPayloadBytes(options.maxPayloadBytes, problems);
  const notify = options.notify ?? true;
  if (notify !== true && notify !== false && notify !== 'always') problems.push("notify must be true, false or 'always'");
  checkInt(problems, 'notifyThrottleMs', options.notifyThrottleMs, 0, MAX_NOTIFY_THROTTLE_MS);
  const preparedStatements = options.preparedStatements ?? true;
  if (typeof preparedStatements !== 'boolean') problems.push('preparedStatements must be a boolean');
  if (options.topics !== undefined && typeof options.topics?.validate !== 'function') problems.push('topics must come from defineTopics');
  assertNoProblems('publish', problems);
  const r: ResolvedPublishOptions = {
    schema,
    maxPayloadBytes,
    notify,
    notifyThrottleMs: options.notifyThrottleMs ?? DEFAULT_NOTIFY_THROTTLE_MS,
    preparedStatements,
    topics: options.topics,
  };
  // Options objects are usually built once and reused; a frozen copy cannot change behind the cache.
  if (Object.isFrozen(options) || options === EMPTY_OPTIONS) resolved.set(options, r);
  return r;
}

const EMPTY_OPTIONS: PublishOptions = Object.freeze({});

const notifyThrottle = new NotifyThrottle();

/**
 * Topics (per schema) last seen going to a queue through a direct route: their next
 * publish skips the outbox-only attempt. Only a hint for which statement to try
 * first; the routes themselves are always read inside the caller's transaction.
 */
const routedTopics = new Set<string>();
const MAX_ROUTED_TOPICS = 10_000;

function rememberRouting(schema: string, topic: string, rows: readonly { queued: boolean }[]): void {
  const entry = `${schema}\u0000${topic}`;
  if (rows.some((r) => r.queued)) {
    if (routedTopics.size < MAX_ROUTED_TOPICS) routedTopics.add(entry);
  } else if (rows.length > 0) routedTopics.delete(entry);
}

function shouldNotify(key: string, options: ResolvedPublishOptions): boolean {
  const mode = options.notify;
  if (mode === false) return false;
  if (mode === 'always') return true;
  return notifyThrottle.take(key, performance.now(), options.notifyThrottleMs);
}

/**
 * Writes messages to the outbox through `db`, so they commit or roll back with the
 * caller's own writes. Give it your transaction: a kysely `Transaction` or a `pg`
 * client between BEGIN and COMMIT. Nothing is delivered before your commit, and
 * nothing is ever delivered if you roll back.
 *
 * A message whose topic matches a direct route ({@link addDirectRoute}) is written
 * straight into that route's queue instead, in the same transaction, and skips the
 * relay: same guarantees, one hop.
 *
 * Publishing an id again is harmless, so a producer that does not know whether its
 * commit went through can retry with the same id: delivery is idempotent by id. A
 * queue keeps one row per id (a repeat that arrives while the first is queued is
 * dropped, and on a direct route it is not even written), and the consumers' inbox
 * skips an id it has handled. The outbox itself does not look for repeats: that
 * would cost every publish a unique-index probe (see the outbox in migrations/0001_baseline.sql).
 *
 * Bad input throws a {@link SagaboxError} before any SQL runs, so the caller's
 * transaction stays usable: `INVALID_OPTIONS`, `INVALID_TOPIC`, `INVALID_MESSAGE`
 * (id, key, group, priority, times), `INVALID_PAYLOAD` (see {@link encodePayload}),
 * `PAYLOAD_TOO_LARGE`, `INVALID_HEADERS`, `VALIDATION_FAILED`. docs/errors.md lists them.
 *
 * @example
 * await db.transaction().execute(async (trx) => {
 *   const order = await trx.insertInto('orders').values(row).returning('id').executeTakeFirstOrThrow();
 *   await publish(trx, { topic: 'orders.created', key: order.id, payload: { orderId: order.id } });
 * });
 */
export async function publish(
  db: Executor,
  messages: OutboxMessage | readonly OutboxMessage[],
  publishOptions?: PublishOptions,
): Promise<PublishResult> {
  const options = resolvePublishOptions(publishOptions);
  const schema = options.schema;
  const list = Array.isArray(messages) ? (messages as readonly OutboxMessage[]) : [messages as OutboxMessage];
  const now = Date.now();
  const encoded = list.map((m) => encodeMessage(m, options.maxPayloadBytes, now));
  if (options.topics) {
    for (const m of list) await options.topics.validate(m.topic, m.payload);
  }
  const ids = encoded.map((m) => m.id);
  if (encoded.length === 0) return { ids, inserted: [] };
  const spans = startPublishSpans(list, encoded);
  try {
    const result = await insert(db, encoded, ids, schema, options);
    spans.end();
    return result;
  } catch (err) {
    spans.end(err);
    throw err;
  }
}

/** The statements of {@link publish}, once its messages are checked and encoded. */
async function insert(db: Executor, encoded: EncodedMessage[], ids: string[], schema: string, options: ResolvedPublishOptions): Promise<PublishResult> {
  const sql = publishSql(schema);
  const one = encoded.length === 1;
  const routedTopic = one ? `${schema}\u0000${encoded[0]!.topic}` : undefined;
  const routed = routedTopic !== undefined && routedTopics.has(routedTopic);
  const notify = shouldNotify(routed ? routedTopic : schema, options);
  const prepare = options.preparedStatements;
  if (one && !routed) {
    // Most topics have no direct route: try the outbox-only statement first.
    const m = encoded[0]!;
    const values: unknown[] = [m.id, m.topic, m.key, m.payload, m.headers, m.availableAt, m.expiresAt, m.priority, m.group];
    if (notify) values.push(outboxChannel(schema));
    const statement = sql.insertOutbox[idSlot(m.id)]![statementShape(m.key !== null, notify)]!;
    if ((await toRunCount(db)(statement, values, prepare)) > 0) return { ids, inserted: ids };
  }
  if (routed) {
    const m = encoded[0]!;
    const values = [m.id, m.topic, m.key, m.payload, m.headers, m.availableAt, m.expiresAt, m.priority, m.group, notify, queueChannel(schema)];
    if ((await toRunCount(db)(sql.routeQueued[idSlot(m.id)]![queuedShape(m.key !== null, m.priority !== 0, m.group !== null)]!, values, prepare)) > 0) return { ids, inserted: ids };
    // Its routes were removed, or every queue had the id: the routing statement below
    // sends it to the outbox in the one case and writes nothing in the other.
  }
  // One message binds scalars, several bind one array per column (unnest).
  const column = (pick: (m: (typeof encoded)[number]) => unknown): unknown => (one ? pick(encoded[0]!) : encoded.map(pick));
  const values: unknown[] = [
    column((m) => m.id),
    column((m) => m.topic),
    column((m) => m.key),
    column((m) => m.payload),
    column((m) => m.headers),
    column((m) => m.availableAt),
    column((m) => m.expiresAt),
    column((m) => m.priority),
    column((m) => m.group),
    notify,
    outboxChannel(schema),
    queueChannel(schema),
  ];
  const rows = await toRunQuery(db)<{ id: string; queued: boolean }>(one ? sql.routeOne : sql.routeMany, values, prepare);
  if (one) rememberRouting(schema, encoded[0]!.topic, rows);
  // A message routed to several queues comes back once per queue.
  const fresh = new Set(rows.map((r) => r.id));
  return { ids, inserted: ids.filter((id) => fresh.has(id)) };
}
