import { epochMs } from './epoch-ms.js';

/** Default priority aging, in milliseconds: a minute of waiting is worth one level of priority. */
export const DEFAULT_PRIORITY_AGING_MS = 60_000;

/**
 * What one level of priority is worth under strict priorities (`priorityAgingMs: null`),
 * in milliseconds of waiting: 2^40, about 35 years, so no wait ever makes up a level.
 */
export const STRICT_PRIORITY_MS = 2 ** 40;

/** SQL: what one level of priority is worth in the queue of the `queues` row alias `q`. */
export const levelMsOf = (q: string): string => `coalesce(${q}.priority_aging_ms::bigint, ${STRICT_PRIORITY_MS})`;

/**
 * SQL for a new queue row's `claim_rank` (see queue_messages in the baseline migration):
 * the millisecond it is due (`dueAt`, a timestamptz expression) less its priority times
 * what a level is worth in its queue (its `priorityAgingMs`; the default for a queue
 * without a row). The queue's row is read only for a priority other
 * than 0; with `priority` null the message is known to have priority 0, and the
 * statement does not read `queues` at all (publish's one-message statements are written
 * for either case).
 */
export function claimRankFrom(s: string, queue: string, priority: string | null, dueAt: string): string {
  const dueMs = `${epochMs(dueAt)}::bigint`;
  if (priority === null) return dueMs;
  return `${dueMs} - CASE WHEN ${priority} = 0 THEN 0 ELSE ${priority}::bigint * coalesce(
             (SELECT ${levelMsOf('rq')} FROM ${s}.queues rq WHERE rq.name = ${queue}), ${DEFAULT_PRIORITY_AGING_MS}) END`;
}
