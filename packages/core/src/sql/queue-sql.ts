import { quoteSchema } from '../schema-name.js';

/** The queue, inbox and dead-letter runtime queries for one schema. */
export interface QueueSql {
  readonly queueChannel: string;
  ensureQueues: string;
  enqueue: string;
  claim: string;
  fence: string;
  inboxInsertMany: string;
  inboxInsertOne: string;
  ack: string;
  retryLater: string;
  deadLetter: string;
  purgeInbox: string;
}

const cache = new Map<string, QueueSql>();

/** Returns (and caches) the queue queries for `schema`. */
export function queueSql(schema: string): QueueSql {
  let q = cache.get(schema);
  if (q) return q;
  const s = quoteSchema(schema);
  q = {
    queueChannel: `${schema}.queue`,
    ensureQueues: `INSERT INTO ${s}.queues (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING`,
    // Rows are inserted in array order, so within one batch seq follows the outbox's
    // seq. ON CONFLICT makes a repeated delivery (relay died before deleting its
    // outbox rows) a no-op. One NOTIFY per queue per batch wakes that queue's workers.
    enqueue: `
      WITH inserted AS (
        INSERT INTO ${s}.queue_messages (queue, id, topic, key, payload, headers, run_at, expires_at, created_at)
        SELECT q, id, topic, key, payload, headers, coalesce(run_at, now()), expires_at, created_at
        FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[],
                    $7::timestamptz[], $8::timestamptz[], $9::timestamptz[])
          AS t(q, id, topic, key, payload, headers, run_at, expires_at, created_at)
        ON CONFLICT (queue, id) DO NOTHING
        RETURNING queue
      )
      SELECT queue, pg_notify($10::text, queue) FROM (SELECT DISTINCT queue FROM inserted) d`,
    // Claim: lease a batch. Head-of-key rule as in the outbox: a keyed message is
    // claimable only when no earlier message with its key is left in the queue, so
    // at most one message per key is in flight and keys are handled in order.
    // A fresh lease token per claim fences completion (see `fence`).
    claim: `
      WITH c AS (
        SELECT m.queue, m.id
        FROM ${s}.queue_messages m
        WHERE m.queue = $1
          AND m.run_at <= coalesce($5::timestamptz, now())
          AND (m.locked_until IS NULL OR m.locked_until < coalesce($5::timestamptz, now()))
          AND (m.key IS NULL OR NOT EXISTS (
                SELECT 1 FROM ${s}.queue_messages p
                WHERE p.queue = m.queue AND p.key = m.key AND p.seq < m.seq))
        ORDER BY m.priority DESC, m.seq
        LIMIT $2
        FOR UPDATE SKIP LOCKED
      )
      UPDATE ${s}.queue_messages m
      SET lease_token = $3::uuid,
          locked_until = coalesce($5::timestamptz, now()) + $6::double precision * interval '1 millisecond',
          locked_by = $4::text,
          attempts = m.attempts + 1
      FROM c
      WHERE m.queue = c.queue AND m.id = c.id
      RETURNING m.seq, m.id, m.topic, m.key, m.payload, m.headers, m.priority, m.attempts,
                m.created_at, m.expires_at, m.expires_at <= coalesce($5::timestamptz, now()) AS expired`,
    // Lock our leased rows for the handling transaction. A row whose token changed was
    // re-leased by another worker after ours expired: it is not returned, and this
    // worker neither handles nor acks it. Holding the row lock keeps other workers'
    // claims (SKIP LOCKED) away for as long as the handler runs, lease or no lease.
    fence: `
      SELECT id FROM ${s}.queue_messages
      WHERE queue = $1 AND id = ANY($2::uuid[]) AND lease_token = $3::uuid
      FOR UPDATE`,
    inboxInsertMany: `
      INSERT INTO ${s}.inbox (consumer, message_id) SELECT $1, unnest($2::uuid[])
      ON CONFLICT DO NOTHING RETURNING message_id`,
    inboxInsertOne: `
      INSERT INTO ${s}.inbox (consumer, message_id) VALUES ($1, $2)
      ON CONFLICT DO NOTHING RETURNING message_id`,
    ack: `DELETE FROM ${s}.queue_messages WHERE queue = $1 AND id = ANY($2::uuid[])`,
    retryLater: `
      UPDATE ${s}.queue_messages m
      SET run_at = now() + f.delay_ms * interval '1 millisecond',
          lease_token = NULL, locked_until = NULL, locked_by = NULL,
          last_error = f.error
      FROM unnest($2::uuid[], $3::double precision[], $4::text[]) AS f(id, delay_ms, error)
      WHERE m.queue = $1 AND m.id = f.id`,
    deadLetter: `
      WITH f AS (
        SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[]) AS f(id, reason, error)
      ), moved AS (
        DELETE FROM ${s}.queue_messages m USING f WHERE m.queue = $1 AND m.id = f.id RETURNING m.*
      )
      INSERT INTO ${s}.dead_letters (source, queue, id, topic, key, payload, headers, priority, reason, error, attempts, created_at)
      SELECT 'queue', m.queue, m.id, m.topic, m.key, m.payload, m.headers, m.priority, f.reason, f.error, m.attempts, m.created_at
      FROM moved m JOIN f USING (id)`,
    purgeInbox: `
      DELETE FROM ${s}.inbox WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM ${s}.inbox WHERE processed_at < now() - $1::double precision * interval '1 millisecond' LIMIT $2))`,
  };
  cache.set(schema, q);
  return q;
}
