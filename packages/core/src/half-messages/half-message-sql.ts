import { quoteSchema } from '../shared/schema-name.js';
import { KEY_LOCK_SEED } from '../publish/outbox-sql.js';

/**
 * The half-message queries for one schema: the producer's prepare / commit / rollback,
 * the relay's check-back, and the admin reads. Every value is a bind parameter; the
 * validated, quoted schema name is the only thing spliced into the text.
 */
export interface HalfMessageSql {
  readonly outboxChannel: string;
  prepare: string;
  commit: string;
  commitNotify: string;
  rollback: string;
  rollbackNotify: string;
  lookup: string;
  claimDue: string;
  commitChecked: string;
  rollbackChecked: string;
  checkLater: string;
  deadLetterUnresolved: string;
  recordDecisions: string;
  list: string;
  history: string;
  purgeDecisions: string;
}

const cache = new Map<string, HalfMessageSql>();

// Decisions after which a half message can never change again ("the first decision stands").
const FINAL = `('commit', 'rollback', 'unresolved')`;

/** Returns (and caches) the half-message queries for `schema`. */
export function halfMessageSql(schema: string): HalfMessageSql {
  let q = cache.get(schema);
  if (q) return q;
  const s = quoteSchema(schema);

  // The producer's decision and its record are one statement, so they commit together
  // even when the caller passes a pool (autocommit). `state = 'prepared'` in the WHERE
  // is what makes commit and rollback exclusive: both lock the row, and whichever comes
  // second re-reads it after the first commits (READ COMMITTED re-check) and matches
  // nothing -- it then learns the first decision from `lookup`. With `notify`, a NOTIFY
  // (sent at commit) wakes the relay: a committed message is deliverable, and a
  // rolled-back one may have been holding back later messages of its key.
  const decide = (change: string, decision: 'commit' | 'rollback', notify: boolean): string => `
    WITH changed AS (
      ${change}
      WHERE id = $1::uuid AND state = 'prepared'
      RETURNING id, topic
    ), recorded AS (
      INSERT INTO ${s}.half_message_decisions (message_id, topic, decision, source, detail)
      SELECT id, topic, '${decision}', 'producer', $2::text FROM changed
    )
    SELECT id${notify ? `, pg_notify($3::text, '')` : ''} FROM changed`;
  const commit = `UPDATE ${s}.outbox SET state = 'ready', available_at = now(), check_at = NULL`;
  const rollback = `DELETE FROM ${s}.outbox`;

  q = {
    outboxChannel: `${schema}.outbox`,
    // Same per-key advisory lock as publish: the prepared row takes its seq while holding
    // the key's lock, so it holds its place in the key's commit order, and (being
    // 'prepared') blocks later rows of its key in the relay's head-of-key claim until
    // it is committed or dropped. An id with a final decision is never prepared again,
    // so a producer retrying a finished prepare cannot resurrect it. Priority and group
    // are stored now, in the same columns as publish's, so the relay carries them into
    // the queue once the message is committed.
    prepare: `
      WITH decided AS (
        SELECT 1 FROM ${s}.half_message_decisions
        WHERE message_id = $1::uuid AND decision IN ${FINAL}
        LIMIT 1
      ), prepared AS (
        INSERT INTO ${s}.outbox (id, topic, key, payload, headers, run_at, expires_at, priority, group_key, state, check_at)
        SELECT $1::uuid, $2::text, $3::text, $4::jsonb, $5::jsonb, $6::timestamptz, $7::timestamptz, $8::smallint, $9::text,
               'prepared', clock_timestamp() + $10::double precision * interval '1 millisecond'
        WHERE NOT EXISTS (SELECT 1 FROM decided)
          AND ($3::text IS NULL
               OR (SELECT true FROM (SELECT pg_advisory_xact_lock(hashtextextended($3::text, ${KEY_LOCK_SEED}))) l))
        ON CONFLICT (id) WHERE state = 'prepared' DO NOTHING
        RETURNING id, topic
      ), recorded AS (
        INSERT INTO ${s}.half_message_decisions (message_id, topic, decision, source, detail)
        SELECT id, topic, 'prepared', 'producer', $11::text FROM prepared
      )
      SELECT id FROM prepared`,
    commit: decide(commit, 'commit', false),
    commitNotify: decide(commit, 'commit', true),
    rollback: decide(rollback, 'rollback', false),
    rollbackNotify: decide(rollback, 'rollback', true),
    // Runs as its own statement after a commit/rollback/prepare that changed nothing, so
    // it sees (with a fresh READ COMMITTED snapshot) whatever decision beat it.
    lookup: `
      SELECT (SELECT state FROM ${s}.outbox WHERE id = $1::uuid AND state = 'prepared') AS state,
             (SELECT decision FROM ${s}.half_message_decisions
              WHERE message_id = $1::uuid AND decision IN ${FINAL}
              ORDER BY seq LIMIT 1) AS decided,
             EXISTS (SELECT 1 FROM ${s}.half_message_decisions WHERE message_id = $1::uuid) AS known`,
    // Check-back claim. The checking relay keeps these row locks while it asks the
    // checkers (see check-back.ts), so SKIP LOCKED is what makes "one relay checks a
    // message at a time" hold however many relays run. Walks outbox_prepared_check_at.
    claimDue: `
      SELECT seq, id, topic, key, payload, headers, checks, check_at, created_at
      FROM ${s}.outbox
      WHERE state = 'prepared' AND check_at <= coalesce($2::timestamptz, now())
      ORDER BY check_at
      LIMIT $1
      FOR UPDATE SKIP LOCKED`,
    commitChecked: `
      UPDATE ${s}.outbox SET state = 'ready', available_at = now(), check_at = NULL, checks = checks + 1
      WHERE seq = ANY($1::bigint[])`,
    rollbackChecked: `DELETE FROM ${s}.outbox WHERE seq = ANY($1::bigint[])`,
    // clock_timestamp, not now(): the transaction began before the checkers were asked,
    // which may have taken seconds.
    checkLater: `
      UPDATE ${s}.outbox o
      SET check_at = clock_timestamp() + f.delay_ms * interval '1 millisecond',
          checks = o.checks + f.counted
      FROM unnest($1::bigint[], $2::double precision[], $3::int[]) AS f(seq, delay_ms, counted)
      WHERE o.seq = f.seq`,
    deadLetterUnresolved: `
      WITH f AS (
        SELECT * FROM unnest($1::bigint[], $2::text[]) AS f(seq, error)
      ), moved AS (
        DELETE FROM ${s}.outbox o USING f WHERE o.seq = f.seq RETURNING o.*
      )
      INSERT INTO ${s}.dead_letters (source, queue, id, topic, key, group_key, priority, payload, headers, reason, error, attempts, created_at)
      SELECT 'outbox', NULL, m.id, m.topic, m.key, m.group_key, m.priority, m.payload, m.headers, 'unresolved', f.error, m.checks + 1, m.created_at
      FROM moved m JOIN f USING (seq)`,
    recordDecisions: `
      INSERT INTO ${s}.half_message_decisions (message_id, topic, decision, source, detail)
      SELECT message_id, topic, decision, source, detail
      FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
        WITH ORDINALITY AS t(message_id, topic, decision, source, detail, ord)
      ORDER BY ord`,
    list: `
      SELECT id, topic, key, checks, check_at, created_at
      FROM ${s}.outbox
      WHERE state = 'prepared'
        AND ($1::text IS NULL OR topic = $1::text)
        AND ($2::boolean IS NOT TRUE OR check_at <= now())
      ORDER BY check_at, seq
      LIMIT $3`,
    history: `
      SELECT seq, message_id, topic, decision, source, detail, decided_at
      FROM ${s}.half_message_decisions
      WHERE message_id = $1::uuid
      ORDER BY seq`,
    // Only messages that left the outbox: a prepared message keeps its whole history.
    purgeDecisions: `
      WITH purged AS (
        DELETE FROM ${s}.half_message_decisions d
        WHERE d.decided_at < now() - $1::double precision * interval '1 millisecond'
          AND NOT EXISTS (SELECT 1 FROM ${s}.outbox o WHERE o.id = d.message_id)
        RETURNING 1
      )
      SELECT count(*)::int AS n FROM purged`,
  };
  cache.set(schema, q);
  return q;
}
