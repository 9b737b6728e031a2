-- Why: a limit set far above what a queue ever reaches (a safety cap, a rate no
-- back end sees) still cost every claim of the queue its row lock, the grant's count,
-- a bucket row and a lease row, and every ack a release: 10-14% of the throughput at a
-- batch of 10, measured over two sessions. Trimming the grant's statements did not
-- help; the cost is the per-claim lock and writes. So, while a limit is far from
-- binding, a worker slot takes its share once and spends it over many claims:
--
--   * maxInFlight: a standing reservation. A slot's queue_leases row (one per slot
--     since 0005's successors) may hold a full batch's worth of the limit for the slot
--     however many messages it has in flight, from claim to claim, instead of the
--     batch's count from claim to ack. It is granted, under the queue lock like any
--     grant, only while the limit is far from binding (see flow_grant_slot), and is
--     valid only under the max_in_flight it was granted under (`reserved_for`): a
--     changed limit sends the slot back to the exact path, whose next grant rewrites
--     the row. Counting is unchanged: every live row counts, a reserved one for its
--     whole batch, so the limit holds across processes and versions exactly as before
--     and a reservation can only make the count larger than what is running.
--     A reserved row lives 1.5 leases and is renewed by the slot's claims while it
--     still has more than a lease to run, so a crashed slot stops counting within 1.5
--     leases (an exact row: 1 lease). A stopping worker releases its slots' rows.
--   * rate: an allowance. When the bucket is far from empty, the grant draws ten
--     batches' worth of tokens more than the batch needs and hands them to the slot,
--     which spends them (in memory) over its next claims within a second, without the
--     bucket. Tokens are still drawn from the bucket before they are spent, so over any
--     window the queue starts at most burst + rate x (window + 1 s) messages; a
--     changed rate voids every allowance (the claims check it).
--
-- A slot with its share claims with a statement that has no queue lock and no bucket
-- or lease write (claimReserved, queue-sql.ts). The full claim (group limits, aging)
-- keeps exact per-batch grants, through flow_grant.

-- migrate:up

ALTER TABLE queue_leases ADD COLUMN reserved_for integer;

-- flow_grant for one claiming slot (p_slot, its queue_leases row) with batches of
-- p_batch (0: never reserve nor draw an allowance). As flow_grant, plus:
--   * the slot's own row is not counted: this claim's lease row replaces it;
--   * reserve: record the slot's row as a standing reservation of p_batch, granted when
--     the other slots' count leaves the reservation within half of max_in_flight and a
--     batch is at most a sixteenth of it;
--   * allowance: tokens drawn beyond the batch, 10 x p_batch, when the bucket keeps
--     half of its burst afterwards.
CREATE FUNCTION flow_grant_slot(p_queue text, p_want integer, p_now timestamptz, p_slot uuid, p_batch integer)
RETURNS TABLE (
  quota         integer,
  counted       boolean,          -- the batch is counted by its own lease row (released at ack)
  reserve       boolean,          -- the batch is counted by a standing reservation of p_batch
  max_in_flight integer,
  allowance     integer,
  wait_ms       double precision,
  rate          double precision,
  burst         double precision
)
LANGUAGE plpgsql VOLATILE
ROWS 1 -- see flow_quota
SET search_path FROM CURRENT
AS $$
DECLARE
  q         queues%ROWTYPE;
  n         integer := p_want;
  busy      bigint;
  level     double precision;
  wait      double precision;
  v_burst   double precision;
  v_reserve boolean := false;
  v_allow   integer := 0;
BEGIN
  SELECT * INTO q FROM queues WHERE name = p_queue;
  IF p_want = 0 OR NOT FOUND OR (q.max_in_flight IS NULL AND q.rate_per_second IS NULL) THEN
    RETURN QUERY SELECT p_want, false, false, NULL::int, 0, NULL::float8, NULL::float8, NULL::float8;
    RETURN;
  END IF;

  -- As flow_grant: serialise this queue's grants until the claim commits.
  SELECT * INTO q FROM queues WHERE name = p_queue FOR UPDATE;

  IF q.max_in_flight IS NOT NULL THEN
    SELECT coalesce(sum(l.messages), 0) INTO busy FROM queue_leases l
    WHERE l.queue = p_queue AND l.locked_until > p_now AND l.lease_token <> p_slot;
    n := least(n, greatest(0, q.max_in_flight - busy));
    IF n = 0 THEN wait := 25; END IF;
    v_reserve := p_batch > 0 AND p_batch * 16 <= q.max_in_flight
                 AND busy + p_batch <= q.max_in_flight / 2;
  END IF;

  IF q.rate_per_second IS NOT NULL THEN
    v_burst := coalesce(q.burst, greatest(1, ceil(q.rate_per_second / 10)));
    SELECT bucket_level(b.tokens, b.refilled_at, q.rate_per_second, v_burst, p_now) INTO level
    FROM queue_buckets b WHERE b.queue = p_queue AND b.group_key = '';
    level := coalesce(level, v_burst);
    n := least(n, floor(level)::integer);
    IF level < 1 THEN wait := greatest(coalesce(wait, 0), (1 - level) / q.rate_per_second * 1000); END IF;
    IF p_batch > 0 AND level - n - 10 * p_batch >= v_burst / 2 THEN v_allow := 10 * p_batch; END IF;
  END IF;

  RETURN QUERY SELECT n, q.max_in_flight IS NOT NULL AND NOT v_reserve, v_reserve, q.max_in_flight,
                      v_allow, wait, q.rate_per_second, v_burst;
END
$$;

-- migrate:down

DROP FUNCTION flow_grant_slot(text, integer, timestamptz, uuid, integer);
ALTER TABLE queue_leases DROP COLUMN reserved_for;
