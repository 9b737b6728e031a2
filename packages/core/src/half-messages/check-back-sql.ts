import { statementsFor } from '../shared/statements.js';

/** The statements of the relay's check-back loop (see check-back.ts), for one schema. */
export const checkBackSql = statementsFor((s) => ({
  /**
   * Claims up to $1 half messages whose check-back is due ($2 stands in for now() in
   * tests). The checking relay keeps these row locks while it asks the checkers, so SKIP
   * LOCKED is what makes "one relay checks a message at a time" hold however many relays
   * run. Walks outbox_prepared_check_at. `part` names each row's slot for the statements
   * that decide it; the row locks keep it there (a rotation must lock the slot first).
   */
  claimDue: `
    SELECT seq, part, id, topic, key, payload, headers, checks, check_at, created_at
    FROM ${s}.outbox
    WHERE state = 'prepared' AND check_at <= coalesce($2::timestamptz, now())
    ORDER BY check_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED`,

  /** Makes the checked messages deliverable: $1 their seqs, $2 their slots. */
  commitChecked: `
    UPDATE ${s}.outbox o SET state = 'ready', available_at = now(), check_at = NULL, checks = o.checks + 1
    FROM unnest($1::bigint[], $2::smallint[]) AS f(seq, part)
    WHERE o.seq = f.seq AND o.part = f.part`,

  /** Drops the checked messages: $1 their seqs, $2 their slots. */
  rollbackChecked: `
    DELETE FROM ${s}.outbox o
    USING unnest($1::bigint[], $2::smallint[]) AS f(seq, part)
    WHERE o.seq = f.seq AND o.part = f.part`,

  /**
   * Asks again later: $1 seqs, $2 slots, $3 delays in ms, $4 1 when the check counts
   * towards the limit. clock_timestamp, not now(): the transaction began before the
   * checkers were asked, which may have taken seconds.
   */
  checkLater: `
    UPDATE ${s}.outbox o
    SET check_at = clock_timestamp() + f.delay_ms * interval '1 millisecond',
        checks = o.checks + f.counted
    FROM unnest($1::bigint[], $2::smallint[], $3::double precision[], $4::int[]) AS f(seq, part, delay_ms, counted)
    WHERE o.seq = f.seq AND o.part = f.part`,

  /** Moves messages that stayed unknown past the limit to dead_letters: $1 seqs, $2 slots, $3 errors. */
  deadLetterUnresolved: `
    WITH f AS (
      SELECT * FROM unnest($1::bigint[], $2::smallint[], $3::text[]) AS f(seq, part, error)
    ), moved AS (
      DELETE FROM ${s}.outbox o USING f WHERE o.seq = f.seq AND o.part = f.part RETURNING o.*
    )
    INSERT INTO ${s}.dead_letters (source, queue, id, topic, key, group_key, priority, payload, headers, reason, error, attempts, created_at)
    SELECT 'outbox', NULL, m.id, m.topic, m.key, m.group_key, m.priority, m.payload, m.headers, 'unresolved', f.error, m.checks + 1, m.created_at
    FROM moved m JOIN f USING (seq)`,

  /** Records the decisions taken, in order: $1 message ids, $2 topics, $3 decisions, $4 sources, $5 details. */
  recordDecisions: `
    INSERT INTO ${s}.half_message_decisions (message_id, topic, decision, source, detail)
    SELECT message_id, topic, decision, source, detail
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
      WITH ORDINALITY AS t(message_id, topic, decision, source, detail, ord)
    ORDER BY ord`,
}));
