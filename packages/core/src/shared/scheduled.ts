/**
 * How far ahead of now a queue message's run time must be for it to be written
 * `scheduled` (kept out of the claim index, see queue_messages in the baseline
 * migration), and how far ahead the worker's sweep clears the flag. Rows due sooner stay
 * in the claim index: claims walk them until they are due, a second's worth at most.
 */
export const SCHEDULED_AHEAD_MS = 2_000;

/**
 * SQL for a new or retried queue row's `scheduled` flag from its run time (an expression
 * of type timestamptz, null meaning now): true only when that is more than
 * {@link SCHEDULED_AHEAD_MS} ahead.
 */
export const scheduledFrom = (runAt: string): string => `coalesce(${runAt} > now() + interval '${SCHEDULED_AHEAD_MS} milliseconds', false)`;
