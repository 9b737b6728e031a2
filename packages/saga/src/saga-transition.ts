import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { HEADERS, publish, SagaboxError, type Executor, type Logger, type OutboxMessage } from '@sagabox/core';
import { kyselyOnClient, uuidv7, type RunQuery } from '@sagabox/core/extension';
import { DEFAULT_COMPENSATION_RETRY, type LocalStepContext, type RemoteStep, type SagaCommand, type SagaDefinition } from './define-saga.js';
import { sagaSql, type SagaStatus } from './saga-sql.js';
import { SAGA_HEADERS, type SagaTopics } from './saga-topics.js';

/** Step name used in the history for events of the saga as a whole. */
export const SAGA_EVENT_STEP = '$saga';

/** Where a transition runs: the statements, the outbox, and (in the orchestrator) the connection for local steps. */
export interface TransitionEnv {
  run: RunQuery;
  db: Executor;
  topics: SagaTopics;
  /** Present in the orchestrator only: local steps need a connection. */
  client?: pg.PoolClient;
  logger: Logger;
  /** Id of the message that caused this transition, for `causation-id`. */
  causationId?: string;
  /**
   * Holds the worker's abort signal for this transition (see `handlerTimeoutMs`), handed
   * to local steps. Read only by them: the worker makes the signal when it is first read.
   */
  abortSource?: { readonly signal: AbortSignal };
  /** The orchestrator's queue, where a superseded step's timeout waits (absent in `startSaga`: nothing to supersede). */
  queue?: string;
}

/** The body of the orchestrator's control messages. */
export interface ControlPayload {
  kind: 'timeout' | 'wake' | 'cancel' | 'retry';
  reason?: string;
}

interface HistoryEvent {
  step: string;
  event: string;
  detail: unknown;
}

/** One saga instance being changed by one transaction. Collects the row's new values, history and messages. */
export class SagaTransition {
  status: SagaStatus;
  currentStep: number;
  state: unknown;
  stepToken: string | null;
  deadline: Date | null;
  /** Message id of the pending step's timeout, or null. */
  timeoutId: string | null;
  error: string | null;
  readonly events: HistoryEvent[] = [];
  readonly messages: OutboxMessage[] = [];

  constructor(
    readonly id: string,
    readonly definition: SagaDefinition,
    row: {
      status: SagaStatus; currentStep: number; state: unknown; stepToken: string | null; deadline: Date | null; timeoutId: string | null; error: string | null;
    },
  ) {
    this.status = row.status;
    this.currentStep = row.currentStep;
    this.state = row.state;
    this.stepToken = row.stepToken;
    this.deadline = row.deadline;
    this.timeoutId = row.timeoutId;
    this.error = row.error;
  }

  /** Appends a history event. */
  record(step: string, event: string, detail: unknown = null): void {
    this.events.push({ step, event, detail });
  }

  /** Name of step `index`, or the saga-level name when out of range. */
  stepName(index: number): string {
    return this.definition.steps[index]?.name ?? SAGA_EVENT_STEP;
  }
}

function remoteStep(t: SagaTransition, index: number): RemoteStep<unknown, unknown> {
  const step = t.definition.steps[index];
  if (step?.kind !== 'remote') {
    throw new SagaboxError('SAGA_CONFLICT', `saga ${t.id}: step ${index} is not a remote step`, { details: { sagaId: t.id, step: index } });
  }
  return step;
}

function sagaHeaders(t: SagaTransition, env: TransitionEnv, token: string, step: string, phase: string, attempt: number): Record<string, string> {
  const headers: Record<string, string> = {
    [SAGA_HEADERS.sagaId]: t.id,
    [SAGA_HEADERS.stepToken]: token,
    [SAGA_HEADERS.step]: step,
    [SAGA_HEADERS.phase]: phase,
    [SAGA_HEADERS.attempt]: String(attempt),
    [HEADERS.correlationId]: t.id,
  };
  if (env.causationId) headers[HEADERS.causationId] = env.causationId;
  return headers;
}

/** Queues one send of a command or compensation, with its timeout, and makes its token the current one. */
function send(
  env: TransitionEnv,
  t: SagaTransition,
  index: number,
  phase: 'command' | 'compensation',
  command: SagaCommand,
  attempt: number,
  delayMs: number,
  timeoutMs: number | undefined,
): void {
  const step = t.stepName(index);
  const token = randomUUID();
  const headers = sagaHeaders(t, env, token, step, phase, attempt);
  t.messages.push({
    topic: command.topic,
    // Keyed by saga id: a participant handles a saga's command before its compensation.
    key: command.key ?? t.id,
    payload: command.payload,
    headers: { ...command.headers, ...headers, [SAGA_HEADERS.replyTo]: env.topics.replyTopic },
    ...(delayMs > 0 ? { delayMs } : {}),
  });
  t.deadline = null;
  t.timeoutId = null;
  if (timeoutMs !== undefined) {
    // Timeouts carry no key: a delayed keyed message would hold back the saga's replies
    // behind it in the orchestrator's queue (head-of-key rule). Its id is kept on the
    // saga row, so the transition that supersedes this send deletes it.
    const payload: ControlPayload = { kind: 'timeout' };
    const id = uuidv7();
    t.messages.push({ id, topic: env.topics.controlTopic, payload, headers, delayMs: delayMs + timeoutMs });
    t.deadline = new Date(Date.now() + delayMs + timeoutMs);
    t.timeoutId = id;
  }
  t.status = phase === 'command' ? 'running' : 'compensating';
  t.currentStep = index;
  t.stepToken = token;
  t.record(step, phase === 'command' ? 'command_sent' : 'compensation_sent', { topic: command.topic, attempt, token });
}

/** Sends step `index`'s command (attempt `attempt`). */
export function sendCommand(env: TransitionEnv, t: SagaTransition, index: number, attempt: number, delayMs = 0): void {
  const step = remoteStep(t, index);
  send(env, t, index, 'command', step.command(t.state), attempt, delayMs, step.timeoutMs);
}

/** Sends a control message to the orchestrator itself, carrying a fresh step token. */
function wake(env: TransitionEnv, t: SagaTransition, index: number): void {
  const token = randomUUID();
  const payload: ControlPayload = { kind: 'wake' };
  t.messages.push({ topic: env.topics.controlTopic, payload, headers: sagaHeaders(t, env, token, t.stepName(index), 'command', 1) });
  t.currentStep = index;
  t.stepToken = token;
  t.deadline = null;
  t.timeoutId = null;
}

function localContext(env: TransitionEnv, t: SagaTransition): LocalStepContext {
  const client = env.client!;
  let db: LocalStepContext['db'] | undefined;
  return {
    client,
    sagaId: t.id,
    logger: env.logger,
    signal: env.abortSource?.signal ?? new AbortController().signal,
    get db() {
      return (db ??= kyselyOnClient(client));
    },
  };
}

/**
 * Runs the saga forward from step `from`: local steps run here (in the orchestrator),
 * the first remote step's command is sent; past the last step the saga is completed.
 * Outside the orchestrator (in `startSaga`) a local step is left to the orchestrator by a wake-up.
 */
export async function advance(env: TransitionEnv, t: SagaTransition, from: number): Promise<void> {
  const steps = t.definition.steps;
  for (let i = from; i < steps.length; i++) {
    const step = steps[i]!;
    if (step.kind === 'remote') {
      sendCommand(env, t, i, 1);
      return;
    }
    if (!env.client) {
      t.status = 'running';
      wake(env, t, i);
      return;
    }
    const result = await step.run(t.state, localContext(env, t));
    if (result.ok) {
      t.state = result.state;
      t.record(step.name, 'completed');
    } else {
      t.record(step.name, 'failed', { reason: result.reason });
      t.error = result.reason;
      await compensateFrom(env, t, i - 1);
      return;
    }
  }
  t.status = 'completed';
  t.currentStep = steps.length;
  t.stepToken = null;
  t.deadline = null;
  t.timeoutId = null;
  t.record(SAGA_EVENT_STEP, 'completed');
}

/**
 * Compensates steps `from`, `from - 1`, ... 0, in that order: local compensations run
 * here, the first remote compensation is sent; when none is left the saga is compensated.
 */
export async function compensateFrom(env: TransitionEnv, t: SagaTransition, from: number): Promise<void> {
  const steps = t.definition.steps;
  for (let j = Math.min(from, steps.length - 1); j >= 0; j--) {
    const step = steps[j]!;
    if (step.kind === 'remote') {
      const command = step.compensate?.(t.state);
      if (command === undefined) continue;
      send(env, t, j, 'compensation', command, 1, 0, step.compensationTimeoutMs ?? step.timeoutMs);
      return;
    }
    if (!step.compensate) continue;
    if (!env.client) throw new SagaboxError('SAGA_CONFLICT', 'local compensations run in the orchestrator only', { details: { sagaId: t.id } });
    await step.compensate(t.state, localContext(env, t));
    t.record(step.name, 'compensated');
  }
  t.status = 'compensated';
  t.currentStep = 0;
  t.stepToken = null;
  t.deadline = null;
  t.timeoutId = null;
  t.record(SAGA_EVENT_STEP, 'compensated');
}

/** Sends step `index`'s compensation again after a failure or timeout, or gives up: status `failed`. */
export function retryCompensation(env: TransitionEnv, t: SagaTransition, index: number, attempt: number, reason: string): void {
  const step = remoteStep(t, index);
  const policy = { ...DEFAULT_COMPENSATION_RETRY, ...step.compensationRetry };
  const command = step.compensate?.(t.state);
  if (attempt < policy.maxAttempts && command !== undefined) {
    t.record(step.name, 'compensation_failed', { attempt, reason, retrying: true });
    send(env, t, index, 'compensation', command, attempt + 1, policy.delayMs, step.compensationTimeoutMs ?? step.timeoutMs);
    return;
  }
  t.record(step.name, 'compensation_failed', { attempt, reason, retrying: false });
  t.status = 'failed';
  t.stepToken = null;
  t.deadline = null;
  t.timeoutId = null;
  t.error = `COMPENSATION_FAILED: compensation of step ${JSON.stringify(step.name)} failed after ${attempt} attempt(s): ${reason}`;
  t.record(SAGA_EVENT_STEP, 'failed', { code: 'COMPENSATION_FAILED', step: step.name, reason });
  env.logger.error({ sagaId: t.id, step: step.name, attempt, code: 'COMPENSATION_FAILED' }, 'saga compensation keeps failing; saga failed (retrySaga resumes it)');
}

/** Re-sends a failed saga's compensation from its current step, with fresh attempts. */
export async function resumeCompensation(env: TransitionEnv, t: SagaTransition): Promise<void> {
  const index = t.currentStep;
  const step = t.definition.steps[index];
  const command = step?.kind === 'remote' ? step.compensate?.(t.state) : undefined;
  if (step?.kind === 'remote' && command !== undefined) {
    send(env, t, index, 'compensation', command, 1, 0, step.compensationTimeoutMs ?? step.timeoutMs);
  } else {
    await compensateFrom(env, t, index - 1);
  }
}

/**
 * Whether the transition supersedes the timeout `previous` (a reply came, the saga moved
 * on or finished) and must delete it, so it does not wait until it fires for nothing.
 * Not the timeout being handled (the worker acks it), nor outside the orchestrator.
 */
function supersededTimeout(env: TransitionEnv, t: SagaTransition, previous: string | null): string | null {
  return previous === null || previous === t.timeoutId || previous === env.causationId || env.queue === undefined ? null : previous;
}

/**
 * Writes the transition: the guarded row update with the history, the outbox messages,
 * and deletes the timeout it superseded (`previousTimeoutId`, the row's before). The
 * update deletes it from the queue; when it was not there, it is still in the outbox
 * (the relay has not moved it) or being moved: the outbox delete waits for a relay
 * moving it (it holds the row lock), then the queue is tried once more.
 */
export async function commitTransition(env: TransitionEnv, t: SagaTransition, revision: number, previousTimeoutId: string | null = null): Promise<void> {
  const sql = sagaSql(env.topics.schema);
  const drop = supersededTimeout(env, t, previousTimeoutId);
  const updated = await env.run<{ dropped: number }>(
    sql.updateSaga,
    [
      t.id,
      t.status,
      t.currentStep,
      JSON.stringify(t.state),
      t.stepToken,
      t.deadline,
      t.error,
      revision,
      t.timeoutId,
      env.queue ?? null,
      drop,
      ...historyColumns(t),
    ],
    true,
  );
  if (updated.length !== 1) {
    throw new SagaboxError('SAGA_CONFLICT', `saga ${t.id} changed under a transition (revision ${revision} is stale)`, {
      details: { sagaId: t.id, revision },
    });
  }
  if (t.messages.length > 0) await publish(env.db, t.messages, { schema: env.topics.schema });
  if (drop !== null && updated[0]!.dropped === 0 && (await env.run(sql.dropOutboxTimeout, [drop, env.topics.controlTopic])).length === 0) {
    await env.run(sql.dropQueuedTimeout, [env.queue, drop]);
  }
}

/** The transition's history events as the three arrays insertHistory and updateSaga take. */
function historyColumns(t: SagaTransition): [string[], string[], (string | null)[]] {
  return [
    t.events.map((e) => e.step),
    t.events.map((e) => e.event),
    t.events.map((e) => (e.detail === null || e.detail === undefined ? null : JSON.stringify(e.detail))),
  ];
}

/** Appends the transition's history events. */
export async function writeHistory(env: TransitionEnv, t: SagaTransition): Promise<void> {
  if (t.events.length === 0) return;
  await env.run(sagaSql(env.topics.schema).insertHistory, [t.id, ...historyColumns(t)], true);
}
