import { statementsFor } from '../shared/statements.js';

// The producer's decision and its record are one statement, so they commit together even
// when the caller passes a pool (autocommit). `state = 'prepared'` in the WHERE makes
// commit and rollback exclusive: both lock the row, and whichever comes second re-reads it
// after the first commits (READ COMMITTED re-check), matches nothing, and learns the first
// decision from `lookup`. A NOTIFY wakes the relay at commit: a committed message
// is deliverable, and a rolled-back one may have been holding back later rows of its key.
// A decision in ('commit', 'rollback', 'unresolved') is final: it never changes again.

/** The statements of `prepare`, `commitHalfMessage`, `rollbackHalfMessage` and `decideHalfMessage` for one schema. */
export const halfMessageSql = statementsFor((s) => ({
  /**
   * Stores a prepared (invisible) message and records the decision. $1-$9 as publish's
   * columns, $10 the check-back delay in ms, $11 the detail. Takes publish's per-key
   * advisory lock (7337105, see publish-sql.ts), so the row holds its place in its key's
   * commit order and, being 'prepared', blocks later rows of its key in the relay's claim
   * until it is committed or dropped. An id with a final decision is never prepared again.
   *
   * The row goes to its id's ring slot (queue_part), where the unique index refuses a
   * second prepared row of the id; one that a rotation has moved to another slot is looked
   * for in every slot, under an advisory lock on the id so two prepares of it take turns.
   * The slots' locks taken for that look keep a rotation from moving it meanwhile.
   */
  prepare: `
    WITH decided AS (
      SELECT 1 FROM ${s}.half_message_decisions
      WHERE message_id = $1::uuid AND decision IN ('commit', 'rollback', 'unresolved')
      LIMIT 1
    ), prepared AS (
      INSERT INTO ${s}.outbox (id, part, topic, key, payload, headers, run_at, expires_at, priority, group_key, state, check_at)
      SELECT $1::uuid, ${s}.queue_part($1::uuid), $2::text, $3::text, $4::jsonb, $5::jsonb, $6::timestamptz, $7::timestamptz, $8::smallint, $9::text,
             'prepared', clock_timestamp() + $10::double precision * interval '1 millisecond'
      WHERE NOT EXISTS (SELECT 1 FROM decided)
        AND ($3::text IS NULL
             OR (SELECT true FROM (SELECT pg_advisory_xact_lock(hashtextextended($3::text, 7337105))) l))
        -- The lock first (the subquery's FROM), then the look.
        AND (SELECT NOT EXISTS (SELECT 1 FROM ${s}.outbox o WHERE o.id = $1::uuid AND o.state = 'prepared')
             FROM (SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7337105))) l)
      ON CONFLICT (id, part) WHERE state = 'prepared' DO NOTHING
      RETURNING id, topic
    ), recorded AS (
      INSERT INTO ${s}.half_message_decisions (message_id, topic, decision, source, detail)
      SELECT id, topic, 'prepared', 'producer', $11::text FROM prepared
    )
    SELECT id FROM prepared`,

  /**
   * Makes a prepared message deliverable and records who decided: $1 its id, $2 the
   * detail, $3 the source ('producer' or 'operator'), $4 the outbox channel to NOTIFY, or
   * NULL for none. Returns the recorded decision; no row when nothing was prepared.
   */
  commit: decided(s, 'commit', `UPDATE ${s}.outbox SET state = 'ready', available_at = now(), check_at = NULL`),

  /** Drops a prepared message; parameters and result as `commit`. */
  rollback: decided(s, 'rollback', `DELETE FROM ${s}.outbox`),

  /**
   * What became of message $1: still prepared, its final decision, and whether it was
   * ever seen. Runs as its own statement after a prepare, commit or rollback that changed
   * nothing, so its fresh READ COMMITTED snapshot sees whatever decision beat it.
   */
  lookup: `
    SELECT (SELECT state FROM ${s}.outbox WHERE id = $1::uuid AND state = 'prepared' LIMIT 1) AS state,
           (SELECT decision FROM ${s}.half_message_decisions
            WHERE message_id = $1::uuid AND decision IN ('commit', 'rollback', 'unresolved')
            ORDER BY seq LIMIT 1) AS decided,
           EXISTS (SELECT 1 FROM ${s}.half_message_decisions WHERE message_id = $1::uuid) AS known`,
}));

// The producer's commit and rollback and the operator's (decideHalfMessage) differ only in
// the source they record and whether they NOTIFY, so both run this one statement. The
// checker's decisions stay in check-back-sql.ts: it decides a batch of rows it already
// holds locked, by seq, and counts the check.
function decided(s: string, decision: 'commit' | 'rollback', change: string): string {
  return `
    WITH changed AS (
      ${change}
      WHERE id = $1::uuid AND state = 'prepared'
      RETURNING id, topic
    ), recorded AS (
      INSERT INTO ${s}.half_message_decisions (message_id, topic, decision, source, detail)
      SELECT id, topic, '${decision}', $3::text, $2::text FROM changed
      RETURNING message_id, topic, decision, source, detail, decided_at
    )
    SELECT r.*, CASE WHEN $4::text IS NOT NULL THEN pg_notify($4::text, '') END AS woke FROM recorded r`;
}

/** The statements of {@link halfMessageSql} for one schema. */
export type HalfMessageSql = ReturnType<typeof halfMessageSql>;
