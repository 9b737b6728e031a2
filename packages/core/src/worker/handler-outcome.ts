/**
 * What a handler may return instead of finishing normally. Returning nothing (or
 * `undefined`) acks the message; throwing is a failure that is retried with backoff.
 */
export type HandlerOutcome =
  | { readonly kind: 'retry'; readonly delayMs: number | undefined; readonly reason: string | undefined }
  | { readonly kind: 'dead-letter'; readonly reason: string };

/**
 * Explicit non-success outcomes. Both roll back what the handler wrote.
 * @example
 * async (message) => {
 *   if (!isSupported(message.payload)) return Outcome.deadLetter('unsupported region');
 *   if (await rateLimited()) return Outcome.retry({ delayMs: 5_000 });
 * }
 */
export const Outcome = {
  /** Try again later (counts as an attempt); `delayMs` defaults to the worker's backoff. */
  retry(options: { delayMs?: number; reason?: string } = {}): HandlerOutcome {
    return { kind: 'retry', delayMs: options.delayMs, reason: options.reason };
  },
  /** Do not retry: move the message to the dead letters with this reason (`non_retryable`). */
  deadLetter(reason: string): HandlerOutcome {
    return { kind: 'dead-letter', reason };
  },
} as const;

/** True when `value` is a {@link HandlerOutcome}. */
export function isHandlerOutcome(value: unknown): value is HandlerOutcome {
  const kind = (value as HandlerOutcome | null)?.kind;
  return typeof value === 'object' && value !== null && (kind === 'retry' || kind === 'dead-letter');
}
