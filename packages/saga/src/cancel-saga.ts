import { publish, SagaboxError, type Executor } from '@sagabox/core';
import { isStorableText, toRunQuery, validateSchemaName } from '@sagabox/core/extension';
import { checkSagaId } from './saga-id.js';
import { sagaSql, type SagaRowData, type SagaStatus } from './saga-sql.js';
import { resolveSagaTopics, SAGA_HEADERS, type SagaTopicOptions } from './saga-topics.js';
import type { ControlPayload } from './saga-transition.js';

/** Options of {@link cancelSaga}. */
export interface CancelSagaOptions extends SagaTopicOptions {
  /** Why; kept in the saga's history and error. Default `'cancelled'`. */
  reason?: string;
}

async function request(
  db: Executor,
  sagaId: string,
  allowed: readonly SagaStatus[],
  payload: ControlPayload,
  options: SagaTopicOptions,
): Promise<void> {
  const id = checkSagaId(sagaId);
  const topics = resolveSagaTopics({ ...options, schema: validateSchemaName(options.schema ?? 'sagabox') });
  const [row] = await toRunQuery(db)<SagaRowData>(sagaSql(topics.schema).selectSaga, [id]);
  if (!row) throw new SagaboxError('NOT_FOUND', `no saga ${id}`, { details: { sagaId: id } });
  if (!allowed.includes(row.status)) {
    throw new SagaboxError('SAGA_CONFLICT', `saga ${id} is ${row.status}; ${payload.kind} needs it ${allowed.join(' or ')}`, {
      details: { sagaId: id, status: row.status },
    });
  }
  await publish(db, { topic: topics.controlTopic, payload, headers: { [SAGA_HEADERS.sagaId]: id } }, { schema: topics.schema });
}

/**
 * Asks the orchestrator to cancel a running saga: it compensates the completed steps
 * (and the step in flight, which may have happened) in reverse order, and the saga ends
 * `compensated`. The request is a message through the outbox, so it commits with your
 * transaction and is applied as an ordinary transition; a saga that finished in the
 * meantime is left as it is.
 * @throws {SagaboxError} `INVALID_OPTIONS` for an id that is not a UUID, `NOT_FOUND`, or `SAGA_CONFLICT` when the saga is not running.
 * @example
 * await cancelSaga(pool, orderId, { reason: 'customer cancelled' });
 */
export async function cancelSaga(db: Executor, id: string, options: CancelSagaOptions = {}): Promise<void> {
  const reason = options.reason;
  if (reason !== undefined && (typeof reason !== 'string' || reason.length > 2_000 || !isStorableText(reason))) {
    throw new SagaboxError('INVALID_OPTIONS', 'cancelSaga reason must be a string of at most 2,000 characters without NUL or unpaired surrogates');
  }
  await request(db, id, ['running'], { kind: 'cancel', reason: options.reason ?? 'cancelled' }, options);
}

/**
 * Asks the orchestrator to retry the step a saga waits on, now and with fresh attempts:
 * - `running`: the pending step's command is sent again (a pending local step is run
 *   again), for a participant that lost it or a timeout set too long;
 * - `compensating`: the pending compensation is sent again;
 * - `failed` (its compensation kept failing): the compensation it stopped at is sent
 *   again, then the rest.
 *
 * The re-sent command gets a fresh step token, so a late reply to the earlier send is
 * ignored; participants see the command twice and must be idempotent, as for any retry.
 * The request goes through the outbox, so it commits with your transaction; a saga that
 * finished in the meantime is left as it is.
 * @throws {SagaboxError} `INVALID_OPTIONS` for an id that is not a UUID, `NOT_FOUND`, or `SAGA_CONFLICT` when the saga has finished (completed or compensated).
 * @example
 * for (const s of await listSagas(pool, { status: 'failed' })) await retrySaga(pool, s.id);
 */
export async function retrySaga(db: Executor, id: string, options: SagaTopicOptions = {}): Promise<void> {
  await request(db, id, ['running', 'compensating', 'failed'], { kind: 'retry' }, options);
}
