import { epochMs } from '../shared/epoch-ms.js';
import { statementsFor } from '../shared/statements.js';

/** The statements of {@link createRelay}'s delivery loop on the outbox, for one schema. */
export const relaySql = statementsFor((s) => ({
  /**
   * Claims up to $1 deliverable rows in seq order; $2 stands in for now() in tests (null:
   * now). Head-of-key rule: a keyed row is claimable only when no earlier row with its key
   * is left in the outbox (claimed by another relay, waiting to retry, or a prepared half
   * message), so one key never has two rows in flight and a stuck key holds back only
   * itself. SKIP LOCKED lets any number of relays claim at once. The outbox is a ring of
   * slots (rotate_outbox) and seq one order across them: the plan merges the slots'
   * primary keys in seq order and stops after a batch. `part` names the row's slot for
   * the statements that finish it.
   *
   * The head-of-key test sits in a lateral subquery, which keeps it out of the slots'
   * scans: the merge reads the first row of every slot before it returns one, and a slot
   * whose rows all wait behind their keys' heads in another slot (a keyed backlog that
   * spans slots) would be read whole, probe by probe, at every claim. Above the merge,
   * the test runs once per row in seq order, and only rows that pass it are locked.
   */
  claim: `
    SELECT o.seq, o.part, o.id, o.topic, o.key, o.payload::text AS payload, o.headers::text AS headers,
           ${epochMs('o.run_at')} AS run_at_ms, ${epochMs('o.expires_at')} AS expires_at_ms, o.attempts,
           ${epochMs('o.created_at')} AS created_at_ms, o.priority, o.group_key
    FROM ${s}.outbox o
    CROSS JOIN LATERAL (
      SELECT WHERE o.key IS NULL OR NOT EXISTS (
        SELECT 1 FROM ${s}.outbox p WHERE p.key = o.key AND p.seq < o.seq)
      OFFSET 0) head
    WHERE o.state = 'ready'
      AND o.available_at <= coalesce($2::timestamptz, now())
    ORDER BY o.seq
    LIMIT $1
    FOR UPDATE OF o SKIP LOCKED`,

  /**
   * Removes the delivered rows of one slot: $1 their seqs. One statement per slot a
   * batch touched (usually one), each on its partition: through the parent, a prepared
   * statement locks all four slots and their indexes at every run and joins each seq
   * against an append of them, about 60% dearer for a batch. The claim's row locks keep
   * a row in its slot (a rotation must lock the slot first).
   */
  deleteDelivered: [0, 1, 2, 3].map((slot) => `DELETE FROM ${s}.outbox_${slot} WHERE seq = ANY($1::bigint[])`),

  /** Counts a failed attempt and sets when to try again: $1 seqs, $2 slots, $3 delays in ms, $4 errors. */
  retryLater: `
    UPDATE ${s}.outbox o
    SET attempts = o.attempts + 1,
        available_at = now() + f.delay_ms * interval '1 millisecond',
        last_error = f.error
    FROM unnest($1::bigint[], $2::smallint[], $3::double precision[], $4::text[]) AS f(seq, part, delay_ms, error)
    WHERE o.seq = f.seq AND o.part = f.part`,

  /**
   * Leaves rows no destination of this relay matches for later: $1 seqs, $2 slots, $3
   * delays in ms, $4 the note for last_error. attempts stays: holding is not a failed
   * delivery, and must not use up the retry budget of the relay that will deliver the row.
   */
  holdUnroutable: `
    UPDATE ${s}.outbox o
    SET available_at = now() + f.delay_ms * interval '1 millisecond', last_error = $4::text
    FROM unnest($1::bigint[], $2::smallint[], $3::double precision[]) AS f(seq, part, delay_ms)
    WHERE o.seq = f.seq AND o.part = f.part`,

  /**
   * Moves rows to dead_letters in one statement: $1 seqs, $2 slots, $3 reasons, $4
   * errors, $5 the attempts to add to each row's count (1 when this batch's attempt failed).
   */
  deadLetter: `
    WITH f AS (
      SELECT * FROM unnest($1::bigint[], $2::smallint[], $3::text[], $4::text[]) AS f(seq, part, reason, error)
    ), moved AS (
      DELETE FROM ${s}.outbox o USING f WHERE o.seq = f.seq AND o.part = f.part RETURNING o.*
    )
    INSERT INTO ${s}.dead_letters (source, queue, id, topic, key, group_key, priority, payload, headers, reason, error, attempts, created_at)
    SELECT 'outbox', NULL, m.id, m.topic, m.key, m.group_key, m.priority, m.payload, m.headers, f.reason, f.error, m.attempts + $5::int, m.created_at
    FROM moved m JOIN f USING (seq)`,

  /**
   * Empties the outbox ring's older slots (rotate_outbox); $1 how long to wait for a
   * slot's lock, in ms (0: not at all).
   */
  rotate: `SELECT truncated, busy, moved FROM ${s}.rotate_outbox(NULL, 5000, $1)`,
}));
