import { backoffMs, type RetryPolicy } from '../shared/retry-policy.js';

/**
 * What becomes of one claimed message: acked (deleted with the handler's writes),
 * retried later with its error, or moved to the dead letters with a reason.
 */
export type Verdict =
  | { kind: 'ack' }
  | { kind: 'retry'; delayMs: number; error: string }
  | { kind: 'dead'; reason: DeadLetterReason; error: string };

/** Why the worker dead-letters a message (the `dead_letters.reason` values it writes). */
export type DeadLetterReason = 'failed' | 'timeout' | 'non_retryable' | 'expired' | 'invalid';

/** Longest stored error text, in characters: it lives in a hot queue row until the retry. */
export const MAX_ERROR_TEXT_LENGTH = 4_000;
/** Longest retry delay a handler may ask for, in milliseconds (one year). */
export const MAX_RETRY_DELAY_MS = 365 * 86_400_000;
/** The reason recorded when a handler dead-letters a message without giving one. */
export const DEFAULT_DEAD_LETTER_REASON = 'dead-lettered by the handler (no reason given)';

/**
 * Describes whatever a handler threw, for `last_error` and `dead_letters.error`: an
 * Error as its stack (which starts with name and message), anything else as JSON or
 * its string form. Never throws, whatever the value: an object without a prototype, a
 * getter that throws, a revoked proxy, a cycle. Bounded to `maxLength` characters and
 * without NUL, which a PostgreSQL text column refuses (a refused error text would fail
 * the very statement that records the failure).
 */
export function describeFailure(value: unknown, maxLength = MAX_ERROR_TEXT_LENGTH): string {
  let text = attempt(() => describeError(value)) ?? attempt(() => describeOther(value)) ?? `a thrown ${safeType(value)} that cannot be described`;
  text = text.replace(/\0/g, '\\0');
  return text.length > maxLength ? `${text.slice(0, maxLength - 1)}…` : text;
}

function attempt(fn: () => string | undefined): string | undefined {
  try {
    const text = fn();
    return typeof text === 'string' && text.length > 0 ? text : undefined;
  } catch {
    return undefined;
  }
}

function describeError(value: unknown): string | undefined {
  if (!(value instanceof Error)) return undefined;
  const name = String(value.name);
  const message = String(value.message);
  const code = (value as { code?: unknown }).code;
  // The code, when there is one (SagaboxError's, PostgreSQL's SQLSTATE), says more than the name.
  const head = `${name}${typeof code === 'string' || typeof code === 'number' ? ` [${code}]` : ''}: ${message}`;
  const stack = typeof value.stack === 'string' ? value.stack : '';
  const plain = `${name}: ${message}`;
  const body = stack.startsWith(plain) ? `${head}${stack.slice(plain.length)}` : stack ? `${head}\n${stack}` : head;
  const cause = value.cause === undefined ? '' : `\ncaused by: ${describeFailure(value.cause, 1_000)}`;
  return `${body}${cause}`;
}

function describeOther(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value !== 'object' || value === null) return attempt(() => String(value)) ?? safeType(value);
  const json = attempt(() => JSON.stringify(value));
  if (json !== undefined && json !== '{}') return `thrown ${safeType(value)}: ${json}`;
  const asString = attempt(() => String(value));
  if (asString !== undefined && asString !== '[object Object]') return asString;
  return `thrown ${safeType(value)}${json === '{}' ? ' {}' : ''}`;
}

function safeType(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value !== 'object') return typeof value;
  const proto = attempt(() => {
    const p = Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null;
    return p === null ? 'object without a prototype' : typeof p.constructor?.name === 'string' ? `${p.constructor.name} object` : undefined;
  });
  return proto ?? 'object';
}

/** The verdict after a handler threw (or timed out): retry with backoff, or dead-letter after the last attempt. */
export function failureVerdict(attempts: number, error: string, retry: RetryPolicy, reason: 'failed' | 'timeout' = 'failed'): Verdict {
  if (attempts >= retry.maxAttempts) return { kind: 'dead', reason, error };
  return { kind: 'retry', delayMs: backoffMs(retry, attempts), error };
}

/**
 * The verdict of an outcome a handler returned (see `Outcome`), checked: a retry delay
 * that is not a finite number from 0 to {@link MAX_RETRY_DELAY_MS} is refused with an
 * `INVALID_OUTCOME` error recorded as the handler's failure; a dead-letter without a
 * reason gets {@link DEFAULT_DEAD_LETTER_REASON}; reasons that are not strings are described.
 */
export function outcomeVerdict(attempts: number, outcome: { kind: string; delayMs?: unknown; reason?: unknown }, retry: RetryPolicy): Verdict {
  if (outcome.kind === 'dead-letter') {
    const reason = outcome.reason === undefined || outcome.reason === null || outcome.reason === '' ? DEFAULT_DEAD_LETTER_REASON : describeFailure(outcome.reason);
    return { kind: 'dead', reason: 'non_retryable', error: reason };
  }
  const { delayMs } = outcome;
  if (delayMs !== undefined && !(typeof delayMs === 'number' && Number.isFinite(delayMs) && delayMs >= 0 && delayMs <= MAX_RETRY_DELAY_MS)) {
    // The handler's own mistake, not the worker's: the text names it without a stack of worker internals.
    const refused = `SagaboxError [INVALID_OUTCOME]: Outcome.retry delayMs must be a finite number from 0 to ${MAX_RETRY_DELAY_MS}, got ${describeFailure(delayMs, 100)}`;
    return failureVerdict(attempts, refused, retry);
  }
  const error = outcome.reason === undefined || outcome.reason === null ? 'handler asked to retry' : describeFailure(outcome.reason);
  if (attempts >= retry.maxAttempts) return { kind: 'dead', reason: 'failed', error };
  return { kind: 'retry', delayMs: (delayMs as number | undefined) ?? backoffMs(retry, attempts), error };
}
