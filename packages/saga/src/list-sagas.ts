import { SagaboxError, type Executor } from '@sagabox/core';
import { toRunQuery, validateSchemaName } from '@sagabox/core/extension';
import { checkSagaId } from './saga-id.js';
import { sagaSql, type SagaRowData, type SagaStatus } from './saga-sql.js';
import { sagaWait, type SagaLastFailure, type SagaWaitingOn } from './saga-wait.js';

export type { SagaLastFailure, SagaWaitingOn } from './saga-wait.js';

const STATUSES: readonly SagaStatus[] = ['running', 'compensating', 'completed', 'compensated', 'failed'];
/** Default and largest `limit` of {@link listSagas}. */
export const DEFAULT_LIST_SAGAS_LIMIT = 100;
const MAX_LIST_SAGAS_LIMIT = 10_000;

/** One saga instance as the inspection API shows it. */
export interface SagaSummary {
  /** The saga's id. */
  id: string;
  /** The saga type's name. */
  type: string;
  /** The definition version the saga was started with. */
  version: number;
  /** The saga's status. */
  status: SagaStatus;
  /** Index of the step in flight (or being compensated); the step count once completed. */
  currentStep: number;
  /** The saga's current state, as stored (JSON). */
  state: unknown;
  /** Bumped by every transition. */
  revision: number;
  /** When the step in flight times out, if it has a timeout. */
  deadline: Date | null;
  /** Why the saga failed or is compensating. */
  error: string | null;
  /** When the saga was started. */
  createdAt: Date;
  /** When the saga last changed. */
  updatedAt: Date;
}

/** One event of a saga's step history. */
export interface SagaHistoryEvent {
  /** Orders the saga's events (increasing, not necessarily contiguous). */
  seq: number;
  /** Step name, or `$saga` for events of the saga as a whole. */
  step: string;
  /** `started`, `command_sent`, `completed`, `failed`, `timed_out`, `compensation_sent`, `compensated`, `reply_ignored`, ... */
  event: string;
  /** The event's details (reason, reply, error), as stored. */
  detail: unknown;
  /** When the event was recorded. */
  at: Date;
}

/** A saga with its full step history, what it waits on, and its last failure. */
export interface SagaDetails extends SagaSummary {
  /** The saga's events, oldest first. */
  history: SagaHistoryEvent[];
  /** The step command (or compensation) a running or compensating saga waits on; `null` otherwise. */
  waitingOn: SagaWaitingOn | null;
  /** The most recent failed, timed out or failed-to-compensate step, in any status; `null` when none. */
  lastFailure: SagaLastFailure | null;
}

/** Options of {@link getSaga}. */
export interface GetSagaOptions {
  /** sagabox's schema (default `sagabox`). */
  schema?: string;
  /** The time `waitingOn.waitedMs` and `overdueMs` are measured at. Default: now. */
  now?: Date;
}

/** Options of {@link listSagas}. */
export interface ListSagasOptions {
  /** Only sagas in this status. */
  status?: SagaStatus;
  /** Saga type (definition name). */
  type?: string;
  /** Most rows returned, newest update first. Default {@link DEFAULT_LIST_SAGAS_LIMIT}. */
  limit?: number;
  /** sagabox's schema (default `sagabox`). */
  schema?: string;
}

function toSummary(r: SagaRowData): SagaSummary {
  return {
    id: r.id,
    type: r.saga_type,
    version: r.saga_version,
    status: r.status,
    currentStep: r.current_step,
    state: r.state,
    revision: r.revision,
    deadline: r.deadline,
    error: r.error,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/**
 * Lists sagas, most recently changed first, filtered by status and type.
 * @example
 * const stuck = await listSagas(pool, { status: 'failed', limit: 20 });
 */
export async function listSagas(db: Executor, options: ListSagasOptions = {}): Promise<SagaSummary[]> {
  const problems: string[] = [];
  if (options.status !== undefined && !STATUSES.includes(options.status)) problems.push(`status must be one of ${STATUSES.join(', ')}`);
  const limit = options.limit ?? DEFAULT_LIST_SAGAS_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_SAGAS_LIMIT) problems.push(`limit must be an integer from 1 to ${MAX_LIST_SAGAS_LIMIT}`);
  if (problems.length > 0) throw new SagaboxError('INVALID_OPTIONS', `invalid listSagas options: ${problems.join('; ')}`, { details: { problems } });
  const sql = sagaSql(validateSchemaName(options.schema ?? 'sagabox'));
  const rows = await toRunQuery(db)<SagaRowData>(sql.listSagas, [options.status ?? null, options.type ?? null, limit]);
  return rows.map(toSummary);
}

/**
 * One saga's row, its full step history, what it waits on and its last failure, or
 * `undefined` when there is no such saga.
 * @throws {SagaboxError} `INVALID_OPTIONS` when `sagaId` is not a UUID or `now` is not a valid Date.
 * @example
 * const saga = await getSaga(pool, orderId);
 * if (saga?.waitingOn) logger.info({ step: saga.waitingOn.step, waitedMs: saga.waitingOn.waitedMs }, 'saga waits');
 * for (const e of saga?.history ?? []) logger.info({ step: e.step, event: e.event }, 'saga history');
 */
export async function getSaga(db: Executor, sagaId: string, options: GetSagaOptions = {}): Promise<SagaDetails | undefined> {
  const id = checkSagaId(sagaId);
  if (options.now !== undefined && !(options.now instanceof Date && Number.isFinite(options.now.getTime()))) {
    throw new SagaboxError('INVALID_OPTIONS', 'invalid getSaga options: now must be a valid Date', { details: { problems: ['now must be a valid Date'] } });
  }
  const sql = sagaSql(validateSchemaName(options.schema ?? 'sagabox'));
  const run = toRunQuery(db);
  type HistoryColumns = { seqs: string[] | null; steps: string[] | null; events: string[] | null; details: unknown[] | null; ats: Date[] | null };
  const [row] = await run<SagaRowData & HistoryColumns>(sql.selectSagaWithHistory, [id]);
  if (!row) return undefined;
  const summary = toSummary(row);
  const events = (row.seqs ?? []).map((seq, i) => ({ seq: Number(seq), step: row.steps![i]!, event: row.events![i]!, detail: row.details![i], at: row.ats![i]! }));
  return { ...summary, history: events, ...sagaWait(summary, events, options.now ?? new Date()) };
}
