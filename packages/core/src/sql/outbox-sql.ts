import { quoteSchema } from '../schema-name.js';

/**
 * The outbox's runtime queries for one schema. Every value is a bind parameter; the
 * validated, quoted schema name is the only thing spliced into the text.
 */
export interface OutboxSql {
  readonly outboxChannel: string;
  readonly queueChannel: string;
  insertOne: string;
  insertOneNotify: string;
  insertMany: string;
  insertManyNotify: string;
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
  // lets the relay deliver per key in commit order by ordering on seq alone.
  const insertOne = `
    INSERT INTO ${s}.outbox (id, topic, key, payload, headers, run_at, expires_at, priority, group_key)
    SELECT $1::uuid, $2::text, $3::text, $4::jsonb, $5::jsonb, $6::timestamptz, $7::timestamptz, $8::smallint, $9::text
    WHERE $3::text IS NULL
       OR (SELECT true FROM (SELECT pg_advisory_xact_lock(hashtextextended($3::text, ${KEY_LOCK_SEED}))) l)
    ON CONFLICT (id) DO NOTHING
    RETURNING id`;
  const insertMany = `
    WITH input AS (
      SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::timestamptz[], $7::timestamptz[],
                           $8::smallint[], $9::text[])
        WITH ORDINALITY AS t(id, topic, key, payload, headers, run_at, expires_at, priority, group_key, ord)
    ), locks AS (
      -- Sorted, so two publishers of overlapping key sets take the locks in one order.
      SELECT pg_advisory_xact_lock(hashtextextended(k, ${KEY_LOCK_SEED}))
      FROM (SELECT DISTINCT key AS k FROM input WHERE key IS NOT NULL ORDER BY 1) keys
    )
    INSERT INTO ${s}.outbox (id, topic, key, payload, headers, run_at, expires_at, priority, group_key)
    SELECT id, topic, key, payload, headers, run_at, expires_at, priority, group_key
    FROM input, (SELECT count(*) FROM locks) taken
    ORDER BY ord
    ON CONFLICT (id) DO NOTHING
    RETURNING id`;
  const notify = (insert: string, param: number) =>
    `WITH inserted AS (${insert}) SELECT id, pg_notify($${param}::text, '') FROM inserted`;
  q = {
    outboxChannel: `${schema}.outbox`,
    queueChannel: `${schema}.queue`,
    insertOne,
    insertOneNotify: notify(insertOne, 10),
    insertMany,
    insertManyNotify: notify(insertMany, 10),
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
