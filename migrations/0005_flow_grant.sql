-- Why: limits that do not bind should cost (almost) nothing. Through 0004 a limited
-- queue's claim took the queue's row lock first thing (flow_quota) and held it while
-- it scanned and locked its batch, updated it and committed, so every claim of the
-- queue, scan included, ran one at a time: limits set high enough never to bind cost
-- a third of the throughput. The claim now scans and locks its candidates first, in
-- parallel with the other claimers (FOR UPDATE SKIP LOCKED needs no queue lock), and
-- only then takes the queue lock, in flow_grant, to cut the batch to what the limits
-- allow; the lock covers the counts, the batch's UPDATE and the lease and bucket rows.
--
-- The work of flow_quota is split in two:
-- - flow_prepare, first, without the queue lock: priority aging and the group limits
--   the scan needs. Aging runs before the scan locks anything, because a row this
--   statement both locks and ages could not be updated again by the claim; and it
--   skips rows other claimers hold, because they may wait for the queue lock that
--   aging's UPDATE of aged_at holds (a deadlock otherwise).
-- - flow_grant, after the scan: the queue lock, then the in-flight count and the
--   buckets, read with a fresh snapshot after the lock is granted (see 0003), so the
--   limits stay exact across processes. It takes no lock when the scan found nothing.
-- Candidates the grant cuts stay locked by this statement until it commits; other
-- claimers skip them meanwhile, as they skip any batch being claimed.
--
-- flow_quota stays for workers of the previous release during a rolling upgrade: both
-- take the same lock and count the same rows, so old and new workers share the limits.

-- migrate:up

-- Aging (once per interval, as in flow_quota) and what the scan needs: the group
-- window and the groups without a whole token. The token levels here are read without
-- the lock and may be stale; flow_grant reads them again and the claim keeps to that.
CREATE FUNCTION flow_prepare(p_queue text, p_now timestamptz)
RETURNS TABLE (
  ready        boolean,          -- always true: the claim gates its scan on this row
  group_max     integer,
  group_tokens  jsonb,           -- {group: whole tokens} for groups below group_burst
  group_wait_ms double precision -- when a group has no whole token: when the first one will
)
LANGUAGE plpgsql VOLATILE
ROWS 1 -- see flow_quota
SET search_path FROM CURRENT
AS $$
DECLARE
  q        queues%ROWTYPE;
  v_gburst double precision;
  v_tokens jsonb;
  v_low    double precision;
BEGIN
  SELECT * INTO q FROM queues WHERE name = p_queue;
  IF NOT FOUND THEN
    RETURN QUERY SELECT true, NULL::int, NULL::jsonb, NULL::float8;
    RETURN;
  END IF;

  IF q.priority_aging_ms IS NOT NULL
     AND (q.aged_at IS NULL OR q.aged_at <= p_now - q.priority_aging_ms * interval '1 millisecond') THEN
    UPDATE queues SET aged_at = p_now
    WHERE name = p_queue AND (aged_at IS NULL OR aged_at <= p_now - q.priority_aging_ms * interval '1 millisecond');
    IF FOUND THEN
      UPDATE queue_messages m SET priority = m.priority + 1
      WHERE m.queue = p_queue AND m.id IN (
        SELECT a.id FROM queue_messages a
        WHERE a.queue = p_queue AND a.lease_token IS NULL
          AND a.enqueued_at <= p_now - q.priority_aging_ms * interval '1 millisecond'
          AND a.priority < (SELECT max(t.priority) FROM queue_messages t WHERE t.queue = p_queue AND t.lease_token IS NULL)
        FOR UPDATE SKIP LOCKED);
    END IF;
  END IF;

  IF q.group_rate_per_second IS NOT NULL THEN
    v_gburst := coalesce(q.group_burst, greatest(1, ceil(q.group_rate_per_second / 10)));
    SELECT jsonb_object_agg(g.group_key, floor(g.level)::integer), max(g.level) FILTER (WHERE g.level < 1)
    INTO v_tokens, v_low
    FROM (SELECT b.group_key, bucket_level(b.tokens, b.refilled_at, q.group_rate_per_second, v_gburst, p_now) AS level
          FROM queue_buckets b WHERE b.queue = p_queue AND b.group_key <> '') g
    WHERE g.level < v_gburst;
    v_tokens := coalesce(v_tokens, '{}'::jsonb);
  END IF;
  RETURN QUERY SELECT true, q.group_max_in_flight, v_tokens, (1 - v_low) / q.group_rate_per_second * 1000;
END
$$;

-- How many of the p_want candidates the claim may keep, and what it needs to keep to
-- the limits: flow_quota without aging, and without a lock when p_want is 0.
CREATE FUNCTION flow_grant(p_queue text, p_want integer, p_now timestamptz)
RETURNS TABLE (
  quota        integer,          -- how many candidates the claim keeps
  counted      boolean,          -- record the batch in queue_leases
  wait_ms      double precision, -- when a limit binds: retry after this long if nothing was claimed
  rate         double precision,
  burst        double precision,
  group_rate   double precision,
  group_burst  double precision,
  group_tokens jsonb             -- {group: whole tokens} for groups below group_burst
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
  v_gburst  double precision;
  v_gtokens jsonb;
BEGIN
  SELECT * INTO q FROM queues WHERE name = p_queue;
  IF p_want = 0 OR NOT FOUND
     OR (q.max_in_flight IS NULL AND q.rate_per_second IS NULL AND q.group_rate_per_second IS NULL) THEN
    RETURN QUERY SELECT p_want, false, NULL::float8, NULL::float8, NULL::float8, NULL::float8, NULL::float8, NULL::jsonb;
    RETURN;
  END IF;

  -- Serialise this queue's grants until the claim commits. Every statement after this
  -- one sees the claims committed before the lock was granted.
  SELECT * INTO q FROM queues WHERE name = p_queue FOR UPDATE;

  IF q.max_in_flight IS NOT NULL THEN
    -- A crashed worker's lease stops counting when it runs out; the workers' periodic
    -- purge deletes such rows, so the claim only reads here (0003 deleted them on
    -- every claim, under the lock).
    SELECT coalesce(sum(l.messages), 0) INTO busy FROM queue_leases l
    WHERE l.queue = p_queue AND l.locked_until > p_now;
    n := least(n, greatest(0, q.max_in_flight - busy));
    IF n = 0 THEN wait := 25; END IF; -- a lease may end in another process: poll soon
  END IF;

  IF q.rate_per_second IS NOT NULL THEN
    v_burst := coalesce(q.burst, greatest(1, ceil(q.rate_per_second / 10)));
    SELECT bucket_level(b.tokens, b.refilled_at, q.rate_per_second, v_burst, p_now) INTO level
    FROM queue_buckets b WHERE b.queue = p_queue AND b.group_key = '';
    level := coalesce(level, v_burst);
    n := least(n, floor(level)::integer);
    IF level < 1 THEN wait := greatest(coalesce(wait, 0), (1 - level) / q.rate_per_second * 1000); END IF;
  END IF;

  IF q.group_rate_per_second IS NOT NULL THEN
    v_gburst := coalesce(q.group_burst, greatest(1, ceil(q.group_rate_per_second / 10)));
    SELECT jsonb_object_agg(g.group_key, floor(g.level)::integer), max(g.level) FILTER (WHERE g.level < 1)
    INTO v_gtokens, level
    FROM (SELECT b.group_key, bucket_level(b.tokens, b.refilled_at, q.group_rate_per_second, v_gburst, p_now) AS level
          FROM queue_buckets b WHERE b.queue = p_queue AND b.group_key <> '') g
    WHERE g.level < v_gburst;
    IF wait IS NULL AND level IS NOT NULL THEN wait := (1 - level) / q.group_rate_per_second * 1000; END IF;
  END IF;

  RETURN QUERY SELECT n, q.max_in_flight IS NOT NULL, wait,
                      q.rate_per_second, v_burst, q.group_rate_per_second, v_gburst,
                      CASE WHEN q.group_rate_per_second IS NOT NULL THEN coalesce(v_gtokens, '{}'::jsonb) END;
END
$$;

-- migrate:down

DROP FUNCTION flow_grant(text, integer, timestamptz);
DROP FUNCTION flow_prepare(text, timestamptz);
