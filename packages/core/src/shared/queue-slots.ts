/** The ring slots of queue_messages (its partitions queue_messages_0 to _3, see queue_part). */
export const QUEUE_PARTS = 4;

/**
 * One UPDATE CTE per ring slot, `${name}0` to `${name}3`, setting `set` on the rows whose
 * tableoid and ctid the CTE `from` gives: each row one TID fetch, in its own partition (a
 * ctid names a row only within one). They return 1 per row.
 */
export function eachSlot(s: string, name: string, from: string, set: string): string {
  return Array.from({ length: QUEUE_PARTS }, (_, i) => `${name}${i} AS (
      UPDATE ${s}.queue_messages_${i} m SET ${set}
      WHERE m.ctid = ANY(ARRAY(SELECT f.ctid FROM ${from} f WHERE f.tableoid = '${s}.queue_messages_${i}'::regclass))
      RETURNING 1
    )`).join(', ');
}

/** SQL: the rows `eachSlot` updated, from the CTEs it named `name`. */
export const eachSlotCount = (name: string): string =>
  Array.from({ length: QUEUE_PARTS }, (_, i) => `(SELECT count(*) FROM ${name}${i})`).join(' + ');
