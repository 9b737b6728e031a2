import { randomUUID } from 'node:crypto';
import { publish, SagaboxError, silentLogger, type Executor } from '@sagabox/core';
import { toRunQuery, validateSchemaName } from '@sagabox/core/extension';
import type { SagaDefinition } from './define-saga.js';
import { sagaSql } from './saga-sql.js';
import { resolveSagaTopics, type SagaTopicOptions } from './saga-topics.js';
import { advance, SAGA_EVENT_STEP, SagaTransition, writeHistory, type TransitionEnv } from './saga-transition.js';

/** Options of {@link startSaga}. */
export interface StartSagaOptions extends SagaTopicOptions {
  /**
   * The saga's id (a UUID). Choose it yourself (say, derived from the order id) to make
   * the start idempotent: starting the same id again does nothing. Default: a random UUID.
   */
  id?: string;
}

/** What {@link startSaga} did. */
export interface StartSagaResult {
  id: string;
  /** False when a saga with this id already existed (nothing was written). */
  started: boolean;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Starts a saga inside the caller's transaction: the saga row, its first history events
 * and its first command (through the outbox) commit or roll back with the caller's own
 * writes, so "create the order and start its saga" is atomic. Give it your kysely
 * `Transaction` or a `pg` client inside BEGIN/COMMIT, on the orchestrator's database.
 *
 * Starting an id that exists already is a no-op (`started: false`); the same id with
 * another saga type throws `SAGA_CONFLICT`.
 *
 * @example
 * await db.transaction().execute(async (trx) => {
 *   await trx.insertInto('orders').values({ id: orderId, sku }).execute();
 *   await startSaga(trx, orderSaga, { orderId, sku }, { id: orderId });
 * });
 */
export async function startSaga<I, S>(
  db: Executor,
  definition: SagaDefinition<I, S>,
  input: I,
  options: StartSagaOptions = {},
): Promise<StartSagaResult> {
  const topics = resolveSagaTopics({ ...options, schema: validateSchemaName(options.schema ?? 'sagabox') });
  const id = (options.id ?? randomUUID()).toLowerCase();
  if (!UUID.test(id)) throw new SagaboxError('INVALID_OPTIONS', `saga id ${JSON.stringify(options.id)} is not a UUID`);
  const run = toRunQuery(db);
  const sql = sagaSql(topics.schema);
  const t = new SagaTransition(id, definition, {
    status: 'running',
    currentStep: 0,
    state: definition.initialState(input),
    stepToken: null,
    deadline: null,
    error: null,
  });
  t.record(SAGA_EVENT_STEP, 'started', { type: definition.name, version: definition.version });
  const env: TransitionEnv = { run, db, topics, logger: silentLogger };
  await advance(env, t, 0);
  const inserted = await run(sql.insertSaga, [
    id,
    definition.name,
    definition.version,
    t.currentStep,
    JSON.stringify(t.state),
    t.stepToken,
    t.deadline,
  ]);
  if (inserted.length === 0) {
    const [existing] = await run<{ saga_type: string; saga_version: number }>(sql.selectType, [id]);
    if (existing && existing.saga_type !== definition.name) {
      throw new SagaboxError('SAGA_CONFLICT', `saga ${id} exists already as a ${JSON.stringify(existing.saga_type)} saga`, {
        details: { sagaId: id, type: existing.saga_type, wanted: definition.name },
      });
    }
    return { id, started: false };
  }
  await writeHistory(env, t);
  await publish(db, t.messages, { schema: topics.schema });
  return { id, started: true };
}
