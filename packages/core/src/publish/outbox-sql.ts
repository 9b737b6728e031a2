import { quoteSchema } from '../shared/schema-name.js';

/**
 * The outbox's runtime queries for one schema. Every value is a bind parameter; the
 * validated, quoted schema name is the only thing spliced into the text.
 */
export interface OutboxSql {
  readonly outboxChannel: string;
  readonly queueChannel: string;
  /** Publishes one message to the outbox unless a direct route matches its topic: $1-$9 its columns. */
  insertOutboxOnly: string;
  /** The same, with a NOTIFY on $10 (the outbox channel) when it inserted. */
  insertOutboxOnlyNotify: string;
  /** Publishes one message: $1-$9 its columns, $10 notify?, $11 outbox channel, $12 queue channel. */
  insertOne: string;
  /** Publishes many: $1-$9 arrays of their columns, $10-$12 as insertOne. */
  insertMany: string;
  claim: string;
  deleteDelivered: string;
  retryLater: string;
  deadLetter: string;
  lag: string;
}

// Advisory-lock namespace for ordering keys at publish and prepare (an arbitrary constant, so
// sagabox's locks are unlikely to meet an application's own).
export const KEY_LOCK_SEED = 7_337_105;

const cache = new Map<string, OutboxSql>();

/** Returns (and caches) the outbox queries for `schema`. */
export function outboxSql(schema: string): OutboxSql {
  let q = cache.get(schema);
  if (q) return q;
  const s = quoteSchema(schema);
  // Publishing with a key takes a transaction-level advisory lock on the key before
  // the row gets its seq. Two transactions publishing the same key are serialised
  // until the first commits, so per key, seq order is commit order -- which is what
  // lets the relay and the workers handle a key in commit order by ordering on seq.
  //
  // Direct routes (migration 0004): a message whose topic matches a direct route is
  // written into that route's queue instead of the outbox, in the same statement; one
  // that matches none goes to the outbox. A repeated id is a no-op in a queue (ON
  // CONFLICT on its key); in the outbox it is stored again and removed at delivery, by
  // the same queue key or the consumers' inbox (migration 0007 says why). $10 asks for
  // the wake-up NOTIFYs: the relay's channel for outbox rows, the workers' channel
  // (payload: the queue) for queue rows.
  const publishTail = (input: string) => `
    , routed AS (
      SELECT i.*, r.queue FROM ${input} i JOIN ${s}.direct_routes r ON ('.' || i.topic) ~ r.topic_regex
    ), queued AS (
      INSERT INTO ${s}.queue_messages (queue, id, topic, key, payload, headers, run_at, expires_at, created_at, priority, group_key)
      SELECT queue, id, topic, key, payload, headers, coalesce(run_at, now()), expires_at, now(), priority, group_key
      FROM routed ORDER BY ord
      ON CONFLICT (queue, id) DO NOTHING
      RETURNING id, queue
    ), stored AS (
      INSERT INTO ${s}.outbox (id, topic, key, payload, headers, run_at, expires_at, priority, group_key)
      SELECT id, topic, key, payload, headers, run_at, expires_at, priority, group_key
      FROM ${input} i
      WHERE NOT EXISTS (SELECT 1 FROM ${s}.direct_routes r WHERE ('.' || i.topic) ~ r.topic_regex)
      ORDER BY ord
      RETURNING id
    )
    SELECT id, false AS queued, CASE WHEN $10::boolean THEN pg_notify($11::text, '') END AS notified FROM stored
    UNION ALL
    SELECT id, true, CASE WHEN $10::boolean THEN pg_notify($12::text, queue) END FROM queued`;
  // The common case, a topic with no direct route, in a lighter statement that
  // touches only the outbox: it inserts nothing when a direct route matches, and
  // publish then runs insertOne, which writes the queue rows.
  const outboxOnly = `
    INSERT INTO ${s}.outbox (id, topic, key, payload, headers, run_at, expires_at, priority, group_key)
    SELECT $1::uuid, $2::text, $3::text, $4::jsonb, $5::jsonb, $6::timestamptz, $7::timestamptz, $8::smallint, $9::text
    WHERE NOT EXISTS (SELECT 1 FROM ${s}.direct_routes r WHERE ('.' || $2::text) ~ r.topic_regex)
      AND ($3::text IS NULL
           OR (SELECT true FROM (SELECT pg_advisory_xact_lock(hashtextextended($3::text, ${KEY_LOCK_SEED}))) l))
    RETURNING id`;
  const insertOne = `
    WITH locked AS (
      SELECT $1::uuid AS id, $2::text AS topic, $3::text AS key, $4::jsonb AS payload, $5::jsonb AS headers,
             $6::timestamptz AS run_at, $7::timestamptz AS expires_at, $8::smallint AS priority, $9::text AS group_key,
             1 AS ord
      WHERE $3::text IS NULL
         OR (SELECT true FROM (SELECT pg_advisory_xact_lock(hashtextextended($3::text, ${KEY_LOCK_SEED}))) l)
    )${publishTail('locked')}`;
  const insertMany = `
    WITH input AS (
      SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::timestamptz[], $7::timestamptz[],
                           $8::smallint[], $9::text[])
        WITH ORDINALITY AS t(id, topic, key, payload, headers, run_at, expires_at, priority, group_key, ord)
    ), locks AS (
      -- Sorted, so two publishers of overlapping key sets take the locks in one order.
      SELECT pg_advisory_xact_lock(hashtextextended(k, ${KEY_LOCK_SEED}))
      FROM (SELECT DISTINCT key AS k FROM input WHERE key IS NOT NULL ORDER BY 1) keys
    ), locked AS (
      SELECT input.* FROM input, (SELECT count(*) FROM locks) taken
    )${publishTail('locked')}`;
  q = {
    outboxChannel: `${schema}.outbox`,
    queueChannel: `${schema}.queue`,
    insertOutboxOnly: outboxOnly,
    insertOutboxOnlyNotify: `WITH inserted AS (${outboxOnly}) SELECT id, pg_notify($10::text, '') FROM inserted`,
    insertOne,
    insertMany,
    // Head-of-key rule: a keyed row is claimable only when no earlier row with its
    // key is left in the outbox (claimed by another relay, waiting to retry, or a
    // prepared half message). So one key never has two rows in flight, and a stuck
    // key holds back only itself. SKIP LOCKED lets any number of relays claim at once.
    claim: `
      SELECT o.seq, o.id, o.topic, o.key, o.payload::text AS payload, o.headers::text AS headers,
             o.run_at, o.expires_at, o.attempts, o.created_at, o.priority, o.group_key
      FROM ${s}.outbox o
      WHERE o.state = 'ready'
        AND o.available_at <= coalesce($2::timestamptz, now())
        AND (o.key IS NULL OR NOT EXISTS (
              SELECT 1 FROM ${s}.outbox p WHERE p.key = o.key AND p.seq < o.seq))
      ORDER BY o.seq
      LIMIT $1
      FOR UPDATE SKIP LOCKED`,
    deleteDelivered: `DELETE FROM ${s}.outbox WHERE seq = ANY($1::bigint[])`,
    retryLater: `
      UPDATE ${s}.outbox o
      SET attempts = o.attempts + 1,
          available_at = now() + f.delay_ms * interval '1 millisecond',
          last_error = f.error
      FROM unnest($1::bigint[], $2::double precision[], $3::text[]) AS f(seq, delay_ms, error)
      WHERE o.seq = f.seq`,
    deadLetter: `
      WITH f AS (
        SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) AS f(seq, reason, error)
      ), moved AS (
        DELETE FROM ${s}.outbox o USING f WHERE o.seq = f.seq RETURNING o.*
      )
      INSERT INTO ${s}.dead_letters (source, queue, id, topic, key, group_key, priority, payload, headers, reason, error, attempts, created_at)
      SELECT 'outbox', NULL, m.id, m.topic, m.key, m.group_key, m.priority, m.payload, m.headers, f.reason, f.error, m.attempts + $4::int, m.created_at
      FROM moved m JOIN f USING (seq)`,
    lag: `SELECT count(*)::int AS ready, extract(epoch FROM now() - min(created_at)) * 1000 AS oldest_ms
          FROM ${s}.outbox WHERE state = 'ready'`,
  };
  cache.set(schema, q);
  return q;
}
