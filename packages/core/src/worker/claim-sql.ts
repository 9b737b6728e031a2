import { epochMs } from '../shared/epoch-ms.js';
import { SCHEDULED_AHEAD_MS } from '../shared/scheduled.js';
import { statementsFor } from '../shared/statements.js';
import { HOT_KEY_ROWS, KEY_FRONT_SCANNED, KEY_HELD_WINDOW, KEY_HOLD_LIMIT, heldWindowOf } from '../shared/held.js';
import { QUEUE_PARTS, eachSlot, eachSlotCount } from '../shared/queue-slots.js';

export { QUEUE_PARTS };

/**
 * A claim's batch size, as the literal its LIMIT is written with. A prepared claim
 * should run on one cached (generic) plan; Postgres keeps planning it again on every
 * call when the generic plan looks dearer than the custom ones, which a parameter LIMIT
 * (planned for a tenth of the queue) or a parameter in the time comparisons (default
 * selectivity instead of statistics) makes it. So the claims compare with now() and
 * take their LIMIT as a literal: one plan is cached per connection and batch size.
 * Checked to be an integer in range, so nothing but digits reaches the text.
 */
function batchLimit(batchSize: number): number {
  if (!Number.isSafeInteger(batchSize) || batchSize < 0 || batchSize > 10_000) {
    throw new RangeError(`batch size must be an integer from 0 to 10000, got ${String(batchSize)}`);
  }
  return batchSize;
}

/**
 * The worker's two claims, for one schema: `unlimited` for a queue with no flow limit in
 * force, `limited` for every other. Both lease a batch of `batchSize` messages: $1 queue,
 * $2 a fresh lease token (it fences the batch's completion, see `fence` in batch-sql.ts),
 * $3 the worker's name, $4 the lease in ms; `limited` also takes $5, the claiming slot's
 * token (its queue_leases row).
 *
 * Both keep the head-of-key rule of the outbox: a keyed message is claimable only when no
 * earlier message with its key is left in the queue, so at most one message per key is in
 * flight and keys are handled in order. Both lease their rows by ctid (see `leaseRows`):
 * the rows are locked by the claim (FOR UPDATE SKIP LOCKED), so their ctids hold.
 *
 * Both commit asynchronously (set_config(..., true): local to the claim's own
 * transaction, read at its commit). A claim lost because the server crashed before its
 * commit record reached disk simply did not happen: the messages are claimable again with
 * their old attempts, a bucket keeps its tokens (one extra burst after a crash) and a
 * lease row is gone with the lease. Only this worker saw the claim commit, and its
 * handling transaction fences on the lease token and commits synchronously, which flushes
 * all earlier WAL, the claim's commit record included: a handled message never rests on a
 * claim that can still be lost. A limited claim holds the queue's row lock until it
 * commits, so not waiting for the flush shortens every other claimer's wait.
 */
/**
 * Milliseconds since the message became due, at the claim: since its publish, or since
 * its run time when it was published with a delay (run_at is then not the enqueue time).
 * For the commit-to-handler latency of the worker's `handlerCalled` event.
 */
const sinceDue = `extract(epoch FROM now() - CASE WHEN m.run_at = m.enqueued_at THEN m.created_at
                                                  ELSE greatest(m.created_at, m.run_at) END)::float8 * 1000 AS since_due_ms`;

/** The most scheduled rows one sweep readies (see `readyScheduled`): a bounded transaction. */
export const SWEEP_LIMIT = 1_000;

/** The most groups with held rows one sweep looks at (see `releaseHeld`); the next goes on from the last. */
export const HELD_GROUPS_SWEPT = 500;

/**
 * Both claims' last step: leases the rows the CTE `c` locked ($2 token, $3 worker name,
 * $4 lease ms), counting the attempt, and returns them as `u`, with the ctid of their
 * leased version (the handling transaction takes them by it). The rows are fetched by
 * ctid from an array, so each is one TID fetch whatever the planner thinks of the
 * queue's size (a join with `c` became a hash join over a seq scan of the whole queue
 * once claims were large). A ctid names a row only within one partition, so each slot's
 * rows are updated in that partition by name (`c` carries their tableoid); through the
 * parent, one ctid would match a row in every slot.
 */
const leaseRows = (s: string): string => {
  const parts = Array.from({ length: QUEUE_PARTS }, (_, i) => `u${i} AS (
      UPDATE ${s}.queue_messages_${i} m
      SET lease_token = $2::uuid,
          locked_until = now() + $4::double precision * interval '1 millisecond',
          locked_by = $3::text,
          attempts = m.attempts + 1
      WHERE m.ctid = ANY(ARRAY(SELECT c.ctid FROM c WHERE c.tableoid = '${s}.queue_messages_${i}'::regclass))
      RETURNING m.seq, m.id, m.ctid, m.part, m.topic, m.key, m.group_key, m.payload, m.headers, m.priority, m.attempts,
                ${epochMs('m.created_at')} AS created_ms, m.expires_at <= now() AS expired, ${sinceDue}
    )`);
  return `${parts.join(', ')}, u AS (
      ${parts.map((_, i) => `SELECT * FROM u${i}`).join(' UNION ALL ')}
    )`;
};

/**
 * The sweeps' repairs of held rows start with these CTEs: `hv`, a skip scan over the
 * values of `col` (text) that have rows matching `held` (a test of the row `m`, matching
 * a partial index on (queue, col, seq)) in queue $1, after $2 (text; '' from the first),
 * each value `v` with its oldest such row's `seq`; `looked`, the first
 * {@link HELD_GROUPS_SWEPT} of them. One index probe a value.
 */
const heldValues = (s: string, col: string, held: string): string => `WITH RECURSIVE hv AS (
      (SELECT m.${col} AS v, m.seq FROM ${s}.queue_messages m
       WHERE m.queue = $1 AND ${held} AND m.${col} > $2::text ORDER BY m.${col}, m.seq LIMIT 1)
      UNION ALL
      SELECT n.v, n.seq FROM hv CROSS JOIN LATERAL (
        SELECT m.${col} AS v, m.seq FROM ${s}.queue_messages m
        WHERE m.queue = $1 AND ${held} AND m.${col} > hv.v ORDER BY m.${col}, m.seq LIMIT 1) n
    ), looked AS (
      SELECT * FROM hv LIMIT ${HELD_GROUPS_SWEPT}
    )`;

/**
 * The repairs' end: clears the held flag of the rows of CTE `picked`, and returns
 * `released` and `last`, the last value looked at when `looked` was full (the next sweep
 * goes on after it), else NULL (the next starts from the first).
 */
const releasedAndLast = (s: string): string => `${eachSlot(s, 'r', 'picked', 'held = false')}
    SELECT ${eachSlotCount('r')} AS released,
           CASE WHEN (SELECT count(*) FROM looked) = ${HELD_GROUPS_SWEPT} THEN (SELECT max(v) FROM looked) END AS last,
           set_config('synchronous_commit', 'off', true) AS async_commit`;

/**
 * Both claims' step after the lease: for each key whose head `u` leased (an ungrouped
 * message), its oldest held row joins the claim index (see held.ts), so a hot key keeps
 * its window. Only in a queue with rows held for their key: one probe of
 * queue_messages_held_key otherwise (a One-Time Filter), and the function not called.
 * Not a data-modifying CTE, so the claim's final SELECT names it (`keysReleased`).
 */
const unholdKeys = (s: string): string => `unheld_keys AS (
      SELECT ${s}.key_held_release($1, a.keys) AS n
      FROM (SELECT array_agg(u.key) AS keys FROM u WHERE u.key IS NOT NULL AND u.group_key IS NULL) a
      WHERE a.keys IS NOT NULL
        AND EXISTS (SELECT FROM ${s}.queue_messages h WHERE h.queue = $1 AND h.held AND h.group_key IS NULL)
    )`;

/** The claims' FROM item that runs `unholdKeys`: one row, whatever it did. */
const keysReleased = '(SELECT count(*) FROM unheld_keys) keys_released';

/**
 * The claims' tests against earlier messages of the same queue, for the row `m`: the
 * head-of-key rule and, with `groupWindow` (the limited claim, whose CTE `pre` gives
 * group_max), the group window. They are a lateral subquery, not part of the scan's
 * filter: the claim merges the ring slots' claim indexes, and the merge reads the first
 * passing row of every slot before it returns one, so a slot whose rows all wait behind
 * earlier ones in another slot (a keyed backlog that spans slots) would be read whole,
 * probe by probe, at every claim. Joined above the merge, the tests run once per row in
 * claim order, and only rows that pass them are locked.
 */
function inOrder(s: string, groupWindow: boolean): string {
  const tests = [`(m.key IS NULL OR NOT EXISTS (
          SELECT 1 FROM ${s}.queue_messages p
          WHERE p.queue = m.queue AND p.key = m.key AND p.seq < m.seq))`];
  if (groupWindow) {
    tests.push(`(m.group_key IS NULL OR (SELECT group_max FROM pre) IS NULL OR (
          SELECT count(*) FROM (
            SELECT 1 FROM ${s}.queue_messages p
            WHERE p.queue = m.queue AND p.group_key = m.group_key AND p.seq < m.seq
            LIMIT (SELECT group_max FROM pre)) e) < (SELECT group_max FROM pre))`);
  }
  return `
        SELECT WHERE ${tests.join('\n          AND ')}
        OFFSET 0`;
}

export const claimSql = statementsFor((s) => ({
  /**
   * The sweep of scheduled rows (see queue_messages.scheduled): clears the flag of up to
   * {@link SWEEP_LIMIT} rows of queue $1 due within {@link SCHEDULED_AHEAD_MS}, which puts
   * them in the claim index before they are due. Rows another transaction holds are
   * skipped, for the next sweep. Returns `cleared`; the limit reached means more may be
   * waiting. Committed asynchronously like the claims: a sweep lost in a crash leaves its
   * rows scheduled, for the next sweep to clear again.
   */
  readyScheduled: `
    WITH due AS (
      SELECT m.tableoid, m.ctid FROM ${s}.queue_messages m
      WHERE m.queue = $1 AND m.scheduled AND m.run_at <= now() + interval '${SCHEDULED_AHEAD_MS} milliseconds'
      LIMIT ${SWEEP_LIMIT}
      FOR UPDATE OF m SKIP LOCKED
    ), ${eachSlot(s, 'c', 'due', 'scheduled = false')}
    SELECT ${eachSlotCount('c')} AS cleared,
           set_config('synchronous_commit', 'off', true) AS async_commit`,

  /**
   * The sweep's repair of held rows (see held.ts), for up to {@link HELD_GROUPS_SWEPT}
   * groups of queue $1 that have held rows, in group order after $2 (text; '' from the
   * first). A claim clears a group's held rows as it leases the group's messages, but it
   * cannot clear a row whose publish had not committed yet: a group that drained meanwhile
   * keeps a held row at the front of its window, which no claim would see. So the
   * sweep clears, in each group whose oldest held row has fewer than group_max messages
   * before it, the held rows among its first 2 x group_max; in a queue without a group
   * limit (it was removed), every held row (up to {@link SWEEP_LIMIT} a group). Each group
   * is one probe of queue_messages_held and at most group_max entries of the group's
   * index. Returns `released` and `last`, the last group looked at, or NULL when none was
   * left after it (the next sweep starts from the first).
   */
  releaseHeld: `
    ${heldValues(s, 'group_key', 'm.held')}, lim AS (
      SELECT q.group_max_in_flight AS gmax, ${heldWindowOf('q')} AS w
      FROM (SELECT) one LEFT JOIN ${s}.queues q ON q.name = $1
    ), stalled AS (
      SELECT l.v FROM looked l, lim
      WHERE lim.gmax IS NULL OR (
        SELECT count(*) FROM (
          SELECT FROM ${s}.queue_messages p WHERE p.queue = $1 AND p.group_key = l.v AND p.seq < l.seq
          LIMIT lim.gmax) e) < lim.gmax
    ), picked AS (
      SELECT h.tableoid, h.ctid FROM stalled g, lim CROSS JOIN LATERAL (
        SELECT m.tableoid, m.ctid FROM ${s}.queue_messages m
        WHERE m.queue = $1 AND m.held AND m.group_key = g.v
          AND (lim.gmax IS NULL OR m.seq <= (
                SELECT max(w.seq) FROM (
                  SELECT p.seq FROM ${s}.queue_messages p WHERE p.queue = $1 AND p.group_key = g.v
                  ORDER BY p.seq LIMIT lim.w) w))
        ORDER BY m.seq LIMIT ${SWEEP_LIMIT}
        FOR UPDATE OF m SKIP LOCKED) h
    ), ${releasedAndLast(s)}`,

  /**
   * The sweep's hold of hot keys (see held.ts): the keys of queue $1 with more than
   * {@link HOT_KEY_ROWS} ungrouped messages among the first {@link KEY_FRONT_SCANNED} of
   * the claim order (the rows a claim walks before it finds others) keep their first
   * {@link KEY_HELD_WINDOW} in the claim index; up to {@link KEY_HOLD_LIMIT} of the rest
   * are held, shared among the keys, the next sweep going on. Returns `held`. Committed
   * asynchronously: a hold lost in a crash is only done again.
   */
  holdKeyTails: `
    WITH front AS (
      SELECT m.key, m.group_key FROM ${s}.queue_messages m
      WHERE m.queue = $1 AND NOT m.scheduled AND NOT m.held
      ORDER BY m.claim_rank, m.seq LIMIT ${KEY_FRONT_SCANNED}
    ), hot AS (
      SELECT array_agg(f.key) AS keys, count(*)::int AS n FROM (
        SELECT f.key FROM front f WHERE f.key IS NOT NULL AND f.group_key IS NULL
        GROUP BY f.key HAVING count(*) > ${HOT_KEY_ROWS}) f
    ), picked AS (
      SELECT r.held_table AS tableoid, r.held_ctid AS ctid
      FROM hot, ${s}.key_tails_to_hold($1, hot.keys, ${KEY_HELD_WINDOW}, ${KEY_HOLD_LIMIT} / greatest(hot.n, 1)) r
      WHERE hot.n > 0
    ), ${eachSlot(s, 'h', 'picked', 'held = true')}
    SELECT ${eachSlotCount('h')} AS held,
           set_config('synchronous_commit', 'off', true) AS async_commit`,

  /**
   * The sweep's repair of rows held for their key (see held.ts), for up to
   * {@link HELD_GROUPS_SWEPT} keys of queue $1 with held rows, in key order after $2
   * (text; '' from the first): the held rows among each key's first
   * {@link KEY_HELD_WINDOW} messages are cleared. A claim clears a key's oldest held row
   * as it leases the key's head, but not a row held after it looked (the sweep's hold
   * committing meanwhile), nor one whose key lost messages another way (expired,
   * dead-lettered, deleted by an operator). Returns `released` and `last`, as
   * `releaseHeld`.
   */
  releaseKeyHeld: `
    ${heldValues(s, 'key', 'm.held AND m.group_key IS NULL')}, picked AS (
      SELECT h.tableoid, h.ctid FROM looked k CROSS JOIN LATERAL (
        SELECT m.tableoid, m.ctid FROM ${s}.queue_messages m
        WHERE m.queue = $1 AND m.key = k.v AND m.held AND m.group_key IS NULL
          AND m.seq <= (
                SELECT max(w.seq) FROM (
                  SELECT p.seq FROM ${s}.queue_messages p WHERE p.queue = $1 AND p.key = k.v
                  ORDER BY p.seq LIMIT ${KEY_HELD_WINDOW}) w)
        ORDER BY m.seq LIMIT ${KEY_HELD_WINDOW}
        FOR UPDATE OF m SKIP LOCKED) h
    ), ${releasedAndLast(s)}`,

  /**
   * The claim of a queue with no flow limit in force: no flow functions, no bucket or
   * lease rows. It claims only while the queue row shows no limit and no pause (read in
   * the claim's own snapshot, so a limit set at run time stops it at once); otherwise it
   * claims nothing and returns one row with lean = false, and the worker claims with
   * `limited`. With nothing to claim: one row of NULLs, lean true.
   */
  unlimited: (batchSize: number): string => `
    WITH g AS (
      SELECT coalesce(NOT f.limited, true) AS lean,
             set_config('synchronous_commit', 'off', true) AS async_commit
      FROM (SELECT) one LEFT JOIN LATERAL (
        SELECT (q.max_in_flight IS NOT NULL OR q.rate_per_second IS NOT NULL
                OR q.group_max_in_flight IS NOT NULL OR q.group_rate_per_second IS NOT NULL
                OR q.paused_at IS NOT NULL) AS limited
        FROM ${s}.queues q WHERE q.name = $1
      ) f ON true
    ), c AS (
      SELECT m.tableoid, m.ctid
      FROM ${s}.queue_messages m
      CROSS JOIN LATERAL (${inOrder(s, false)}) in_order
      WHERE (SELECT lean FROM g)
        AND m.queue = $1
        AND NOT m.scheduled
        AND NOT m.held
        AND m.run_at <= now()
        AND (m.locked_until IS NULL OR m.locked_until < now())
      ORDER BY m.claim_rank, m.seq
      LIMIT ${batchLimit(batchSize)}
      FOR UPDATE OF m SKIP LOCKED
    ), ${leaseRows(s)}, ${unholdKeys(s)}
    SELECT u.*, false AS counted, NULL::float8 AS wait_ms, g.lean FROM g LEFT JOIN u ON true, ${keysReleased}`,

  /**
   * The claim of a queue with flow limits (migration 0001: flow_prepare, flow_grant), in
   * three steps:
   * 1. pre (flow_prepare, no lock): the group limits the scan needs. The scan is gated
   *    on its row (One-Time Filter).
   * 2. c0: the scan locks up to a batch of candidates FOR UPDATE SKIP LOCKED, in parallel
   *    with other claimers, and applies the group rules:
   *    - group window: a grouped message is claimable only when fewer than group_max
   *      earlier messages of its group are left in the queue, so the leased ones are
   *      always among the group's first group_max. Like the head-of-key rule it needs no
   *      lock: an old snapshot sees more earlier messages, never fewer.
   *    - group rate: a group with no whole token is skipped in the scan, so a noisy
   *      group does not stop the others (the levels may be stale here; step 3 decides).
   * 3. fq (flow_grant, after the scan: its argument counts c0): when the queue has a
   *    global limit or a rate, takes the queue's row lock, held until this statement
   *    commits, reads the in-flight count and the buckets with a fresh snapshot and gives
   *    the quota; c keeps that many candidates in claim order, and per group no more than
   *    its tokens. Only the grant, the UPDATE and the lease and bucket rows run under the
   *    lock, not the scan.
   * 4. unheld (held_to_release): for each group it leased, as many of the group's held rows
   *    (see held.ts) leave the held tail, oldest first, so the claim index keeps the
   *    group's next ones.
   * The bucket rows' level is recomputed from their newest version (no other claimer can
   * have changed them: the queue lock is held), minus what was claimed. A batch of a
   * queue with max_in_flight is recorded in its slot's queue_leases row ($5): each claim
   * of the slot rewrites it (a HOT update, no index entry left behind) and the ack
   * releases it. A counted claim that leased nothing releases the slot's row if it is
   * still live: the slot is claiming, so nothing of it is in flight (a handling
   * transaction that failed leaves it live). With nothing claimed: one row of NULLs with
   * wait_ms, when a limit binds.
   */
  limited: (batchSize: number): string => `
    WITH pre AS (
      SELECT * FROM ${s}.flow_prepare($1, now())
    ), c0 AS (
      SELECT m.tableoid, m.ctid, m.seq, m.claim_rank, m.group_key
      FROM ${s}.queue_messages m
      CROSS JOIN LATERAL (${inOrder(s, true)}) in_order
      WHERE (SELECT ready FROM pre)
        -- An operator's pause (queues.paused_at): an uncorrelated test, so a One-Time Filter.
        AND NOT EXISTS (SELECT 1 FROM ${s}.queues pq WHERE pq.name = $1 AND pq.paused_at IS NOT NULL)
        AND m.queue = $1
        AND NOT m.scheduled
        AND NOT m.held
        AND m.run_at <= now()
        AND (m.locked_until IS NULL OR m.locked_until < now())
        AND (m.group_key IS NULL OR (SELECT group_tokens FROM pre) IS NULL
             OR coalesce(((SELECT group_tokens FROM pre) ->> m.group_key)::int, 1) >= 1)
      ORDER BY m.claim_rank, m.seq
      LIMIT ${batchLimit(batchSize)}
      FOR UPDATE OF m SKIP LOCKED
    ), fq AS (
      SELECT f.*, pre.group_wait_ms
      FROM ${s}.flow_grant($1, (SELECT count(*)::int FROM c0), now()) f, pre,
           set_config('synchronous_commit', 'off', true) async_commit
    ), c AS (
      SELECT r.tableoid, r.ctid FROM (
        SELECT c0.*, row_number() OVER (PARTITION BY c0.group_key ORDER BY c0.claim_rank, c0.seq) AS rn,
               row_number() OVER (ORDER BY c0.claim_rank, c0.seq) AS n
        FROM c0
      ) r, fq
      WHERE r.n <= fq.quota
        AND (fq.group_tokens IS NULL OR r.group_key IS NULL
         OR r.rn <= coalesce((fq.group_tokens ->> r.group_key)::int, fq.group_burst))
    ), ${leaseRows(s)}, unheld AS (
      -- As many held rows of each group leased as it leased, oldest first (see held.ts):
      -- the group's next messages join the claim index as its window moves on.
      SELECT r.held_table AS tableoid, r.held_ctid AS ctid
      FROM (SELECT array_agg(g.group_key) AS groups, array_agg(g.n) AS counts
            FROM (SELECT u.group_key, count(*)::int AS n FROM u WHERE u.group_key IS NOT NULL GROUP BY u.group_key) g) a,
           ${s}.held_to_release($1, a.groups, a.counts) r
      WHERE (SELECT group_max FROM pre) IS NOT NULL
    ), ${eachSlot(s, 'unhold', 'unheld', 'held = false')}, ${unholdKeys(s)}, spent AS (
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
    ), leases AS (
      INSERT INTO ${s}.queue_leases AS l (queue, slot_token, messages, locked_until)
      SELECT $1, $5::uuid, count(*), now() + $4::double precision * interval '1 millisecond'
      FROM u, fq WHERE fq.counted HAVING count(*) > 0
      ON CONFLICT (queue, slot_token) DO UPDATE
      SET messages = excluded.messages, locked_until = excluded.locked_until
    ), released AS (
      UPDATE ${s}.queue_leases SET locked_until = '-infinity'
      WHERE queue = $1 AND slot_token = $5::uuid AND locked_until > now()
        AND NOT EXISTS (SELECT 1 FROM u) AND (SELECT counted FROM fq)
    )
    SELECT u.*, fq.counted, coalesce(fq.wait_ms, fq.group_wait_ms) AS wait_ms, true AS lean
    FROM fq LEFT JOIN u ON true, ${keysReleased}`,
}));
