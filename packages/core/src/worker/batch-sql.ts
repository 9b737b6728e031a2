import { SCHEDULED_AHEAD_MS } from '../shared/scheduled.js';
import { statementsFor } from '../shared/statements.js';
import { QUEUE_PARTS } from './claim-sql.js';

/** takeAndInbox's text per schema and set of slots (at most 15 sets). */
const takeTexts = new Map<string, string>();

/** A ring slot of queue_messages, checked, so nothing but its digits reaches a statement's text. */
function slotNumber(part: number): number {
  if (!Number.isInteger(part) || part < 0 || part >= QUEUE_PARTS) throw new RangeError(`not a slot of queue_messages: ${String(part)}`);
  return part;
}

/**
 * Records the fenced ids that pass `which` in consumer $4's inbox, returning those it
 * did not have. ON CONFLICT rather than NOT EXISTS, though a speculative insertion
 * costs an extra WAL record a row: a NOT EXISTS is the planner's to turn into an anti
 * join, and without statistics on a fresh inbox partition it chose one that read the
 * partition for every batch.
 */
const recordFenced = (s: string, which: string): string => `
      INSERT INTO ${s}.inbox (consumer, message_id)
      SELECT $4, id FROM fenced WHERE ${which}
      ON CONFLICT DO NOTHING RETURNING message_id`;

/**
 * The result row of `fenceAndInbox` and `takeAndInbox`: `fenced`, the ids fenced, and
 * `fresh`, those the inbox did not have yet, each null when it is the whole of its input
 * (`fenced` when every id of $2 was fenced; `fresh` unless `someSeen`, the statement's
 * test that the inbox had some already), as in nearly every batch: the worker then has
 * no arrays of ids to parse. Two arrays rather than a join of the two CTEs: the planner
 * cannot size a CTE and joined them in a nested loop, rescanning one for every row of
 * the other.
 */
const fencedAndFresh = (someSeen: string): string => `SELECT CASE WHEN (SELECT count(*) FROM fenced) < cardinality($2::uuid[]) THEN ARRAY(SELECT id FROM fenced) END AS fenced,
           CASE WHEN ${someSeen} THEN ARRAY(SELECT message_id FROM recorded) END AS fresh`;

/**
 * The statements of the batch handler's transactions, for one schema. Each is written
 * whole; $1 is always the queue.
 */
export const batchSql = statementsFor((s) => ({
  /**
   * Locks our leased rows for the handling transaction: $2 ids, $3 lease token. A row
   * whose token changed was re-leased by another worker after ours expired: it is not
   * returned, and this worker neither handles nor acks it. Holding the row lock keeps
   * other workers' claims (SKIP LOCKED) away for as long as the handler runs.
   */
  fence: `
    SELECT id FROM ${s}.queue_messages
    WHERE queue = $1 AND id = ANY($2::uuid[]) AND lease_token = $3::uuid
    FOR UPDATE`,

  /**
   * A batch's first statement when some verdicts are known before handling: fences as
   * `fence` ($2 ids, $3 lease token) and records the ids to be handled ($5, a subset of
   * $2) in consumer $4's inbox. Returns one row (see `fencedAndFresh`): the ids fenced,
   * and those the inbox did not have yet (an id it had was handled before and is only acked).
   */
  fenceAndInbox: `
    WITH fenced AS (
      SELECT id FROM ${s}.queue_messages
      WHERE queue = $1 AND id = ANY($2::uuid[]) AND lease_token = $3::uuid
      FOR UPDATE
    ), recorded AS (${recordFenced(s, 'id = ANY($5::uuid[])')}
    )
    ${fencedAndFresh('(SELECT count(*) FROM recorded) < cardinality($5::uuid[])')}`,

  /**
   * A batch's first statement when the whole batch is expected to be acked (nothing known
   * before handling): fence, inbox and ack at once, parameters and result as
   * `fenceAndInbox` but for $5, true to record every fenced id in the inbox (false: the
   * inbox is off), $6 the slot whose queue_leases row is released with the batch (null:
   * not counted), $7 and $8 the rows' places (below). A flag rather than the ids again:
   * `id = ANY($5)` on a prepared statement's generic plan searches the array for every
   * row, 80,000 comparisons for a batch of 400 (and 400 more ids to send). The DELETE is the fence: it
   * removes only rows still under our lease token, and the deleted rows stay locked until
   * the transaction ends, so other claimers skip them exactly as rows locked FOR UPDATE; a
   * failing handler rolls it back.
   *
   * The rows are found by ctid, one TID fetch each rather than a descent of the primary
   * key per id ($7 the ctids, $8 the ring slot of each, from the claim). The token makes
   * that safe: only our claim wrote it, and nothing else updates a leased row (admin
   * actions skip them), so a row still ours is where the claim left it. The statement
   * names only the partitions of queue_messages in `parts`, the slots the batch was
   * claimed from, so the transaction locks those alone while its handlers run, and a
   * rotation can empty the other slots meanwhile (through the parent it would lock all
   * four). A row a rotation moved since the claim (or a table rewrite such as VACUUM
   * FULL) is not found here: `takeMovedAndInbox` takes it by id.
   */
  takeAndInbox: (parts: readonly number[]): string => {
    const key = `${s} ${parts.join(',')}`;
    const known = takeTexts.get(key);
    if (known !== undefined) return known;
    const take = parts.map(slotNumber).map((part) => `by_ctid_${part} AS (
      DELETE FROM ${s}.queue_messages_${part}
      WHERE ctid = ANY(ARRAY(SELECT t FROM unnest($7::tid[], $8::smallint[]) AS c(t, part) WHERE c.part = ${part}))
        AND queue = $1 AND lease_token = $3::uuid
      RETURNING id
    )`);
    const text = `
    WITH ${take.join(', ')}, fenced AS (
      ${parts.map((part) => `SELECT id FROM by_ctid_${part}`).join(' UNION ALL ')}
    ), recorded AS (${recordFenced(s, '$5::boolean')}
    ), released AS (
      UPDATE ${s}.queue_leases SET locked_until = '-infinity'
      WHERE $6::uuid IS NOT NULL AND queue = $1 AND slot_token = $6::uuid
    )
    ${fencedAndFresh('$5::boolean AND (SELECT count(*) FROM recorded) < (SELECT count(*) FROM fenced)')}`;
    takeTexts.set(key, text);
    return text;
  },

  /**
   * The rest of `takeAndInbox` for the ids it did not find by ctid ($2): takes those still
   * under our lease token by id, wherever they are now, and records them in the inbox as
   * it does ($4 consumer, $5 inbox on). Same result row, for these ids.
   */
  takeMovedAndInbox: `
    WITH fenced AS (
      DELETE FROM ${s}.queue_messages
      WHERE queue = $1 AND id = ANY($2::uuid[]) AND lease_token = $3::uuid
      RETURNING id
    ), recorded AS (${recordFenced(s, '$5::boolean')}
    )
    ${fencedAndFresh('$5::boolean AND (SELECT count(*) FROM recorded) < (SELECT count(*) FROM fenced)')}`,

  /** Records one message in consumer $1's inbox: $2 its id; no row back when it was there already. */
  inboxInsertOne: `
    INSERT INTO ${s}.inbox (consumer, message_id) VALUES ($1, $2)
    ON CONFLICT DO NOTHING RETURNING message_id`,

  /** Acks (deletes) handled messages: $2 ids. */
  ack: `DELETE FROM ${s}.queue_messages WHERE queue = $1 AND id = ANY($2::uuid[])`,

  /**
   * `ack` for a batch counted against max_in_flight: its slot's queue_leases row ($3, the
   * slot token) is released in the same statement, so the batch stops counting when its
   * transaction commits. Released, not deleted: the slot's next claim reuses the row.
   */
  ackAndRelease: `
    WITH released AS (
      UPDATE ${s}.queue_leases SET locked_until = '-infinity' WHERE queue = $1 AND slot_token = $3::uuid
    )
    DELETE FROM ${s}.queue_messages WHERE queue = $1 AND id = ANY($2::uuid[])`,

  /** Releases the queue_leases row of a counted batch settled message by message, once all are settled: $2 slot token. */
  releaseBatch: `UPDATE ${s}.queue_leases SET locked_until = '-infinity' WHERE queue = $1 AND slot_token = $2::uuid`,

  /** Retries messages later: $2 ids, $3 delays in ms, $4 errors; the lease ends. */
  retryLater: `
    UPDATE ${s}.queue_messages m
    SET run_at = now() + f.delay_ms * interval '1 millisecond',
        scheduled = f.delay_ms > ${SCHEDULED_AHEAD_MS},
        lease_token = NULL, locked_until = NULL, locked_by = NULL,
        last_error = f.error
    FROM unnest($2::uuid[], $3::double precision[], $4::text[]) AS f(id, delay_ms, error)
    WHERE m.queue = $1 AND m.id = f.id`,

  /** Moves messages to the dead letters: $2 ids, $3 reasons, $4 errors. */
  deadLetter: `
    WITH f AS (
      SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[]) AS f(id, reason, error)
    ), moved AS (
      DELETE FROM ${s}.queue_messages m USING f WHERE m.queue = $1 AND m.id = f.id RETURNING m.*
    )
    INSERT INTO ${s}.dead_letters (source, queue, id, topic, key, group_key, payload, headers, priority, reason, error, attempts, created_at)
    SELECT 'queue', m.queue, m.id, m.topic, m.key, m.group_key, m.payload, m.headers, m.priority, f.reason, f.error, m.attempts, m.created_at
    FROM moved m JOIN f USING (id)`,
}));
