-- Why: peak shaving. A queue absorbs a burst and its workers take messages no faster
-- than the back end can bear: at most max_in_flight messages leased at once and at
-- most rate_per_second started per second (a token bucket with `burst`), across every
-- worker process; the same per message group (tenant, customer), so one noisy group
-- cannot starve the others; and priorities that age, so low ones are not starved.
--
-- The limits live in `queues` and are read by the worker's claim, so they change at
-- run time without restarting anything. Publishing never looks at them: the queue
-- buffers.
--
-- Locking: a queue with a global limit or a rate serialises its claimers on its
-- `queues` row (flow_quota below takes it FOR UPDATE). The counts behind the limits
-- are read by flow_quota *after* that lock is granted: a VOLATILE function takes a
-- fresh snapshot per statement, so it sees every claim committed before it, which
-- the claim statement's own (older) snapshot would not. A queue without such limits
-- takes no lock and pays one function call per claim.
--
-- Churn: leases of limited queues are counted in `queue_leases` (one narrow row per
-- claimed batch, deleted with the ack) rather than through an index on
-- queue_messages.locked_until, which would make every claim of every queue a
-- non-HOT update.

-- migrate:up

ALTER TABLE queues
  -- Global limits (NULL: none). See setQueueLimits for units and defaults.
  ADD COLUMN max_in_flight         integer          CHECK (max_in_flight BETWEEN 1 AND 1000000),
  ADD COLUMN rate_per_second       double precision CHECK (rate_per_second > 0 AND rate_per_second <= 1000000),
  -- NULL: the default, max(1, ceil(rate_per_second / 10)) -- a tenth of a second.
  ADD COLUMN burst                 integer          CHECK (burst BETWEEN 1 AND 1000000),
  -- Per message group.
  ADD COLUMN group_max_in_flight   integer          CHECK (group_max_in_flight BETWEEN 1 AND 1000000),
  ADD COLUMN group_rate_per_second double precision CHECK (group_rate_per_second > 0 AND group_rate_per_second <= 1000000),
  ADD COLUMN group_burst           integer          CHECK (group_burst BETWEEN 1 AND 1000000),
  -- Anti-starvation: every priority_aging_ms, waiting messages at least that old and
  -- below the highest waiting priority move up one level. NULL: strict priorities.
  ADD COLUMN priority_aging_ms     integer          DEFAULT 60000 CHECK (priority_aging_ms BETWEEN 100 AND 86400000),
  ADD COLUMN aged_at               timestamptz;

-- Token buckets: the queue's own (group_key = '') and one per group with a group rate.
-- A row holds the level at refilled_at; the level now is bucket_level(...).
CREATE TABLE queue_buckets (
  queue       text             NOT NULL,
  group_key   text             NOT NULL,
  tokens      double precision NOT NULL,
  refilled_at timestamptz      NOT NULL,
  PRIMARY KEY (queue, group_key)
);

-- One row per batch claimed from a queue with max_in_flight: what is in flight is
-- the sum of `messages` over rows whose lease has not run out. The worker deletes
-- its row in the transaction that acks the batch; a crashed worker's row stops
-- counting when its lease runs out, like its messages' leases.
CREATE TABLE queue_leases (
  queue        text        NOT NULL,
  lease_token  uuid        NOT NULL,
  messages     integer     NOT NULL CHECK (messages > 0),
  locked_until timestamptz NOT NULL,
  PRIMARY KEY (queue, lease_token)
);

-- A message's group (tenant, customer, merchant) and priority travel from publish
-- through the outbox to the queue row.
ALTER TABLE outbox
  ADD COLUMN priority  smallint NOT NULL DEFAULT 0,
  ADD COLUMN group_key text     CHECK (group_key IS NULL OR length(group_key) BETWEEN 1 AND 255);
ALTER TABLE queue_messages
  ADD COLUMN group_key text     CHECK (group_key IS NULL OR length(group_key) BETWEEN 1 AND 255);
ALTER TABLE dead_letters
  ADD COLUMN group_key text;
-- Group window test in the claim: "how many earlier messages has my group?"
CREATE INDEX queue_messages_group_seq ON queue_messages (queue, group_key, seq) WHERE group_key IS NOT NULL;

-- The level of a token bucket at `at`: what it held at `refilled_at` plus what the
-- rate added since, capped at the burst.
CREATE FUNCTION bucket_level(tokens double precision, refilled_at timestamptz, rate double precision,
                             burst double precision, at timestamptz)
RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
  SELECT least(burst, tokens + rate * greatest(0, extract(epoch FROM at - refilled_at)::double precision))
$$;

-- How many messages one claim of `p_queue` may take now (at most p_want), and what
-- the claim needs to enforce the group limits. Called once per claim, first thing in
-- the claim statement. Writes only `queues.aged_at` and message priorities (aging)
-- and expired `queue_leases`; the claim statement itself updates buckets and leases,
-- so no row is updated twice in one statement.
CREATE FUNCTION flow_quota(p_queue text, p_want integer, p_now timestamptz)
RETURNS TABLE (
  quota        integer,          -- LIMIT of this claim
  counted      boolean,          -- record the batch in queue_leases
  wait_ms      double precision, -- when a limit binds: retry after this long if nothing was claimed
  rate         double precision,
  burst        double precision,
  group_max    integer,
  group_rate   double precision,
  group_burst  double precision,
  group_tokens jsonb             -- {group: whole tokens} for groups below group_burst
)
LANGUAGE plpgsql VOLATILE
-- One row, always: without this the planner assumes 1,000 and the claim's estimated
-- cost climbs past jit_above_cost, and JIT compilation then costs more than the claim.
ROWS 1
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
  IF NOT FOUND THEN
    RETURN QUERY SELECT p_want, false, NULL::float8, NULL::float8, NULL::float8, NULL::int, NULL::float8, NULL::float8, NULL::jsonb;
    RETURN;
  END IF;

  -- Aging, at most once per interval per queue (the UPDATE picks one winner). A
  -- message that waited at least priority_aging_ms and is below the highest waiting
  -- priority moves up one level; among equal priorities the older goes first, so a
  -- message of priority p is claimed within about (top - p + 1) intervals.
  IF q.priority_aging_ms IS NOT NULL
     AND (q.aged_at IS NULL OR q.aged_at <= p_now - q.priority_aging_ms * interval '1 millisecond') THEN
    UPDATE queues SET aged_at = p_now
    WHERE name = p_queue AND (aged_at IS NULL OR aged_at <= p_now - q.priority_aging_ms * interval '1 millisecond');
    IF FOUND THEN
      UPDATE queue_messages m SET priority = m.priority + 1
      WHERE m.queue = p_queue AND m.lease_token IS NULL
        AND m.enqueued_at <= p_now - q.priority_aging_ms * interval '1 millisecond'
        AND m.priority < (SELECT max(t.priority) FROM queue_messages t WHERE t.queue = p_queue AND t.lease_token IS NULL);
    END IF;
  END IF;

  IF q.max_in_flight IS NULL AND q.rate_per_second IS NULL AND q.group_rate_per_second IS NULL THEN
    -- No counts to keep exact: no lock. The group window needs none (see the claim).
    RETURN QUERY SELECT p_want, false, NULL::float8, NULL::float8, NULL::float8, q.group_max_in_flight, NULL::float8, NULL::float8, NULL::jsonb;
    RETURN;
  END IF;

  -- Serialise this queue's claimers until the claim commits. Every statement after
  -- this one sees the claims committed before the lock was granted.
  SELECT * INTO q FROM queues WHERE name = p_queue FOR UPDATE;

  IF q.max_in_flight IS NOT NULL THEN
    DELETE FROM queue_leases l WHERE l.queue = p_queue AND l.locked_until <= p_now;
    SELECT coalesce(sum(l.messages), 0) INTO busy FROM queue_leases l WHERE l.queue = p_queue;
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
                      q.rate_per_second, v_burst, q.group_max_in_flight, q.group_rate_per_second, v_gburst,
                      CASE WHEN q.group_rate_per_second IS NOT NULL THEN coalesce(v_gtokens, '{}'::jsonb) END;
END
$$;

-- migrate:down

DROP FUNCTION flow_quota(text, integer, timestamptz);
DROP FUNCTION bucket_level(double precision, timestamptz, double precision, double precision, timestamptz);
DROP INDEX queue_messages_group_seq;
ALTER TABLE dead_letters DROP COLUMN group_key;
ALTER TABLE queue_messages DROP COLUMN group_key;
ALTER TABLE outbox DROP COLUMN group_key, DROP COLUMN priority;
DROP TABLE queue_leases;
DROP TABLE queue_buckets;
ALTER TABLE queues
  DROP COLUMN aged_at, DROP COLUMN priority_aging_ms,
  DROP COLUMN group_burst, DROP COLUMN group_rate_per_second, DROP COLUMN group_max_in_flight,
  DROP COLUMN burst, DROP COLUMN rate_per_second, DROP COLUMN max_in_flight;
