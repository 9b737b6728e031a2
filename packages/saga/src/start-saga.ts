import { DEFAULT_MAX_PAYLOAD_BYTES, publish, SagaboxError, silentLogger, type Executor } from '@sagabox/core';
import { encodeMessage, encodePayload, toRunQuery, uuidv7, validateSchemaName } from '@sagabox/core/extension';
import { isSagaDefinition, type SagaDefinition } from './define-saga.js';
import { checkSagaId } from './saga-id.js';
import { sagaSql } from './saga-sql.js';
import { inSagaSpan } from './saga-span.js';
import { resolveSagaTopics, type SagaTopicOptions } from './saga-topics.js';
import { advance, SAGA_EVENT_STEP, SagaTransition, writeHistory, type TransitionEnv } from './saga-transition.js';

/** Options of {@link startSaga}. */
export interface StartSagaOptions extends SagaTopicOptions {
  /**
   * The saga's id (a UUID). Choose it yourself (say, derived from the order id) to make
   * the start idempotent: starting the same id again does nothing. Default: a new UUIDv7.
   * A UUIDv7 (time first) lands in its start day's partition, which retention drops
   * whole; any other UUID is kept in `sagas_other` and purged row by row.
   */
  id?: string;
}

/** What {@link startSaga} did. */
export interface StartSagaResult {
  /** The new saga's id. */
  id: string;
  /** False when a saga with this id already existed (nothing was written). */
  started: boolean;
}

/**
 * Starts a saga inside the caller's transaction: the saga row, its first history events
 * and its first command (through the outbox) commit or roll back with the caller's own
 * writes, so "create the order and start its saga" is atomic. Give it your kysely
 * `Transaction` or a `pg` client inside BEGIN/COMMIT, on the orchestrator's database.
 *
 * Starting an id that exists already is a no-op (`started: false`); the same id with
 * another saga type throws `SAGA_CONFLICT`.
 *
 * Everything is checked before anything is written, so a bad call leaves neither a
 * saga without its first command nor an aborted transaction: `INVALID_OPTIONS` for a
 * definition not made by `defineSaga`, a malformed id or schema; `INVALID_PAYLOAD` /
 * `PAYLOAD_TOO_LARGE` for a state (from `initialState(input)`) that cannot be stored
 * as JSON; the message errors of `publish` for a first command that cannot be sent.
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
  if (!isSagaDefinition(definition)) {
    throw new SagaboxError('INVALID_OPTIONS', 'startSaga needs a saga definition made by defineSaga');
  }
  if (typeof options !== 'object' || options === null) throw new SagaboxError('INVALID_OPTIONS', 'startSaga options must be an object');
  const topics = resolveSagaTopics({ ...options, schema: validateSchemaName(options.schema ?? 'sagabox') });
  const id = options.id === undefined ? uuidv7() : checkSagaId(options.id);
  const run = toRunQuery(db);
  const sql = sagaSql(topics.schema);
  const t = new SagaTransition(id, definition, {
    status: 'running',
    currentStep: 0,
    state: definition.initialState(input),
    stepToken: null,
    deadline: null,
    timeoutId: null,
    error: null,
  });
  t.record(SAGA_EVENT_STEP, 'started', { type: definition.name, version: definition.version });
  return inSagaSpan('start', t, async (): Promise<StartSagaResult> => {
    const env: TransitionEnv = { run, db, topics, logger: silentLogger };
    await advance(env, t, 0);
    // Checked here, not by the statements: a write that failed half-way would leave a
    // running saga without its command, or the caller's transaction aborted.
    const state = encodePayload(t.state, DEFAULT_MAX_PAYLOAD_BYTES);
    for (const m of t.messages) encodeMessage(m, DEFAULT_MAX_PAYLOAD_BYTES);
    const inserted = await run(sql.insertSaga, [
      id,
      definition.name,
      definition.version,
      t.currentStep,
      state,
      t.stepToken,
      t.deadline,
      t.timeoutId,
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
  });
}
