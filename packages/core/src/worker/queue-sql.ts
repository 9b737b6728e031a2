import { quoteSchema } from '../shared/schema-name.js';

/** The queue, inbox and dead-letter runtime queries for one schema. */
export interface QueueSql {
  readonly queueChannel: string;
  /**
   * The flow-control claim of `batchSize` messages: $1 queue, $2 lease token, $3 worker
   * name, $4 lease ms, $5 the claiming slot's token (its queue_leases row).
   */
  claim: (batchSize: number) => string;
  /** The claim of a queue with no flow limit in force; parameters as `claim` but $5. */
  claimUnlimited: (batchSize: number) => string;
  /**
   * The claim of a queue whose limits in force are all global (no group limit, no aging
   * due); parameters as `claim`, and $6 the batch size the slot may reserve (0: none).
   */
  claimGlobal: (batchSize: number) => string;
  /**
   * The claim of a slot that holds its share of the queue's global limits (migration
   * 0008); parameters as `claim`, and $6 the max_in_flight its reservation was granted
   * under (null: none), $7 the rate its allowance was drawn under (null: none).
   */
  claimReserved: (batchSize: number) => string;
  /** Ends the standing reservations of a stopping worker's slots: $1 queue, $2 slot tokens. */
  releaseSlots: string;
  purgeBuckets: string;
  purgeLeases: string;
}

const cache = new Map<string, QueueSql>();

/**
 * A claim's batch size, as the literal its LIMIT is written with. A prepared claim
 * should run on one cached (generic) plan; Postgres keeps planning it again on every
 * call (0.3-1 ms a claim here) when the generic plan looks dearer than the custom
 * ones, which a parameter LIMIT (planned for a tenth of the queue) or a parameter in
 * the time comparisons (default selectivity instead of statistics) makes it. So the
 * claims compare with now() and take their LIMIT as a literal: one plan is cached per
 * connection and batch size. Checked to be an integer in range, so nothing but digits
 * reaches the text.
 */
function batchLimit(batchSize: number): number {
  if (!Number.isSafeInteger(batchSize) || batchSize < 0 || batchSize > 10_000) {
    throw new RangeError(`batch size must be an integer from 0 to 10000, got ${String(batchSize)}`);
  }
  return batchSize;
}

/** Returns (and caches) the queue queries for `schema`. */
export function queueSql(schema: string): QueueSql {
  let q = cache.get(schema);
  if (q) return q;
  const s = quoteSchema(schema);
  // Every claim ends the same way: lease the rows its CTE \`c\` chose and return them.
  // By ctid: the rows are locked by the claim (FOR UPDATE SKIP LOCKED), so their ctids
  // hold. Joined to c row by row, each is one TID fetch however the planner sizes the
  // queue: a join on (queue, id) became a hash join over the whole queue when
  // statistics were stale, and `ctid = ANY (ARRAY(...))` (costed as ten TIDs) lost to
  // a sequential scan of a queue of a few pages -- pages that, between two vacuums,
  // are mostly dead rows of acked messages, so every claim of a quiet queue read them
  // all (about 0.1 ms of each claim, and of the commit-to-handler latency, here).
  const leaseRows = `
        UPDATE ${s}.queue_messages m
        SET lease_token = $2::uuid,
            locked_until = now() + $4::double precision * interval '1 millisecond',
            locked_by = $3::text,
            attempts = m.attempts + 1
        FROM c
        WHERE m.ctid = c.ctid
        RETURNING m.seq, m.id, m.topic, m.key, m.group_key, m.payload, m.headers, m.priority, m.attempts,
                  m.created_at, m.expires_at, m.expires_at <= now() AS expired`;
  // A counted batch's row in queue_leases, kept per claiming slot ($5, the slot's own
  // token) rather than per batch: each claim of the slot overwrites it and the ack marks
  // it released (see ackAndRelease). An UPDATE of a row keyed by the slot is a HOT
  // update that leaves no index entry behind, where an INSERT and a DELETE per batch
  // left one dead entry per batch that every grant's count walked over until a vacuum
  // (a thousand claims later, 0.1-0.3 ms more per grant). A slot has one batch in
  // flight at a time, so its row is that batch.
  const recordLease = `
        INSERT INTO ${s}.queue_leases AS l (queue, lease_token, messages, locked_until)
        SELECT $1, $5::uuid, count(*), now() + $4::double precision * interval '1 millisecond'
        FROM u, fq WHERE fq.counted HAVING count(*) > 0
        ON CONFLICT (queue, lease_token) DO UPDATE
        SET messages = excluded.messages, locked_until = excluded.locked_until, reserved_for = NULL`;
  // Releases the queue_leases rows `where` picks: a released row stops counting and
  // stays for its slot's next claim to rewrite (the workers' purge removes idle ones).
  const releaseLeases = (where: string): string => `
        UPDATE ${s}.queue_leases SET locked_until = '-infinity' WHERE ${where}`;
  // A counted claim that leased nothing releases its slot's row if it is still live: the
  // slot is claiming, so nothing of it is in flight. Such a row is a standing
  // reservation the slot no longer holds (the limits changed, 0008), or the batch of a
  // handling transaction that failed; left live, it would count until it ran out, and
  // after a limit is lowered the slots' old reservations would keep each other's grants
  // at zero until then.
  // `counted`: the grant's columns that say the queue counts in-flight messages.
  const releaseOwn = (counted: string): string => releaseLeases(`
          queue = $1 AND lease_token = $5::uuid AND locked_until > now()
          AND NOT EXISTS (SELECT 1 FROM u) AND (SELECT ${counted} FROM fq)`);
  // The candidate scan both lighter claims share: head-of-key rule, claim order, no
  // group rules. `gate` is the guard's boolean; `columns` what the rest needs.
  const plainScan = (gate: string, columns: string, limit: number): string => `
        SELECT ${columns}
        FROM ${s}.queue_messages m
        WHERE (${gate})
          AND m.queue = $1
          AND m.run_at <= now()
          AND (m.locked_until IS NULL OR m.locked_until < now())
          AND (m.key IS NULL OR NOT EXISTS (
                SELECT 1 FROM ${s}.queue_messages p
                WHERE p.queue = m.queue AND p.key = m.key AND p.seq < m.seq))
        ORDER BY m.priority DESC, m.seq
        LIMIT ${limit}
        FOR UPDATE SKIP LOCKED`;
  // The lighter claims' guard, read in the claim's own snapshot: lean is true unless
  // the queue row has a group limit, priority aging due (only the full claim ages), or
  // what `more` adds (conditions, each followed by OR). aging_only: false only because
  // aging is due, which one full claim settles (the worker does not keep to the full
  // claim for that). Also makes the claim's commit asynchronous (see `claim`).
  const guardOf = (limited: string, aging: string): string => `
        SELECT coalesce(NOT (f.limited OR f.aging), true) AS lean,
               coalesce(f.aging AND NOT f.limited, false) AS aging_only,
               set_config('synchronous_commit', 'off', true) AS async_commit
        FROM (SELECT) one LEFT JOIN LATERAL (
          SELECT (${limited} OR q.paused_at IS NOT NULL) AS limited, ${aging} AS aging
          FROM ${s}.queues q WHERE q.name = $1
        ) f ON true`;
  const agingDue = `(q.priority_aging_ms IS NOT NULL
                     AND (q.aged_at IS NULL OR q.aged_at <= now() - q.priority_aging_ms * interval '1 millisecond'))`;
  const guard = (more: string): string =>
    guardOf(`(${more} q.group_max_in_flight IS NOT NULL OR q.group_rate_per_second IS NOT NULL)`, agingDue);
  q = {
    queueChannel: `${schema}.queue`,
    // Claim: lease a batch. Head-of-key rule as in the outbox: a keyed message is
    // claimable only when no earlier message with its key is left in the queue, so
    // at most one message per key is in flight and keys are handled in order.
    // A fresh lease token per claim fences completion (see `fence` in batch-sql.ts).
    //
    // Flow control (migrations 0003, 0005), in three steps:
    // 1. pre (flow_prepare, no lock): priority aging, and the group limits the scan
    //    needs. The scan is gated on its row (One-Time Filter), so aging is done before
    //    the scan locks anything.
    // 2. c0: the scan locks up to $2 candidates FOR UPDATE SKIP LOCKED, in parallel with
    //    other claimers, and applies the group rules:
    //    - group window: a grouped message is claimable only when fewer than group_max
    //      earlier messages of its group are left in the queue, so the leased ones are
    //      always among the group's first group_max and never more than group_max. Like
    //      the head-of-key rule it needs no lock: an old snapshot sees more earlier
    //      messages, never fewer.
    //    - group rate: a group with no whole token is skipped in the scan, so a noisy
    //      group does not stop the others (the levels may be stale here; step 3 decides).
    // 3. fq (flow_grant, after the scan: its argument counts c0): when the queue has a
    //    global limit or a rate, takes the queue's row lock, held until this statement
    //    commits, reads the in-flight count and the buckets with a fresh snapshot and
    //    gives the quota; c keeps that many candidates in claim order, and per group no
    //    more than its tokens. Only the grant, the UPDATE and the lease and bucket rows
    //    run under the lock, not the scan, so limits that do not bind cost little.
    // The UPDATE of the bucket rows recomputes the level from their newest version
    // (no other claimer can have changed them: the queue lock is held), minus what
    // was claimed; a batch of a queue with max_in_flight is recorded in queue_leases.
    // The LEFT JOIN returns one row of NULLs with wait_ms when nothing was claimed.
    //
    // The claim commits asynchronously (set_config(..., true) in fq: local to this
    // statement's own transaction, read at its commit). Why that is safe: a claim that
    // is lost because the server crashed before its commit record reached disk simply
    // did not happen -- the messages are claimable again with their old attempts, the
    // bucket keeps its tokens (one extra burst after a crash) and the lease row is gone
    // with the lease. Nothing outside the database has seen the claim commit except
    // this worker, whose handling transaction fences on the lease token (it finds
    // nothing and does nothing after such a crash) and commits synchronously, which
    // flushes all earlier WAL, the claim's commit record included: a handled message
    // never rests on a claim that can still be lost. Why it matters: the claim of a
    // queue with a global limit holds the queue's row lock until it commits, so not
    // waiting for the WAL flush shortens every other claimer's wait; every claim,
    // limited or not, returns sooner.
    // The claim of a queue with no flow limit in force: no flow functions, no bucket
    // or lease rows, about half the work of `claim` per call. It claims only while the
    // queue row shows no limit and no priority aging due (the guard is read in the
    // claim's own snapshot, so a limit set at run time stops it at once) and otherwise
    // returns one row with lean = false and claims nothing: the worker then uses
    // claimGlobal or `claim` (which also does the aging). Same head-of-key rule, same
    // lease, same asynchronous commit as `claim` (see there).
    claimUnlimited: (batchSize) => {
      const limit = batchLimit(batchSize);
      return `
      WITH g AS (${guard('q.max_in_flight IS NOT NULL OR q.rate_per_second IS NOT NULL OR')}
      ), c AS (${plainScan('SELECT lean FROM g', 'm.ctid', limit)}
      ), u AS (${leaseRows}
      )
      SELECT u.*, false AS counted, NULL::float8 AS wait_ms, g.lean, g.aging_only FROM g LEFT JOIN u ON true`;
    },
    // The claim of a queue whose limits in force are only global ones (max_in_flight,
    // rate): `claim` without flow_prepare, the group rules and the window functions,
    // which such a queue does not need -- a third less work per call. The same guard
    // as claimUnlimited's, for group limits and aging only: when one is in force it
    // claims nothing and returns lean = false, and the worker uses `claim`. The grant,
    // the lease and the bucket row are `claim`'s (see there), global bucket only.
    claimGlobal: (batchSize) => {
      const limit = batchLimit(batchSize);
      return `
      WITH g AS (${guard('')}
      ), c0 AS (${plainScan('SELECT lean FROM g', 'm.ctid, m.priority, m.seq', limit)}
      ), fq AS (
        SELECT * FROM ${s}.flow_grant_slot($1, (SELECT count(*)::int FROM c0), now(), $5::uuid, $6::int)
      ), c AS (
        SELECT c0.ctid FROM c0 ORDER BY c0.priority DESC, c0.seq LIMIT (SELECT quota FROM fq)
      ), u AS (${leaseRows}
      ), buckets AS (
        INSERT INTO ${s}.queue_buckets AS b (queue, group_key, tokens, refilled_at)
        SELECT $1, '', fq.burst - count(*) - fq.allowance, now()
        FROM u, fq WHERE fq.rate IS NOT NULL GROUP BY fq.burst, fq.allowance HAVING count(*) > 0
        ON CONFLICT (queue, group_key) DO UPDATE
        SET tokens = ${s}.bucket_level(b.tokens, b.refilled_at, (SELECT rate FROM fq), (SELECT burst FROM fq), excluded.refilled_at)
                     - ((SELECT burst FROM fq) - excluded.tokens),
            refilled_at = excluded.refilled_at
      ), leases AS (
        -- As recordLease, or, when the grant made it a standing reservation (0008), the
        -- slot's row holds $6 messages for 1.5 leases under the limit it was granted under.
        INSERT INTO ${s}.queue_leases AS l (queue, lease_token, messages, locked_until, reserved_for)
        SELECT $1, $5::uuid, CASE WHEN fq.reserve THEN $6::int ELSE count(*)::int END,
               now() + CASE WHEN fq.reserve THEN 1.5 ELSE 1 END * $4::double precision * interval '1 millisecond',
               CASE WHEN fq.reserve THEN fq.max_in_flight END
        FROM u, fq WHERE fq.counted OR fq.reserve GROUP BY fq.reserve, fq.max_in_flight HAVING count(*) > 0
        ON CONFLICT (queue, lease_token) DO UPDATE
        SET messages = excluded.messages, locked_until = excluded.locked_until, reserved_for = excluded.reserved_for
      ), released AS (${releaseOwn('counted OR reserve')}
      )
      SELECT u.*, fq.counted, fq.wait_ms, g.lean, g.aging_only, fq.reserve, fq.max_in_flight, fq.rate, fq.allowance
      FROM g CROSS JOIN fq LEFT JOIN u ON true`;
    },
    // The claim of a slot that holds its share of the queue's global limits (0008): a
    // standing reservation of a batch against max_in_flight ($6, the limit it was
    // granted under), tokens drawn ahead from the rate's bucket ($7, the rate they were
    // drawn under; the worker counts them), or both. No queue lock, no grant, no bucket
    // or lease write: the unlimited claim's work plus two index probes. Its guard
    // claims nothing (lean = false) unless the queue's limits are still the ones the
    // share was taken under, none of the full claim's is in force, and the reservation,
    // if any, outlasts the lease this claim gives (so the batch stays counted however
    // long it runs). The reservation is renewed to 1.5 leases while it still has more
    // than a lease to run: never after it ran out, which another grant may have seen.
    claimReserved: (batchSize) => {
      const limit = batchLimit(batchSize);
      return `
      WITH g AS (${guardOf(`(q.max_in_flight IS DISTINCT FROM $6::int
                            OR q.rate_per_second IS DISTINCT FROM $7::double precision
                            OR q.group_max_in_flight IS NOT NULL OR q.group_rate_per_second IS NOT NULL
                            OR ($6::int IS NOT NULL AND NOT EXISTS (
                                  SELECT 1 FROM ${s}.queue_leases l
                                  WHERE l.queue = $1 AND l.lease_token = $5::uuid AND l.reserved_for = $6::int
                                    AND l.locked_until >= now() + $4::double precision * interval '1 millisecond')))`,
                          agingDue)}
      ), renewed AS (
        UPDATE ${s}.queue_leases l
        SET locked_until = now() + 1.5 * $4::double precision * interval '1 millisecond'
        WHERE l.queue = $1 AND l.lease_token = $5::uuid AND l.reserved_for = $6::int
          AND l.locked_until >= now() + $4::double precision * interval '1 millisecond'
          AND l.locked_until < now() + 1.25 * $4::double precision * interval '1 millisecond'
          AND (SELECT lean FROM g)
      ), c AS (${plainScan('SELECT lean FROM g', 'm.ctid', limit)}
      ), u AS (${leaseRows}
      )
      SELECT u.*, false AS counted, NULL::float8 AS wait_ms, g.lean, g.aging_only FROM g LEFT JOIN u ON true`;
    },
    claim: (batchSize) => {
      const limit = batchLimit(batchSize);
      return `
      WITH pre AS (
        SELECT * FROM ${s}.flow_prepare($1, now())
      ), c0 AS (
        SELECT m.ctid, m.seq, m.priority, m.group_key
        FROM ${s}.queue_messages m
        WHERE (SELECT ready FROM pre)
          -- An operator's pause (queues.paused_at): an uncorrelated test, so a One-Time Filter.
          AND NOT EXISTS (SELECT 1 FROM ${s}.queues pq WHERE pq.name = $1 AND pq.paused_at IS NOT NULL)
          AND m.queue = $1
          AND m.run_at <= now()
          AND (m.locked_until IS NULL OR m.locked_until < now())
          AND (m.key IS NULL OR NOT EXISTS (
                SELECT 1 FROM ${s}.queue_messages p
                WHERE p.queue = m.queue AND p.key = m.key AND p.seq < m.seq))
          AND (m.group_key IS NULL OR (SELECT group_max FROM pre) IS NULL OR (
                SELECT count(*) FROM (
                  SELECT 1 FROM ${s}.queue_messages p
                  WHERE p.queue = m.queue AND p.group_key = m.group_key AND p.seq < m.seq
                  LIMIT (SELECT group_max FROM pre)) e) < (SELECT group_max FROM pre))
          AND (m.group_key IS NULL OR (SELECT group_tokens FROM pre) IS NULL
               OR coalesce(((SELECT group_tokens FROM pre) ->> m.group_key)::int, 1) >= 1)
        ORDER BY m.priority DESC, m.seq
        -- A plain literal LIMIT (see batchLimit) keeps the planner's estimates at batch
        -- size: a subquery LIMIT is estimated at a tenth of the table, which made the
        -- statement a JIT candidate.
        LIMIT ${limit}
        FOR UPDATE SKIP LOCKED
      ), fq AS (
        SELECT f.*, pre.group_wait_ms
        FROM ${s}.flow_grant($1, (SELECT count(*)::int FROM c0), now()) f, pre,
             set_config('synchronous_commit', 'off', true) async_commit
      ), c AS (
        SELECT r.ctid FROM (
          SELECT c0.*, row_number() OVER (PARTITION BY c0.group_key ORDER BY c0.priority DESC, c0.seq) AS rn,
                 row_number() OVER (ORDER BY c0.priority DESC, c0.seq) AS n
          FROM c0
        ) r, fq
        WHERE r.n <= fq.quota
          AND (fq.group_tokens IS NULL OR r.group_key IS NULL
           OR r.rn <= coalesce((fq.group_tokens ->> r.group_key)::int, fq.group_burst))
      ), u AS (${leaseRows}
      ), spent AS (
        SELECT '' AS group_key, count(*)::float8 AS n FROM u, fq WHERE fq.rate IS NOT NULL HAVING count(*) > 0
        UNION ALL
        SELECT u.group_key, count(*)::float8 FROM u, fq WHERE fq.group_rate IS NOT NULL AND u.group_key IS NOT NULL GROUP BY u.group_key
      ), buckets AS (
        INSERT INTO ${s}.queue_buckets AS b (queue, group_key, tokens, refilled_at)
        SELECT $1, sp.group_key,
               CASE WHEN sp.group_key = '' THEN fq.burst ELSE fq.group_burst END - sp.n,
               now()
        FROM spent sp, fq
        ON CONFLICT (queue, group_key) DO UPDATE
        SET tokens = ${s}.bucket_level(b.tokens, b.refilled_at,
                       (SELECT CASE WHEN b.group_key = '' THEN fq.rate ELSE fq.group_rate END FROM fq),
                       (SELECT CASE WHEN b.group_key = '' THEN fq.burst ELSE fq.group_burst END FROM fq),
                       excluded.refilled_at)
                     - ((SELECT CASE WHEN b.group_key = '' THEN fq.burst ELSE fq.group_burst END FROM fq) - excluded.tokens),
            refilled_at = excluded.refilled_at
      ), leases AS (${recordLease}
      ), released AS (${releaseOwn('counted')}
      )
      SELECT u.*, fq.counted, coalesce(fq.wait_ms, fq.group_wait_ms) AS wait_ms FROM fq LEFT JOIN u ON true`;
    },
    // A stopping worker's slots have nothing in flight: their reservations (0008) end
    // now rather than when they run out. Exact rows are released by their acks.
    releaseSlots: releaseLeases('queue = $1 AND lease_token = ANY($2::uuid[]) AND reserved_for IS NOT NULL AND locked_until > now()'),
    // Group buckets that have refilled to the brim say nothing a missing row does not.
    // Lease rows of slots whose worker died without acking: they stopped counting when
    // they ran out (flow_grant), this removes them, and released rows of idle slots too
    // (a slot's next counted claim writes its row again).
    purgeLeases: `DELETE FROM ${s}.queue_leases WHERE queue = $1 AND locked_until <= now()`,
    purgeBuckets: `
      DELETE FROM ${s}.queue_buckets b USING ${s}.queues q
      WHERE b.queue = $1 AND q.name = b.queue AND b.group_key <> ''
        AND (q.group_rate_per_second IS NULL
             OR ${s}.bucket_level(b.tokens, b.refilled_at, q.group_rate_per_second,
                  coalesce(q.group_burst, greatest(1, ceil(q.group_rate_per_second / 10))), now())
                >= coalesce(q.group_burst, greatest(1, ceil(q.group_rate_per_second / 10))))`,
  };
  cache.set(schema, q);
  return q;
}
