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

/**
 * SQL for a new queue row's `held`: true when the group `groupKey` (a text expression,
 * NULL for an ungrouped message) of queue `queue` has a group limit and already has
 * {@link HELD_WINDOW_FACTOR} x that many messages in the queue, counting `earlier`
 * (an integer expression: the rows of the same queue and group written before it by the
 * same statement, which its snapshot does not see). The count stops at the window, a
 * few index entries. A queue without a group limit is one probe of its `queues` row.
 * The three expressions must be qualified: the subqueries' own tables have a `queue`
 * and a `group_key` column that an unqualified name would mean.
 */
export function heldFrom(s: string, queue: string, groupKey: string, earlier: string): string {
  return `CASE WHEN ${groupKey} IS NULL THEN false ELSE coalesce((
             SELECT ${earlier} >= hq.w OR ${earlier} + (
                      SELECT count(*) FROM (
                        SELECT FROM ${s}.queue_messages hp WHERE hp.queue = ${queue} AND hp.group_key = ${groupKey}
                        LIMIT hq.w) e) >= hq.w
             FROM (SELECT ${HELD_WINDOW_FACTOR} * q.group_max_in_flight AS w FROM ${s}.queues q
                   WHERE q.name = ${queue} AND q.group_max_in_flight IS NOT NULL) hq), false) END`;
}
