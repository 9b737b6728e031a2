/**
 * Held rows (queue_messages.held, see the baseline migration): a group's messages past the
 * first {@link HELD_WINDOW_FACTOR} x group_max_in_flight waiting are written held, out of
 * the claim index. The group window (claim-sql.ts) refuses them anyway, and a claim that
 * had to walk past a noisy group's backlog would pay for its length at every call. The
 * window itself never depends on the flag: a held row is only one that waits longer to
 * be seen, and the claims that lease a group's messages clear as many of its held rows.
 */

/**
 * A group keeps this many times its `groupMaxInFlight` messages in the claim index: the
 * ones in its window and as many behind them, so a claim that leases some of the group
 * finds the next ones already there while it clears held rows to follow them.
 */
export const HELD_WINDOW_FACTOR = 2;

/** SQL: the held window of the queue of the `queues` row alias `q` (NULL without a group limit). */
export const heldWindowOf = (q: string): string => `${HELD_WINDOW_FACTOR} * ${q}.group_max_in_flight`;

/**
 * SQL for a new queue row's `held` (the migration's held_on_insert): true when the group
 * `groupKey` (a text expression, NULL for an ungrouped message) of queue `queue` already
 * has its held window of messages in the queue, counting `earlier` (an integer
 * expression: the rows of the same queue and group written before it by the same
 * statement, which its snapshot does not see). `window` is the queue's window
 * ({@link heldWindowOf}; NULL: no group limit) when the statement has it at hand, as
 * publish does from the direct route; null to look it up, for grouped messages only.
 * A message without a group, or of a route whose queue has no group limit, calls nothing.
 */
export function heldFrom(s: string, window: string | null, queue: string, groupKey: string, earlier: string): string {
  if (window === null) {
    return `CASE WHEN ${groupKey} IS NULL THEN false ELSE ${s}.held_on_insert(${queue}, ${groupKey}, ${earlier},
               (SELECT ${heldWindowOf('hq')} FROM ${s}.queues hq WHERE hq.name = ${queue})) END`;
  }
  return `CASE WHEN ${groupKey} IS NULL OR ${window} IS NULL THEN false
               ELSE ${s}.held_on_insert(${queue}, ${groupKey}, ${earlier}, ${window}) END`;
}

/*
 * A hot key is the same cliff through the head-of-key rule: only the oldest message of a
 * key is claimable, and a claim walks every later one of the key that comes before the
 * other messages in claim order. Publishing a keyed message does not look for its key's
 * backlog (it would tax every keyed publish); the worker's sweep finds a key with more
 * than HOT_KEY_ROWS messages among the first KEY_FRONT_SCANNED of the claim order and
 * holds all but the first KEY_HELD_WINDOW of its ungrouped messages. A claim that
 * leases a key's head clears its oldest held row, and the sweep clears held rows among a
 * key's first KEY_HELD_WINDOW (a release a claim missed). A grouped message is held by
 * its group's rules only.
 */

/** A hot key keeps this many of its oldest ungrouped messages in the claim index. */
export const KEY_HELD_WINDOW = 4;

/** How far into the claim order the sweep looks for hot keys: the rows a claim may walk. */
export const KEY_FRONT_SCANNED = 1_000;

/**
 * A key with more of its ungrouped messages than this among the first
 * {@link KEY_FRONT_SCANNED} of the claim order is held down to {@link KEY_HELD_WINDOW}:
 * above the window, so a key with a few messages waiting is not held and cleared again
 * message by message.
 */
export const HOT_KEY_ROWS = 4 * KEY_HELD_WINDOW;

/** The most rows one hold (`holdKeyTails`) writes: a bounded transaction; the sweep runs another while each finds half as many. */
export const KEY_HOLD_LIMIT = 20_000;
