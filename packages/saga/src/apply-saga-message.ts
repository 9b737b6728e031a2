import type pg from 'pg';
import { Outcome, SagaboxError, type HandlerOutcome, type Logger, type Message } from '@sagabox/core';
import { toRunQuery } from '@sagabox/core/extension';
import type { SagaDefinition } from './define-saga.js';
import { sagaSql, type SagaRowData } from './saga-sql.js';
import { inSagaSpan } from './saga-span.js';
import { SAGA_HEADERS, type SagaTopics } from './saga-topics.js';
import {
  advance,
  commitTransition,
  compensateFrom,
  resumeCompensation,
  retryCompensation,
  SAGA_EVENT_STEP,
  SagaTransition,
  sendCommand,
  writeHistory,
  type ControlPayload,
  type TransitionEnv,
} from './saga-transition.js';

/** The orchestrator's view of its definitions: by type, then version. */
export type DefinitionIndex = ReadonlyMap<string, ReadonlyMap<number, SagaDefinition>>;

/** What {@link applySagaMessage} needs besides the message. */
export interface ApplyContext {
  client: pg.PoolClient;
  /** The orchestrator's queue (where its step timeouts wait). */
  queue: string;
  /**
   * Holds the worker's abort signal (handler timeout), handed to local steps. Read only
   * by them: the worker makes the signal when it is first read.
   */
  abortSource?: { readonly signal: AbortSignal };
  topics: SagaTopics;
  definitions: DefinitionIndex;
  logger: Logger;
  /** Wait before a message of an unknown saga type/version is tried again, in milliseconds. */
  unknownVersionRetryDelayMs: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function attemptOf(message: Message): number {
  const n = Number(message.headers[SAGA_HEADERS.attempt]);
  return Number.isInteger(n) && n >= 1 ? n : 1;
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/**
 * One saga transition for one message of the orchestrator's queue (a reply, a timeout,
 * a wake-up, a cancel or retry request), inside the worker's transaction. The saga row
 * is locked first; a message whose step token is not the saga's current one (late,
 * duplicate, after a timeout, for a finished saga) changes nothing but the history.
 * A saga of an unknown type or version is left untouched and the message retried later.
 */
export async function applySagaMessage(message: Message, ctx: ApplyContext): Promise<void | HandlerOutcome> {
  const sagaId = message.headers[SAGA_HEADERS.sagaId];
  const log = ctx.logger;
  const ids = { messageId: message.id, topic: message.topic, sagaId };
  if (typeof sagaId !== 'string' || !UUID.test(sagaId)) {
    log.warn(ids, 'message without a valid saga-id header; ignored');
    return;
  }
  const sql = sagaSql(ctx.topics.schema);
  const run = toRunQuery(ctx.client);
  const [row] = await run<SagaRowData>(sql.lockSaga, [sagaId], true);
  if (!row) {
    log.warn(ids, 'message for an unknown saga; ignored');
    return;
  }
  const definition = ctx.definitions.get(row.saga_type)?.get(row.saga_version);
  if (!definition) {
    const known = ctx.definitions.has(row.saga_type);
    const error = new SagaboxError(
      known ? 'UNKNOWN_SAGA_VERSION' : 'UNKNOWN_SAGA',
      known
        ? `saga ${sagaId} runs version ${row.saga_version} of ${JSON.stringify(row.saga_type)}, which this orchestrator does not have`
        : `saga ${sagaId} is of type ${JSON.stringify(row.saga_type)}, which this orchestrator does not have`,
      { details: { sagaId, type: row.saga_type, version: row.saga_version } },
    );
    log.error({ ...ids, code: error.code, type: row.saga_type, version: row.saga_version }, error.message);
    return Outcome.retry({ delayMs: ctx.unknownVersionRetryDelayMs, reason: `${error.code}: ${error.message}` });
  }
  const t = new SagaTransition(row.id, definition, {
    status: row.status,
    currentStep: row.current_step,
    state: row.state,
    stepToken: row.step_token,
    deadline: row.deadline,
    timeoutId: row.timeout_id,
    error: row.error,
  });
  const what = message.topic === ctx.topics.replyTopic ? 'reply' : String((message.payload as ControlPayload | null)?.kind ?? 'control');
  return inSagaSpan(what, t, async (): Promise<void> => {
    const env: TransitionEnv = {
      run,
      db: ctx.client,
      topics: ctx.topics,
      client: ctx.client,
      logger: log,
      causationId: message.id,
      queue: ctx.queue,
      ...(ctx.abortSource ? { abortSource: ctx.abortSource } : {}),
    };
    const token = message.headers[SAGA_HEADERS.stepToken];
    const current = token !== undefined && token === row.step_token;

    if (message.topic === ctx.topics.replyTopic) {
      if (!current) {
        log.info({ ...ids, status: row.status }, 'stale reply (late, duplicate, after a timeout or for a finished saga); ignored');
        t.record(message.headers[SAGA_HEADERS.step] ?? SAGA_EVENT_STEP, 'reply_ignored', { messageId: message.id, status: row.status });
        await writeHistory(env, t);
        return;
      }
      await applyReply(env, t, message);
    } else if (message.topic === ctx.topics.controlTopic) {
      const kind = (message.payload as ControlPayload | null)?.kind;
      if (kind === 'cancel') await applyCancel(env, t, message);
      else if (kind === 'retry') await applyRetry(env, t);
      else if (!current) {
        log.debug({ ...ids, kind }, 'control message for a step no longer in flight; ignored');
        return;
      } else if (kind === 'timeout') await applyTimeout(env, t, message);
      else if (kind === 'wake' && row.status === 'running') await advance(env, t, row.current_step);
      else {
        log.warn({ ...ids, kind }, 'unknown control message; ignored');
        return;
      }
    } else {
      log.warn(ids, 'message of a topic the orchestrator does not handle; ignored');
      return;
    }
    if (t.events.length === 0 && t.messages.length === 0) return;
    await commitTransition(env, t, row.revision, row.timeout_id);
    log.debug({ ...ids, status: t.status, step: t.currentStep }, 'saga transition');
    if (t.status === 'completed' || t.status === 'compensated') log.info({ sagaId, status: t.status }, 'saga finished');
  }, message.headers);
}

async function applyReply(env: TransitionEnv, t: SagaTransition, message: Message): Promise<void> {
  const index = t.currentStep;
  const step = t.definition.steps[index];
  if (step?.kind !== 'remote') return;
  const attempt = attemptOf(message);
  if (t.status === 'running') {
    let result;
    try {
      result = step.onReply(message.payload, t.state);
    } catch (err) {
      // A reply we cannot read says nothing about whether the step happened: compensate it too.
      t.record(step.name, 'reply_not_understood', { messageId: message.id, error: errorText(err) });
      t.error = `reply to step ${JSON.stringify(step.name)} not understood: ${errorText(err)}`;
      await compensateFrom(env, t, index);
      return;
    }
    if (result.ok) {
      t.state = result.state;
      t.record(step.name, 'completed', { attempt });
      await advance(env, t, index + 1);
    } else {
      t.record(step.name, 'failed', { attempt, reason: result.reason });
      t.error = result.reason;
      await compensateFrom(env, t, index - 1);
    }
    return;
  }
  if (t.status === 'compensating') {
    let result;
    try {
      result = step.onCompensationReply?.(message.payload, t.state) ?? { ok: true as const };
    } catch (err) {
      result = { ok: false as const, reason: `reply not understood: ${errorText(err)}` };
    }
    if (result.ok) {
      t.record(step.name, 'compensated', { attempt });
      await compensateFrom(env, t, index - 1);
    } else {
      retryCompensation(env, t, index, attempt, result.reason);
    }
  }
}

async function applyTimeout(env: TransitionEnv, t: SagaTransition, message: Message): Promise<void> {
  const index = t.currentStep;
  const step = t.definition.steps[index];
  if (step?.kind !== 'remote') return;
  const attempt = attemptOf(message);
  if (t.status === 'running') {
    const maxAttempts = step.retry?.maxAttempts ?? 1;
    if (attempt < maxAttempts) {
      t.record(step.name, 'timed_out', { attempt, retrying: true });
      sendCommand(env, t, index, attempt + 1, step.retry?.delayMs ?? 0);
      return;
    }
    t.record(step.name, 'timed_out', { attempt, retrying: false });
    t.error = `step ${JSON.stringify(step.name)} timed out after ${attempt} attempt(s)`;
    // The command may still be handled: compensate this step too (its compensation is
    // keyed like the command, so the participant handles it after the command).
    await compensateFrom(env, t, index);
  } else if (t.status === 'compensating') {
    retryCompensation(env, t, index, attempt, 'timed out');
  }
}

async function applyCancel(env: TransitionEnv, t: SagaTransition, message: Message): Promise<void> {
  if (t.status !== 'running') {
    env.logger.info({ sagaId: t.id, status: t.status }, 'cancel request for a saga not running; ignored');
    t.record(SAGA_EVENT_STEP, 'cancel_ignored', { status: t.status });
    return;
  }
  const reason = (message.payload as ControlPayload).reason ?? 'cancelled';
  t.record(SAGA_EVENT_STEP, 'cancelled', { reason });
  t.error = `cancelled: ${reason}`;
  // A remote step in flight may have happened; a pending local step has not.
  const inFlight = t.definition.steps[t.currentStep]?.kind === 'remote';
  await compensateFrom(env, t, inFlight ? t.currentStep : t.currentStep - 1);
}

async function applyRetry(env: TransitionEnv, t: SagaTransition): Promise<void> {
  if (t.status === 'completed' || t.status === 'compensated') {
    env.logger.info({ sagaId: t.id, status: t.status }, 'retry request for a finished saga; ignored');
    t.record(SAGA_EVENT_STEP, 'retry_ignored', { status: t.status });
    return;
  }
  t.record(SAGA_EVENT_STEP, 'retried', { status: t.status, step: t.stepName(t.currentStep) });
  if (t.status === 'running') {
    // A remote step's command again, with a fresh token (a late reply to the earlier
    // send is then ignored); a local step is run again by advance.
    if (t.definition.steps[t.currentStep]?.kind === 'remote') sendCommand(env, t, t.currentStep, 1);
    else await advance(env, t, t.currentStep);
    return;
  }
  t.status = 'compensating';
  await resumeCompensation(env, t);
}
