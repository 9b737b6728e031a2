import { SagaboxError } from '../shared/errors.js';
import { toRunQuery, type Executor } from '../shared/executor.js';
import { queueChannel } from '../shared/channels.js';
import { DEFAULT_SCHEMA, quoteSchema, validateSchemaName } from '../shared/schema-name.js';
import { validateQueueName } from '../publish/topic-name.js';
import type { AdminOptions } from './admin.js';

/** The outcome of {@link pauseQueue} or {@link resumeQueue}. */
export interface QueuePauseResult {
  /** The queue paused or resumed. */
  queue: string;
  /** When the queue was paused (still paused after `pauseQueue`); null once resumed. */
  pausedAt: Date | null;
  /** False when the queue already was in the state asked for: nothing changed. */
  changed: boolean;
}

/**
 * Pauses a queue: from the next claim on, no worker in any process takes a message of
 * it; messages already being handled finish. Deliveries (relay, direct routes) keep
 * arriving and wait, so nothing is lost; `queueStats` shows `pausedAt`.
 *
 * @throws {SagaboxError} `INVALID_QUEUE_NAME`, or `NOT_FOUND` for a queue that does not exist.
 * @example await pauseQueue(pool, 'emails'); // a faulty mail provider: stop sending, keep buffering
 */
export async function pauseQueue(db: Executor, queue: string, options: AdminOptions = {}): Promise<QueuePauseResult> {
  const name = validateQueueName(queue);
  const s = quoteSchema(options.schema ?? DEFAULT_SCHEMA);
  const rows = await toRunQuery(db)<{ paused_at: Date; changed: boolean }>(
    `WITH before AS (SELECT paused_at FROM ${s}.queues WHERE name = $1 FOR UPDATE)
     UPDATE ${s}.queues q SET paused_at = coalesce(q.paused_at, now()) FROM before WHERE q.name = $1
     RETURNING q.paused_at, before.paused_at IS NULL AS changed`,
    [name],
  );
  if (rows.length === 0) throw new SagaboxError('NOT_FOUND', `unknown queue: ${name}`, { details: { queue: name } });
  return { queue: name, pausedAt: rows[0]!.paused_at, changed: rows[0]!.changed };
}

/**
 * Resumes a paused queue and wakes its workers (a NOTIFY on the queue channel), which
 * claim what waited, in the order they would have.
 *
 * @throws {SagaboxError} `INVALID_QUEUE_NAME`, or `NOT_FOUND` for a queue that does not exist.
 * @example await resumeQueue(pool, 'emails');
 */
export async function resumeQueue(db: Executor, queue: string, options: AdminOptions = {}): Promise<QueuePauseResult> {
  const name = validateQueueName(queue);
  const schema = validateSchemaName(options.schema ?? DEFAULT_SCHEMA);
  const s = quoteSchema(schema);
  const rows = await toRunQuery(db)<{ changed: boolean }>(
    `WITH before AS (SELECT paused_at FROM ${s}.queues WHERE name = $1 FOR UPDATE),
     resumed AS (UPDATE ${s}.queues q SET paused_at = NULL FROM before WHERE q.name = $1 RETURNING before.paused_at IS NOT NULL AS changed)
     SELECT changed, pg_notify($2, $1) IS NULL AS woke FROM resumed`,
    [name, queueChannel(schema)],
  );
  if (rows.length === 0) throw new SagaboxError('NOT_FOUND', `unknown queue: ${name}`, { details: { queue: name } });
  return { queue: name, pausedAt: null, changed: rows[0]!.changed };
}
