import { heldFrom } from '../shared/held.js';
import { claimRankFrom } from '../shared/claim-rank.js';
import { scheduledFrom } from '../shared/scheduled.js';
import { statementsFor } from '../shared/statements.js';

// A keyed message takes a transaction-level advisory lock on its key before its row gets
// its seq, so two transactions publishing one key are serialised until the first commits:
// per key, seq order is commit order, which the relay and the workers then keep by
// ordering on seq. 7337105 is sagabox's lock namespace (an arbitrary constant, so its
// locks are unlikely to meet an application's own); `prepare` takes the same lock.
//
// A message whose topic matches a direct route is written into that route's queues
// instead of the outbox, in the same statement. A repeated id is a no-op in a queue (ON
// CONFLICT on its key); in the outbox it is stored again and removed at delivery, by the
// same queue key or the consumers' inbox: the outbox has no unique index on id, which
// would cost every publish.

// The key's lock ($3), as a condition that is always true once the lock is held.
const KEY_LOCK = '(SELECT true FROM (SELECT pg_advisory_xact_lock(hashtextextended($3::text, 7337105))) l)';

// One message as the row `locked`, its key's lock taken ($1-$9 as `insertOutbox`).
const LOCK_ONE = `
    WITH locked AS (
      SELECT $1::uuid AS id, $2::text AS topic, $3::text AS key, $4::jsonb AS payload, $5::jsonb AS headers,
             $6::timestamptz AS run_at, $7::timestamptz AS expires_at, $8::smallint AS priority, $9::text AS group_key,
             1 AS ord
      WHERE $3::text IS NULL
         OR ${KEY_LOCK}
    )`;

/** The statements of {@link publish} for one schema. */
export const publishSql = statementsFor((s) => ({
  /**
   * The common case, one message of a topic without a direct route, touching only the
   * outbox, written straight into its ring slot's partition (index = the slot,
   * {@link idSlot}): no tuple routing. It takes seq from the parent's identity itself (a
   * partition of PostgreSQL 15 and 16 has none of its own), after its key's lock, so seq
   * order is commit order per key. Writes nothing when a direct route matches: publish
   * then runs `routeOne`. $1-$9: id, topic, key, payload, headers, run_at, expires_at,
   * priority, group_key; $10, in the shapes that NOTIFY, the outbox channel (sent at
   * commit). Indexed by slot, then by {@link statementShape}: a message without a key, or a
   * publish that sends no NOTIFY, runs a statement without that part of the filter.
   * Nothing is returned: publish reads the count of rows written.
   */
  insertOutbox: [0, 1, 2, 3].map((slot) => [0, 1, 2, 3].map((shape) => insertOutboxSlot(s, slot, shape))),

  /**
   * One message into the queues of the direct routes its topic matches, or into the
   * outbox when it matches none. $1-$9 as `insertOutbox`; $10 whether to NOTIFY, $11 the
   * outbox channel, $12 the queue channel (payload: the queue). One row per queue written
   * (`queued`) or for the outbox row.
   */
  routeOne: `${LOCK_ONE}${routeLocked(s)}`,

  /**
   * One message of a topic last seen on a direct route, written straight into its ring
   * slot's partition (index = the slot, {@link idSlot}): no tuple routing, no CTEs, no
   * outbox insert to set up. It takes seq from the parent's identity itself: a partition
   * of PostgreSQL 15 and 16 has no identity of its own. The key's lock is an InitPlan of
   * the filter, so it is taken before any row gets its seq. $1-$9 as `insertOutbox`, $10
   * whether to NOTIFY, $11 the queue channel. Nothing is returned: publish reads the count
   * of rows written, none when no direct route matches any more or every queue had the
   * id, which publish then tells apart with `routeOne`. Each matching route's queue is
   * NOTIFYed from the subquery (kept, as it calls a volatile function), so also when its
   * queue already had the id: a wake-up for nothing. Indexed by slot, then by
   * {@link queuedShape} (NOTIFY is decided by $10): a message of priority 0 runs a
   * statement that does not read its queue's aging (see claim-rank.ts), one without a
   * group one that does not look for its group's limit (see held.ts).
   */
  routeQueued: [0, 1, 2, 3].map((slot) => Array.from({ length: 8 }, (_, shape) => `
    INSERT INTO ${s}.queue_messages_${slot} (seq, queue, id, part, topic, key, payload, headers, run_at, expires_at, created_at, priority, group_key, scheduled, claim_rank${(shape & 4) !== 0 ? ', held' : ''})
    OVERRIDING SYSTEM VALUE
    SELECT nextval('${s}.queue_messages_seq_seq'::regclass), r.queue, $1::uuid, ${slot}, $2::text, $3::text, $4::jsonb, $5::jsonb,
           coalesce($6::timestamptz, now()), $7::timestamptz, now(), $8::smallint, $9::text, ${scheduledFrom('$6::timestamptz')},
           ${claimRankFrom(s, 'r.queue', (shape & 2) !== 0 ? '$8::smallint' : null, 'coalesce($6::timestamptz, now())')}${(shape & 4) !== 0 ? `,
           ${heldFrom(s, 'r.held_window', 'r.queue', '$9::text', '0')}` : ''}
    FROM (SELECT r.queue, r.held_window, CASE WHEN $10::boolean THEN pg_notify($11::text, r.queue) END AS notified
          FROM ${s}.direct_routes r
          WHERE ('.' || $2::text) ~ r.topic_regex${(shape & 1) !== 0 ? `
            AND ${KEY_LOCK}` : ''}
          OFFSET 0) r
    ON CONFLICT (queue, id, part) DO NOTHING`)),

  /** `routeOne` for many messages: $1-$9 one array per column, in publish order; $10-$12 as `routeOne`. */
  routeMany: `
    WITH input AS (
      SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::timestamptz[], $7::timestamptz[],
                           $8::smallint[], $9::text[])
        WITH ORDINALITY AS t(id, topic, key, payload, headers, run_at, expires_at, priority, group_key, ord)
    ), locks AS (
      -- Sorted, so two publishers of overlapping key sets take the locks in one order.
      SELECT pg_advisory_xact_lock(hashtextextended(k, 7337105))
      FROM (SELECT DISTINCT key AS k FROM input WHERE key IS NOT NULL ORDER BY 1) keys
    ), locked AS (
      SELECT input.* FROM input, (SELECT count(*) FROM locks) taken
    )${routeLocked(s)}`,
}));

/**
 * Which `insertOutbox` statement of a slot a message takes: +1 when it
 * has a key (its lock is taken), +2 when the publish sends the outbox NOTIFY ($10).
 */
export function statementShape(keyed: boolean, notify: boolean): number {
  return (keyed ? 1 : 0) + (notify ? 2 : 0);
}

/**
 * Which `routeQueued` statement of a slot a message takes: +1 when it has a key, +2 when
 * its priority is not 0, +4 when it has a group.
 */
export function queuedShape(keyed: boolean, prioritized: boolean, grouped: boolean): number {
  return (keyed ? 1 : 0) + (prioritized ? 2 : 0) + (grouped ? 4 : 0);
}

// The single-message outbox insert into slot `slot`'s partition (see `insertOutbox`). The
// filter's parts run in the order written, so a message that a direct route takes sends no
// outbox NOTIFY (one sent anyway would only wake a relay for nothing). A part a message
// does not need is left out of the text rather than skipped by a test on its parameter:
// PostgreSQL sets up every subplan of the plan on each execution, run or not.
function insertOutboxSlot(s: string, slot: number, shape: number): string {
  const filter = [`NOT EXISTS (SELECT 1 FROM ${s}.direct_routes r WHERE ('.' || $2::text) ~ r.topic_regex)`];
  if ((shape & 1) !== 0) filter.push(KEY_LOCK);
  if ((shape & 2) !== 0) filter.push(`(SELECT true FROM (SELECT pg_notify($10::text, '')) n)`);
  return `
      INSERT INTO ${s}.outbox_${slot} (seq, id, part, topic, key, payload, headers, run_at, expires_at, priority, group_key)
      OVERRIDING SYSTEM VALUE
      SELECT nextval('${s}.outbox_seq_seq'::regclass), $1::uuid, ${slot}, $2::text, $3::text, $4::jsonb, $5::jsonb,
             $6::timestamptz, $7::timestamptz, $8::smallint, $9::text
      WHERE ${filter.join('\n        AND ')}`;
}

// The part of routeOne and routeMany after `locked` (the messages, their keys locked, with
// their publish order in `ord`): each goes to the queues of the direct routes its topic
// matches, or to the outbox when none does, and the channels are NOTIFYed.
function routeLocked(s: string): string {
  return `, routed AS (
      SELECT i.*, r.queue, r.held_window, row_number() OVER (PARTITION BY r.queue, i.group_key ORDER BY i.ord) - 1 AS earlier
      FROM locked i JOIN ${s}.direct_routes r ON ('.' || i.topic) ~ r.topic_regex
    ), queued AS (
      INSERT INTO ${s}.queue_messages (queue, id, part, topic, key, payload, headers, run_at, expires_at, created_at, priority, group_key, scheduled, claim_rank, held)
      SELECT queue, id, ${s}.queue_part(id), topic, key, payload, headers, coalesce(run_at, now()), expires_at, now(), priority, group_key,
             ${scheduledFrom('run_at')}, ${claimRankFrom(s, 'queue', 'priority', 'coalesce(run_at, now())')},
             ${heldFrom(s, 'routed.held_window', 'routed.queue', 'routed.group_key', 'routed.earlier')}
      FROM routed ORDER BY ord
      ON CONFLICT (queue, id, part) DO NOTHING
      RETURNING id, queue
    ), stored AS (
      INSERT INTO ${s}.outbox (id, part, topic, key, payload, headers, run_at, expires_at, priority, group_key)
      SELECT id, ${s}.queue_part(id), topic, key, payload, headers, run_at, expires_at, priority, group_key
      FROM locked i
      WHERE NOT EXISTS (SELECT 1 FROM ${s}.direct_routes r WHERE ('.' || i.topic) ~ r.topic_regex)
      ORDER BY ord
      RETURNING id
    )
    SELECT id, false AS queued, CASE WHEN $10::boolean THEN pg_notify($11::text, '') END AS notified FROM stored
    UNION ALL
    SELECT id, true, CASE WHEN $10::boolean THEN pg_notify($12::text, queue) END FROM queued`;
}

/**
 * The ring slot of queue_messages and of the outbox a message id goes to: what the migration's
 * queue_part(id) computes, bits 2-3 of the id's fifth byte (bits 10-11 of a UUIDv7's
 * milliseconds). The id is a checked UUID in canonical form.
 */
export function idSlot(id: string): number {
  return (parseInt(id.slice(9, 11), 16) >> 2) & 3;
}
