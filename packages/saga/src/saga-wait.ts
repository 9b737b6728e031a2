import type { SagaStatus } from './saga-sql.js';

/** What a running or compensating saga waits on: the last command (or compensation) it sent. */
export interface SagaWaitingOn {
  /** Name of the pending step. */
  step: string;
  /** `command` when the step's command is in flight, `compensation` when its compensation is. */
  kind: 'command' | 'compensation';
  /** Topic the command was sent to, or `null` when the history does not say. */
  topic: string | null;
  /** Attempt number of the command sent (1 for the first send). */
  attempt: number;
  /** When the command was sent. */
  sentAt: Date;
  /** Milliseconds from `sentAt` to the time the saga was read (never negative). */
  waitedMs: number;
  /** When the step times out, or `null` when it has no timeout. */
  deadline: Date | null;
  /** Milliseconds past `deadline` when the saga was read: 0 while the deadline is ahead, `null` without a deadline. */
  overdueMs: number | null;
}

/** The saga's most recent failure: a step that failed, timed out, or whose compensation failed. */
export interface SagaLastFailure {
  /** Name of the step that failed (for a saga-wide failure, the step it names). */
  step: string;
  /** `failed`, `timed_out` or `compensation_failed`. */
  event: string;
  /** When the failure was recorded. */
  at: Date;
  /** The failure's reason (the step's reply or error), or `null` when none was recorded (a timeout). */
  reason: string | null;
}

const FAILURE_EVENTS = new Set(['failed', 'timed_out', 'compensation_failed']);

type Detail = Record<string, unknown>;
interface Event { step: string; event: string; detail: unknown; at: Date }

function detailOf(e: Event): Detail {
  return e.detail !== null && typeof e.detail === 'object' ? (e.detail as Detail) : {};
}

/** Reads what a saga waits on and its last failure from its history (oldest first), as of `now`. */
export function sagaWait(
  saga: { status: SagaStatus; deadline: Date | null },
  history: readonly Event[],
  now: Date,
): { waitingOn: SagaWaitingOn | null; lastFailure: SagaLastFailure | null } {
  let sent: Event | undefined;
  let failure: Event | undefined;
  for (const e of history) {
    if (e.event === 'command_sent' || e.event === 'compensation_sent') sent = e;
    if (FAILURE_EVENTS.has(e.event)) failure = e;
  }
  let waitingOn: SagaWaitingOn | null = null;
  if (sent && (saga.status === 'running' || saga.status === 'compensating')) {
    const d = detailOf(sent);
    waitingOn = {
      step: sent.step,
      kind: sent.event === 'command_sent' ? 'command' : 'compensation',
      topic: typeof d.topic === 'string' ? d.topic : null,
      attempt: typeof d.attempt === 'number' ? d.attempt : 1,
      sentAt: sent.at,
      waitedMs: Math.max(0, now.getTime() - sent.at.getTime()),
      deadline: saga.deadline,
      overdueMs: saga.deadline ? Math.max(0, now.getTime() - saga.deadline.getTime()) : null,
    };
  }
  let lastFailure: SagaLastFailure | null = null;
  if (failure) {
    const d = detailOf(failure);
    // A saga-wide failure ($saga) names the step it came from in its detail.
    const step = failure.step === '$saga' && typeof d.step === 'string' ? d.step : failure.step;
    lastFailure = { step, event: failure.event, at: failure.at, reason: d.reason === undefined || d.reason === null ? null : String(d.reason) };
  }
  return { waitingOn, lastFailure };
}
