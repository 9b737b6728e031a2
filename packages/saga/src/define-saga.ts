import type { Kysely } from 'kysely';
import type pg from 'pg';
import { InvalidOptionsError, type Logger } from '@sagabox/core';

/**
 * What a step's reply (or a local step) decided: the step succeeded with a new state,
 * or it failed for a reason, which starts the compensation of the steps before it.
 * Build values with {@link StepResult.ok} and {@link StepResult.fail}.
 */
export type StepResult<S> = { readonly ok: true; readonly state: S } | { readonly ok: false; readonly reason: string };

/**
 * Constructors of {@link StepResult} values. They keep the literal `ok` type, which a
 * plain object literal returned from a ts-pattern handler would widen to `boolean`.
 * @example
 * onReply: (reply, state) =>
 *   match(reply)
 *     .with({ type: 'reserved' }, (r) => StepResult.ok({ ...state, reservationId: r.reservationId }))
 *     .with({ type: 'out_of_stock' }, () => StepResult.fail('out of stock'))
 *     .exhaustive(),
 */
export const StepResult = {
  /** The step succeeded; `state` is the saga's new state. */
  ok<S>(state: S): { readonly ok: true; readonly state: S } {
    return { ok: true, state };
  },
  /** The step failed (not retryable): the saga compensates the steps before it. */
  fail(reason: string): { readonly ok: false; readonly reason: string } {
    return { ok: false, reason };
  },
} as const;

/** What a compensation reply decided. */
export type CompensationResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** A command a step sends: published to the orchestrator's outbox and relayed to the participant. */
export interface SagaCommand {
  /** Topic the participant consumes, e.g. `inventory.reserve`. */
  topic: string;
  /** Any JSON value. */
  payload: unknown;
  /**
   * Ordering key. Default: the saga id, so a participant handles one saga's command and
   * its later compensation in that order, one at a time.
   */
  key?: string;
  /** Extra headers; the saga headers (`saga-id`, `reply-to`, `saga-step-token`, ...) are added. */
  headers?: Record<string, string>;
}

/** How often a command is sent before its step (or compensation) counts as failed. */
export interface StepRetry {
  /** Sends in all, the first included. Default 1 for commands, {@link DEFAULT_COMPENSATION_RETRY}'s 5 for compensations. */
  maxAttempts: number;
  /** Wait before sending again, in milliseconds. Default 0 for commands (the timeout already waited), 1,000 for compensations. */
  delayMs?: number;
}

/** Default retry of a compensation that fails or times out: 5 sends, 1 s apart. */
export const DEFAULT_COMPENSATION_RETRY: Required<StepRetry> = { maxAttempts: 5, delayMs: 1_000 };

/**
 * A step done by another service: the orchestrator sends `command(state)` and waits for
 * a reply, which `onReply` matches — exhaustively, with ts-pattern — into a
 * {@link StepResult}. `R` is the union of replies the participant can send.
 */
export interface RemoteStep<S, R = unknown> {
  /** Marks a step that sends a command to a participant. */
  readonly kind: 'remote';
  /** Unique within the saga; appears in headers, history and logs. */
  readonly name: string;
  /** The command to send, built from the current state. */
  readonly command: (state: S) => SagaCommand;
  /**
   * Turns the participant's reply into the step's result. Use
   * `match(reply)...exhaustive()`: with `R` a union, forgetting a reply type is a compile
   * error. A throw (a reply of a shape you did not expect at run time) is treated like a
   * timeout: the step may have happened, so it is compensated too.
   */
  readonly onReply: (reply: R, state: S) => StepResult<S>;
  /**
   * The command that undoes this step, or `undefined` when there is nothing to undo.
   * Participants must make it idempotent: it may be sent again after a failure or timeout,
   * and (after a timeout of this step) it may arrive for a command that had no effect.
   */
  readonly compensate?: (state: S) => SagaCommand | undefined;
  /** Whether a compensation reply means success. Default: any reply does. */
  readonly onCompensationReply?: (reply: unknown, state: S) => CompensationResult;
  /** How long to wait for the reply, in milliseconds. Default: no timeout. */
  readonly timeoutMs?: number;
  /** How long to wait for a compensation's reply, in milliseconds. Default `timeoutMs`. */
  readonly compensationTimeoutMs?: number;
  /** Sends of the command on timeout (the participant must deduplicate by saga id and step). Default one send. */
  readonly retry?: StepRetry;
  /** Sends of the compensation when it fails or times out. Default {@link DEFAULT_COMPENSATION_RETRY}. */
  readonly compensationRetry?: StepRetry;
}

/** What a local step's functions get: the orchestrator's transaction. */
export interface LocalStepContext {
  /** The orchestrator transaction's connection. Do not COMMIT or ROLLBACK it. */
  readonly client: pg.PoolClient;
  /** kysely on the same transaction. */
  readonly db: Kysely<any>;
  /** The saga's id. */
  readonly sagaId: string;
  /** A logger bound to the saga and step. */
  readonly logger: Logger;
  /**
   * Aborted when the transition has run for the orchestrator's `handlerTimeoutMs`: its
   * transaction has then been rolled back and its connection closed; stop work.
   */
  readonly signal: AbortSignal;
}

/**
 * A step run by the orchestrator itself, inside the transition's transaction: its writes
 * commit with the saga's new state. Returning a failure compensates the earlier steps;
 * throwing rolls the transition back and the message is retried (a transient error).
 */
export interface LocalStep<S> {
  /** Marks a step that runs in the orchestrator's own transaction. */
  readonly kind: 'local';
  /** The step's name, unique in its saga. */
  readonly name: string;
  /** Runs the step on the saga's state; its result moves the saga on. */
  readonly run: (state: S, context: LocalStepContext) => Promise<StepResult<S>> | StepResult<S>;
  /** Undoes the step, in the orchestrator's transaction. */
  readonly compensate?: (state: S, context: LocalStepContext) => Promise<void> | void;
}

/** Any step of a saga with state `S`. */
export type SagaStep<S> = RemoteStep<S, any> | LocalStep<S>;

/** Builds typed steps for a saga whose state is `S`. Given to {@link defineSaga}'s `steps`. */
export interface StepBuilder<S> {
  /**
   * A step done by a participant. Give the reply union as the type argument so that
   * `onReply`'s match is checked for exhaustiveness.
   */
  remote<R>(step: Omit<RemoteStep<S, R>, 'kind'>): RemoteStep<S, R>;
  /** A step run in the orchestrator's transaction. */
  local(step: Omit<LocalStep<S>, 'kind'>): LocalStep<S>;
}

/** A checked saga definition; see {@link defineSaga}. */
export interface SagaDefinition<I = any, S = any> {
  /** The saga type's name. */
  readonly name: string;
  /** The definition's version, stored with each saga started from it. */
  readonly version: number;
  /** Builds a new saga's state from its input. */
  readonly initialState: (input: I) => S;
  /** The steps, run in order and compensated in reverse. */
  readonly steps: readonly SagaStep<S>[];
}

/** The input type of a saga definition. */
export type SagaInput<D> = D extends SagaDefinition<infer I, any> ? I : never;
/** The state type of a saga definition. */
export type SagaState<D> = D extends SagaDefinition<any, infer S> ? S : never;

/** What {@link defineSaga} takes. */
export interface SagaSpec<I, S> {
  /** Saga type, 1-255 characters. */
  name: string;
  /** Definition version (integer >= 1). A saga finishes on the version it started with. */
  version: number;
  /** The state a new saga starts with. Must be JSON: it is stored as jsonb. */
  initialState: (input: I) => S;
  /** The ordered steps, built with the typed builder. */
  steps: (step: StepBuilder<S>) => readonly SagaStep<S>[];
}

const builder: StepBuilder<any> = {
  remote: (step) => ({ ...step, kind: 'remote' }),
  local: (step) => ({ ...step, kind: 'local' }),
};

const positiveInt = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v >= 1;

function checkRetry(problems: string[], where: string, retry: StepRetry | undefined): void {
  if (retry === undefined) return;
  if (!positiveInt(retry.maxAttempts) || retry.maxAttempts > 1_000) problems.push(`${where}.maxAttempts must be an integer from 1 to 1000`);
  if (retry.delayMs !== undefined && !(typeof retry.delayMs === 'number' && retry.delayMs >= 0 && Number.isFinite(retry.delayMs))) {
    problems.push(`${where}.delayMs must be a non-negative number`);
  }
}

function checkMs(problems: string[], where: string, value: unknown): void {
  if (value !== undefined && !(typeof value === 'number' && value > 0 && Number.isFinite(value))) {
    problems.push(`${where} must be a positive number of milliseconds`);
  }
}

/**
 * Defines a saga: a name and version, the typed state it starts with, and its ordered
 * steps. Every problem in the definition is reported at once as an
 * {@link InvalidOptionsError}.
 *
 * @example
 * type ReserveReply = { type: 'reserved'; reservationId: string } | { type: 'out_of_stock' };
 *
 * const orderSaga = defineSaga({
 *   name: 'order',
 *   version: 1,
 *   initialState: (input: { orderId: string; sku: string }) => ({ ...input, reservationId: null as string | null }),
 *   steps: (step) => [
 *     step.remote<ReserveReply>({
 *       name: 'reserve',
 *       command: (s) => ({ topic: 'inventory.reserve', payload: { orderId: s.orderId, sku: s.sku } }),
 *       onReply: (reply, s) =>
 *         match(reply)
 *           .with({ type: 'reserved' }, (r) => StepResult.ok({ ...s, reservationId: r.reservationId }))
 *           .with({ type: 'out_of_stock' }, () => StepResult.fail('out of stock'))
 *           .exhaustive(),
 *       compensate: (s) => ({ topic: 'inventory.release', payload: { reservationId: s.reservationId } }),
 *       timeoutMs: 30_000,
 *     }),
 *   ],
 * });
 */
export function defineSaga<I, S>(spec: SagaSpec<I, S>): SagaDefinition<I, S> {
  const problems: string[] = [];
  if (typeof spec?.name !== 'string' || spec.name.length < 1 || spec.name.length > 255) problems.push('name must be a string of 1-255 characters');
  if (!positiveInt(spec?.version) || spec.version > 2_147_483_647) problems.push('version must be an integer >= 1');
  if (typeof spec?.initialState !== 'function') problems.push('initialState must be a function');
  let steps: readonly SagaStep<S>[] = [];
  if (typeof spec?.steps !== 'function') problems.push('steps must be a function of the step builder');
  else steps = spec.steps(builder as StepBuilder<S>);
  if (!Array.isArray(steps) || steps.length === 0) problems.push('a saga needs at least one step');
  const names = new Set<string>();
  for (const [i, step] of (Array.isArray(steps) ? steps : []).entries()) {
    const where = `steps[${i}]`;
    if (typeof step?.name !== 'string' || step.name.length < 1 || step.name.length > 200) {
      problems.push(`${where}.name must be a string of 1-200 characters`);
    } else if (names.has(step.name)) problems.push(`${where}.name ${JSON.stringify(step.name)} is used twice`);
    else names.add(step.name);
    if (step?.kind === 'remote') {
      if (typeof step.command !== 'function') problems.push(`${where}.command must be a function`);
      if (typeof step.onReply !== 'function') problems.push(`${where}.onReply must be a function`);
      checkMs(problems, `${where}.timeoutMs`, step.timeoutMs);
      checkMs(problems, `${where}.compensationTimeoutMs`, step.compensationTimeoutMs);
      checkRetry(problems, `${where}.retry`, step.retry);
      checkRetry(problems, `${where}.compensationRetry`, step.compensationRetry);
      if ((step.retry?.maxAttempts ?? 1) > 1 && step.timeoutMs === undefined) problems.push(`${where}.retry needs timeoutMs: commands are sent again on timeout`);
    } else if (step?.kind === 'local') {
      if (typeof step.run !== 'function') problems.push(`${where}.run must be a function`);
    } else problems.push(`${where} must be built with step.remote(...) or step.local(...)`);
  }
  if (problems.length > 0) throw new InvalidOptionsError(`saga ${typeof spec?.name === 'string' ? JSON.stringify(spec.name) : '(unnamed)'}`, problems);
  const definition = { name: spec.name, version: spec.version, initialState: spec.initialState, steps: Object.freeze([...steps]) };
  Object.defineProperty(definition, DEFINED, { value: true });
  return Object.freeze(definition);
}

// Marks what defineSaga made (and so checked). A registered symbol, not a module-level
// set, so that two copies of this package loaded side by side recognise each other's.
const DEFINED = Symbol.for('sagabox.sagaDefinition');

/** True when `value` was returned by {@link defineSaga}. */
export function isSagaDefinition(value: unknown): value is SagaDefinition {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[DEFINED] === true;
}
