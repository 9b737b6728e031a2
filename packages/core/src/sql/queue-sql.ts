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
  releaseLease: string;
  purgeBuckets: string;
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
        INSERT INTO ${s}.queue_messages (queue, id, topic, key, payload, headers, run_at, expires_at, created_at, priority, group_key)
        SELECT q, id, topic, key, payload, headers, coalesce(run_at, now()), expires_at, created_at, priority, group_key
        FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[],
                    $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $11::smallint[], $12::text[])
          AS t(q, id, topic, key, payload, headers, run_at, expires_at, created_at, priority, group_key)
        ON CONFLICT (queue, id) DO NOTHING
        RETURNING queue
      )
      SELECT queue, pg_notify($10::text, queue) FROM (SELECT DISTINCT queue FROM inserted) d`,
    // Claim: lease a batch. Head-of-key rule as in the outbox: a keyed message is
    // claimable only when no earlier message with its key is left in the queue, so
    // at most one message per key is in flight and keys are handled in order.
    // A fresh lease token per claim fences completion (see `fence`).
    //
    // Flow control (migration 0003): flow_quota runs first, once, and gives the LIMIT
    // (global in-flight and rate limits; it holds the queue's row lock until this
    // statement commits when such limits exist) and the group limits:
    // - group window: a grouped message is claimable only when fewer than group_max
    //   earlier messages of its group are left in the queue, so the leased ones are
    //   always among the group's first group_max and never more than group_max. Like
    //   the head-of-key rule it needs no lock: an old snapshot sees more earlier
    //   messages, never fewer.
    // - group rate: a group with no whole token is skipped in the scan, so a noisy
    //   group does not stop the others; the window function then keeps each group's
    //   share of the batch within its tokens.
    // The UPDATE of the bucket rows recomputes the level from their newest version
    // (no other claimer can have changed them: the queue lock is held), minus what
    // was claimed; a batch of a queue with max_in_flight is recorded in queue_leases.
    // The LEFT JOIN returns one row of NULLs with wait_ms when nothing was claimed.
    claim: `
      WITH fq AS (
        SELECT * FROM ${s}.flow_quota($1, $2, coalesce($5::timestamptz, now()))
      ), c0 AS (
        SELECT m.queue, m.id, m.seq, m.priority, m.group_key
        FROM ${s}.queue_messages m
        WHERE m.queue = $1
          AND m.run_at <= coalesce($5::timestamptz, now())
          AND (m.locked_until IS NULL OR m.locked_until < coalesce($5::timestamptz, now()))
          AND (m.key IS NULL OR NOT EXISTS (
                SELECT 1 FROM ${s}.queue_messages p
                WHERE p.queue = m.queue AND p.key = m.key AND p.seq < m.seq))
          AND (m.group_key IS NULL OR (SELECT group_max FROM fq) IS NULL OR (
                SELECT count(*) FROM (
                  SELECT 1 FROM ${s}.queue_messages p
                  WHERE p.queue = m.queue AND p.group_key = m.group_key AND p.seq < m.seq
                  LIMIT (SELECT group_max FROM fq)) e) < (SELECT group_max FROM fq))
          AND (m.group_key IS NULL OR (SELECT group_tokens FROM fq) IS NULL
               OR coalesce(((SELECT group_tokens FROM fq) ->> m.group_key)::int, 1) >= 1)
        ORDER BY m.priority DESC, m.seq
        -- A plain LIMIT $2 (not the quota) keeps the planner's estimates at batch size:
        -- a subquery LIMIT is estimated at a tenth of the table, which turns the UPDATE
        -- below into a hash join over the whole queue and the statement into a JIT
        -- candidate. Rows over the quota are locked for this statement only, then dropped.
        LIMIT $2
        FOR UPDATE SKIP LOCKED
      ), c AS (
        SELECT r.queue, r.id FROM (
          SELECT c0.*, row_number() OVER (PARTITION BY c0.group_key ORDER BY c0.priority DESC, c0.seq) AS rn,
                 row_number() OVER (ORDER BY c0.priority DESC, c0.seq) AS n
          FROM c0
        ) r, fq
        WHERE r.n <= fq.quota
          AND (fq.group_tokens IS NULL OR r.group_key IS NULL
           OR r.rn <= coalesce((fq.group_tokens ->> r.group_key)::int, fq.group_burst))
      ), u AS (
        UPDATE ${s}.queue_messages m
        SET lease_token = $3::uuid,
            locked_until = coalesce($5::timestamptz, now()) + $6::double precision * interval '1 millisecond',
            locked_by = $4::text,
            attempts = m.attempts + 1
        FROM c
        WHERE m.queue = c.queue AND m.id = c.id
        RETURNING m.seq, m.id, m.topic, m.key, m.group_key, m.payload, m.headers, m.priority, m.attempts,
                  m.created_at, m.expires_at, m.expires_at <= coalesce($5::timestamptz, now()) AS expired
      ), spent AS (
        SELECT '' AS group_key, count(*)::float8 AS n FROM u, fq WHERE fq.rate IS NOT NULL HAVING count(*) > 0
        UNION ALL
        SELECT u.group_key, count(*)::float8 FROM u, fq WHERE fq.group_rate IS NOT NULL AND u.group_key IS NOT NULL GROUP BY u.group_key
      ), buckets AS (
        INSERT INTO ${s}.queue_buckets AS b (queue, group_key, tokens, refilled_at)
        SELECT $1, sp.group_key,
               CASE WHEN sp.group_key = '' THEN fq.burst ELSE fq.group_burst END - sp.n,
               coalesce($5::timestamptz, now())
        FROM spent sp, fq
        ON CONFLICT (queue, group_key) DO UPDATE
        SET tokens = ${s}.bucket_level(b.tokens, b.refilled_at,
                       (SELECT CASE WHEN b.group_key = '' THEN fq.rate ELSE fq.group_rate END FROM fq),
                       (SELECT CASE WHEN b.group_key = '' THEN fq.burst ELSE fq.group_burst END FROM fq),
                       excluded.refilled_at)
                     - ((SELECT CASE WHEN b.group_key = '' THEN fq.burst ELSE fq.group_burst END FROM fq) - excluded.tokens),
            refilled_at = excluded.refilled_at
      ), leases AS (
        INSERT INTO ${s}.queue_leases (queue, lease_token, messages, locked_until)
        SELECT $1, $3::uuid, count(*), coalesce($5::timestamptz, now()) + $6::double precision * interval '1 millisecond'
        FROM u, fq WHERE fq.counted HAVING count(*) > 0
      )
      SELECT u.*, fq.counted, fq.wait_ms FROM fq LEFT JOIN u ON true`,
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
    // A batch of a queue with max_in_flight stops counting when its transaction commits.
    releaseLease: `DELETE FROM ${s}.queue_leases WHERE queue = $1 AND lease_token = $2::uuid`,
    // Group buckets that have refilled to the brim say nothing a missing row does not.
    purgeBuckets: `
      DELETE FROM ${s}.queue_buckets b USING ${s}.queues q
      WHERE b.queue = $1 AND q.name = b.queue AND b.group_key <> ''
        AND (q.group_rate_per_second IS NULL
             OR ${s}.bucket_level(b.tokens, b.refilled_at, q.group_rate_per_second,
                  coalesce(q.group_burst, greatest(1, ceil(q.group_rate_per_second / 10))), now())
                >= coalesce(q.group_burst, greatest(1, ceil(q.group_rate_per_second / 10))))`,
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
      INSERT INTO ${s}.dead_letters (source, queue, id, topic, key, group_key, payload, headers, priority, reason, error, attempts, created_at)
      SELECT 'queue', m.queue, m.id, m.topic, m.key, m.group_key, m.payload, m.headers, m.priority, f.reason, f.error, m.attempts, m.created_at
      FROM moved m JOIN f USING (id)`,
    purgeInbox: `
      DELETE FROM ${s}.inbox WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM ${s}.inbox WHERE processed_at < now() - $1::double precision * interval '1 millisecond' LIMIT $2))`,
  };
  cache.set(schema, q);
  return q;
}
