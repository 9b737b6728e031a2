-- Why: the whole sagabox schema, along the message's path: the outbox producers write in
-- their own transaction, the queues workers claim from, the inbox that makes handling
-- idempotent, dead letters, half messages, sagas and the queues' flow-control limits.

-- migrate:up

-- Runs with search_path set to the sagabox schema: names here are unqualified and the
-- schema name is never spliced into this file. Rows are deleted once delivered or acked,
-- and every index serves one query (docs/operations.md: autovacuum for this churn).

-- A queue is a subscription of one or more topics (routes live with the relay or in
-- direct_routes); its row makes an empty queue visible and holds its flow-control
-- limits, which the worker's claim reads, so they change at run time. NULL: no limit.
CREATE TABLE queues (
  name                  text             PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:-]{1,128}$'),
  created_at            timestamptz      NOT NULL DEFAULT now(),
  -- Global limits: messages leased at once, and started per second through a token
  -- bucket of `burst` (NULL: a tenth of a second of the rate, see bucket_burst).
  max_in_flight         integer          CHECK (max_in_flight BETWEEN 1 AND 1000000),
  rate_per_second       double precision CHECK (rate_per_second > 0 AND rate_per_second <= 1000000),
  burst                 integer          CHECK (burst BETWEEN 1 AND 1000000),
  -- The same per message group (tenant, customer), so one group cannot starve others.
  group_max_in_flight   integer          CHECK (group_max_in_flight BETWEEN 1 AND 1000000),
  group_rate_per_second double precision CHECK (group_rate_per_second > 0 AND group_rate_per_second <= 1000000),
  group_burst           integer          CHECK (group_burst BETWEEN 1 AND 1000000),
  -- What one level of priority is worth in waiting (see queue_messages.claim_rank), so
  -- low priorities are not starved. NULL: strict priorities.
  priority_aging_ms     integer          DEFAULT 60000 CHECK (priority_aging_ms BETWEEN 100 AND 86400000),
  -- An operator's pause: while set, every claim of the queue takes nothing; deliveries
  -- keep arriving and wait. NULL: running.
  paused_at             timestamptz
);

-- The ring slot of a message: bits 10-11 of the millisecond time in its UUIDv7 id, so a
-- slot takes about one second of messages and the ring of four turns every four seconds.
-- From the id, so a message always lands in the same slot: (queue, id, part) is as unique
-- as (queue, id), and a repeated prepare meets its half message. Other ids: any slot.
CREATE FUNCTION queue_part(p_id uuid) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ((get_byte(uuid_send(p_id), 4) >> 2) & 3)::smallint;

-- One row per message not yet delivered. No CHECK and no unique index on id: each is a
-- fixed cost on every producer's commit. sagabox's writers validate every field, the
-- relay dead-letters a row it cannot deliver, and repeats die at the queue key or inbox.
--
-- A ring of four partitions by slot, as queue_messages: the relay's deletes leave dead
-- rows its claim walks past until vacuum removes them, which it cannot while a snapshot
-- is held; rotate_outbox truncates a slot instead, whatever snapshot is held.
CREATE TABLE outbox (
  -- Delivery order follows seq, never client ids: two UUIDv7s made in the same
  -- millisecond by two processes are not ordered. One order across the slots: a row
  -- moved by a rotation keeps its seq.
  seq          bigint      GENERATED ALWAYS AS IDENTITY,
  id           uuid        NOT NULL,
  -- queue_part(id) from sagabox's own inserts; the default (the clock's slot) is for rows
  -- written by hand.
  part         smallint    NOT NULL DEFAULT (((extract(epoch FROM statement_timestamp()) * 1000)::bigint >> 10) & 3)::smallint,
  topic        text        NOT NULL,
  -- Ordering key: messages with the same key leave one at a time, in seq order.
  key          text,
  -- Message group (flow control) and priority, carried to the queue row.
  group_key    text,
  priority     smallint    NOT NULL DEFAULT 0,
  payload      jsonb       NOT NULL,
  headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
  -- 'prepared' is a half message: stored, invisible to delivery until committed.
  state        text        NOT NULL DEFAULT 'ready',
  -- When the relay may (re)try to move it: now, or later after a failed delivery.
  available_at timestamptz NOT NULL DEFAULT now(),
  -- When consumers may handle it (a delayed message): the relay moves it to its queue at
  -- once, so a large delayed backlog never slows the relay's claim.
  run_at       timestamptz,
  expires_at   timestamptz,
  attempts     integer     NOT NULL DEFAULT 0,
  last_error   text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  -- Half-message check-back: when to ask the producer's checker next, how often it was
  -- asked. A checking relay holds the row lock while it asks.
  check_at     timestamptz,
  checks       integer     NOT NULL DEFAULT 0,
  -- The relay's claim reads the four in seq order at once (a Merge Append).
  PRIMARY KEY (seq, part)
) PARTITION BY LIST (part);
CREATE TABLE outbox_0 PARTITION OF outbox FOR VALUES IN (0);
CREATE TABLE outbox_1 PARTITION OF outbox FOR VALUES IN (1);
CREATE TABLE outbox_2 PARTITION OF outbox FOR VALUES IN (2);
CREATE TABLE outbox_3 PARTITION OF outbox FOR VALUES IN (3);
-- Head-of-key test in the relay's claim: "is there an earlier row with my key?"
CREATE INDEX outbox_key_seq ON outbox (key, seq) WHERE key IS NOT NULL;
-- Check-back scan over half messages only.
CREATE INDEX outbox_prepared_check_at ON outbox (check_at) WHERE state = 'prepared';
-- Commit, rollback and a repeated prepare find a half message by id; a ready row's
-- INSERT only tests this predicate. Unique within a slot only: a half message that a
-- rotation moved is found by prepare's own look in every slot.
CREATE UNIQUE INDEX outbox_prepared_id ON outbox (id, part) WHERE state = 'prepared';

-- Every decision taken about a half message, kept for the admin API and audits.
-- Partitioned like the inbox, by ranges of message id (UUIDv7: time first), so
-- retention drops a span of time whole and a lookup by id reads one partition.
CREATE TABLE half_message_decisions (
  seq        bigint      GENERATED ALWAYS AS IDENTITY,
  message_id uuid        NOT NULL,
  topic      text        NOT NULL,
  decision   text        NOT NULL CHECK (decision IN ('prepared', 'commit', 'rollback', 'unknown', 'unresolved', 'no_checker', 'check_failed')),
  -- 'operator': decided by hand (decideHalfMessage), detail says who and why.
  source     text        NOT NULL CHECK (source IN ('producer', 'checker', 'relay', 'operator')),
  detail     text,
  decided_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (message_id, seq)
) PARTITION BY RANGE (message_id);
-- Ids outside every time partition, and decisions of messages still in the outbox when
-- their partition expired: purged by age, row by row, once the message left the outbox.
CREATE TABLE half_message_decisions_other PARTITION OF half_message_decisions DEFAULT;
CREATE INDEX half_message_decisions_other_decided_at ON half_message_decisions_other (decided_at);

-- Topics that publish writes straight into a queue of the producer's own database, in
-- its transaction: no outbox row, no relay. Publish reads this small table on every
-- call, so a route change takes effect in the caller's snapshot.
--
-- Partitioned, with no partition until the first route (direct_routes_partition): until
-- then the planner proves the table empty, and publish's plan sets up no scan of it on
-- each execution.
CREATE TABLE direct_routes (
  -- The topic pattern as given ('orders.created', 'orders.*', 'orders.#').
  pattern     text        NOT NULL CHECK (length(pattern) BETWEEN 1 AND 255),
  queue       text        NOT NULL REFERENCES queues (name) ON DELETE CASCADE,
  -- The validated pattern compiled to an anchored regular expression over
  -- '.' || topic, so publish matches with one `~` per route.
  topic_regex text        NOT NULL,
  -- HELD_WINDOW_FACTOR x its queue's group_max_in_flight (held.ts), kept here by
  -- setQueueLimits and addDirectRoute so that a publish into a queue without a group
  -- limit looks nothing more up; NULL when the queue has none.
  held_window integer,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (pattern, queue)
) PARTITION BY LIST (queue);

-- Creates direct_routes' one partition, for a schema's first direct route (addDirectRoute
-- calls it before inserting the route). It takes ACCESS EXCLUSIVE on direct_routes, of
-- which every transaction that has published holds a share until it ends: it waits for
-- them and publishes wait behind it, so each attempt waits p_wait_ms at most and the
-- next comes as long after; after p_attempts it raises lock_not_available. Under that
-- lock every cached publish plan is invalidated before a later statement runs, so a
-- route counts from its commit. The partition stays when the last route goes (dropping
-- it would take the same lock). SECURITY DEFINER: only the owner may add a partition;
-- adding a route still takes the caller's own INSERT.
CREATE FUNCTION direct_routes_partition(p_wait_ms integer, p_attempts integer)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
  v_timeout text := current_setting('lock_timeout');
  v_attempt integer := 0;
BEGIN
  WHILE to_regclass('direct_routes_all') IS NULL LOOP
    v_attempt := v_attempt + 1;
    BEGIN
      PERFORM set_config('lock_timeout', p_wait_ms || 'ms', true);
      LOCK TABLE direct_routes IN ACCESS EXCLUSIVE MODE;
      -- A concurrent first route may have created it while this waited.
      CREATE TABLE IF NOT EXISTS direct_routes_all PARTITION OF direct_routes DEFAULT;
      PERFORM set_config('lock_timeout', v_timeout, true);
    EXCEPTION WHEN lock_not_available THEN
      -- The block's rollback has already put lock_timeout back.
      IF v_attempt >= p_attempts THEN
        RAISE EXCEPTION 'direct_routes_partition: direct_routes stayed busy through % attempts of % ms (a long transaction that published holds it)',
          p_attempts, p_wait_ms USING ERRCODE = 'lock_not_available';
      END IF;
      PERFORM pg_sleep(p_wait_ms / 1000.0);
    END;
  END LOOP;
END
$$;

-- Messages delivered to a queue. Delivery is idempotent by (queue, id): a relay that dies
-- after delivering but before deleting its outbox row re-delivers into ON CONFLICT DO
-- NOTHING.
--
-- A ring of four partitions by slot (queue_part). A claim and an ack leave dead rows that
-- only vacuum removes, and vacuum removes nothing while any transaction in the database
-- holds an old snapshot; a slot whose messages are all done is instead truncated
-- (rotate_queue_messages), which frees its dead rows whatever snapshot is held.
CREATE TABLE queue_messages (
  seq          bigint      GENERATED ALWAYS AS IDENTITY,
  queue        text        NOT NULL,
  id           uuid        NOT NULL,
  -- queue_part(id) from sagabox's own inserts; the default (the clock's slot) is for rows
  -- written by hand.
  part         smallint    NOT NULL DEFAULT (((extract(epoch FROM statement_timestamp()) * 1000)::bigint >> 10) & 3)::smallint,
  topic        text        NOT NULL,
  key          text,
  group_key    text,
  priority     smallint    NOT NULL DEFAULT 0,
  payload      jsonb       NOT NULL,
  headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
  run_at       timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz,
  attempts     integer     NOT NULL DEFAULT 0,
  -- Lease: a claim sets a fresh token and an expiry; ack and nack must present the
  -- token, so a worker whose lease ran out cannot complete a message another holds.
  lease_token  uuid,
  locked_until timestamptz,
  locked_by    text,
  last_error   text,
  created_at   timestamptz NOT NULL, -- when the producer published it
  enqueued_at  timestamptz NOT NULL DEFAULT now(),
  -- Due more than 2 s ahead when written (a delayed message, a retry's longer backoff):
  -- kept out of queue_messages_claim, which every claim walks in order, until a worker's
  -- sweep (readyScheduled) clears it shortly before run_at. A row left set past run_at
  -- is late, never lost: the next sweep finds it by run_at.
  scheduled    boolean     NOT NULL DEFAULT false,
  -- Kept out of queue_messages_claim as well: a grouped message written while its group
  -- already had 2 x group_max_in_flight messages waiting (see held.ts). The claim would
  -- only walk past it, as the group window refuses it, so a noisy group's backlog would
  -- cost every claim of the queue its length. A claim that leases messages of the group
  -- clears as many of its held rows, oldest first; the worker's sweep clears a group's
  -- held rows that fall in its window (a publish that raced the group's draining).
  held         boolean     NOT NULL DEFAULT false,
  -- Claim order, lowest first, then seq: the millisecond the message became due less
  -- priority x the queue's priority_aging_ms (2^40 when NULL: strict), so a message that
  -- has waited that long goes ahead of a newcomer one level above it. Fixed when
  -- written: priorities age without rows being rewritten. sagabox's writers set it (see
  -- claim-rank.ts); the default, for rows written by hand, is priority 0's.
  claim_rank   bigint      NOT NULL DEFAULT round(date_part('epoch', date_trunc('milliseconds', now())) * 1000)::bigint,
  PRIMARY KEY (queue, id, part),
  -- One CHECK for the row: PostgreSQL evaluates each constraint apart, at a fixed cost.
  CONSTRAINT queue_messages_row_check CHECK (
        attempts >= 0
    -- a lease is a token and an expiry, or neither
    AND (lease_token IS NULL) = (locked_until IS NULL)
    AND (group_key IS NULL OR length(group_key) BETWEEN 1 AND 255)
  )
) PARTITION BY LIST (part);
-- Half of each page left free: a claim rewrites every row it leases, and a new version on
-- the same page is a HOT update that adds no index entries for claims to walk past.
CREATE TABLE queue_messages_0 PARTITION OF queue_messages FOR VALUES IN (0) WITH (fillfactor = 50);
CREATE TABLE queue_messages_1 PARTITION OF queue_messages FOR VALUES IN (1) WITH (fillfactor = 50);
CREATE TABLE queue_messages_2 PARTITION OF queue_messages FOR VALUES IN (2) WITH (fillfactor = 50);
CREATE TABLE queue_messages_3 PARTITION OF queue_messages FOR VALUES IN (3) WITH (fillfactor = 50);
-- The worker claim walks this index in order; scheduled and held rows are not in it, so a
-- million messages due tomorrow, or a million of one group over its limit, cost a claim
-- nothing today.
CREATE INDEX queue_messages_claim ON queue_messages (queue, claim_rank, seq) WHERE NOT scheduled AND NOT held;
-- The held rows of each group, oldest first: what a claim or the sweep clears.
CREATE INDEX queue_messages_held ON queue_messages (queue, group_key, seq) WHERE held;
-- The held rows of each key (an ungrouped message behind a deep backlog of its key, see
-- held.ts), oldest first: what a claim or the sweep clears. Empty unless a key is hot.
CREATE INDEX queue_messages_held_key ON queue_messages (queue, key, seq) WHERE held AND group_key IS NULL;
-- The sweep's way to the scheduled rows that are coming due.
CREATE INDEX queue_messages_scheduled ON queue_messages (queue, run_at) WHERE scheduled;
-- Head-of-key test in the worker claim.
CREATE INDEX queue_messages_key_seq ON queue_messages (queue, key, seq) WHERE key IS NOT NULL;
-- Group window test in the claim: "how many earlier messages has my group?"
CREATE INDEX queue_messages_group_seq ON queue_messages (queue, group_key, seq) WHERE group_key IS NOT NULL;

-- A new queue row's `held` (see queue_messages.held and held.ts), for a group p_group of
-- p_queue whose limit keeps p_window messages of a group in the claim index (NULL: the
-- queue has no group limit, false): true when the group has that many already, p_earlier
-- of them written before it by the same statement (its snapshot does not see them). A
-- group with a held row has as many, and the new row goes behind it: one probe of
-- queue_messages_held, where a noisy group's publishes end up. Otherwise the count stops
-- at the window, a few index entries (a group without held rows is that short). A
-- function, so that only a message of a limited group runs these probes: as subqueries of
-- publish's statement, every execution would open each partition and index they name.
CREATE FUNCTION held_on_insert(p_queue text, p_group text, p_earlier bigint, p_window integer) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
BEGIN
  IF p_window IS NULL THEN
    RETURN false;
  ELSIF p_earlier >= p_window THEN
    RETURN true;
  END IF;
  RETURN EXISTS (SELECT FROM queue_messages m WHERE m.queue = p_queue AND m.group_key = p_group AND m.held)
      OR p_earlier + (SELECT count(*) FROM (
           SELECT FROM queue_messages m WHERE m.queue = p_queue AND m.group_key = p_group LIMIT p_window - p_earlier) e) >= p_window;
END
$$;

-- The held rows the limited claim clears (see held.ts): for each group p_groups[i] of
-- p_queue it leased p_counts[i] messages of, as many of the group's held rows, oldest
-- first, locked; rows another transaction holds are skipped. The claim updates them by
-- ctid. A function with JIT off, not part of the claim's text: a LIMIT per group is
-- planned for a tenth of the group, and a noisy group's tenth priced the claim past
-- jit_above_cost, compiled at every call for more than it then ran. ROWS 10 keeps the
-- claim's own estimate small for the same reason.
CREATE FUNCTION held_to_release(p_queue text, p_groups text[], p_counts integer[])
RETURNS TABLE (held_table oid, held_ctid tid)
LANGUAGE plpgsql VOLATILE
ROWS 10
SET search_path FROM CURRENT
SET jit = off
AS $$
BEGIN
  RETURN QUERY
    SELECT h.tableoid, h.ctid
    FROM unnest(p_groups, p_counts) AS g(group_key, n)
    CROSS JOIN LATERAL (
      SELECT m.tableoid, m.ctid FROM queue_messages m
      WHERE m.queue = p_queue AND m.held AND m.group_key = g.group_key
      ORDER BY m.seq LIMIT g.n
      FOR UPDATE OF m SKIP LOCKED) h;
END
$$;

-- Clears, for each key p_keys[i] of p_queue whose head a claim leased, its oldest held
-- row (see held.ts): the key keeps its window in the claim index. A row another
-- transaction holds is skipped. Returns the rows cleared. The claim calls it only in a
-- queue with rows held for their key, so it updates here, row by row, rather than in
-- the claim's text: an UPDATE there is set up on every partition at every claim.
CREATE FUNCTION key_held_release(p_queue text, p_keys text[]) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
SET jit = off
AS $$
DECLARE
  r record;
  n integer := 0;
BEGIN
  FOR r IN
    SELECT h.tableoid, h.ctid
    FROM unnest(p_keys) AS k(key)
    CROSS JOIN LATERAL (
      SELECT m.tableoid, m.ctid FROM queue_messages m
      WHERE m.queue = p_queue AND m.key = k.key AND m.held AND m.group_key IS NULL
      ORDER BY m.seq LIMIT 1
      FOR UPDATE OF m SKIP LOCKED) h
  LOOP
    EXECUTE format('UPDATE %s SET held = false WHERE ctid = $1', r.tableoid::regclass) USING r.ctid;
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;

-- The rows the worker's sweep holds for keys p_keys of p_queue (see held.ts): of each
-- key's ungrouped rows in the claim index, never leased nor tried, oldest first, at most
-- p_limit, locked (rows another transaction holds are skipped): those after its newest
-- held row when it has one, so the walk starts where the last sweep stopped, else those
-- after its first p_window. JIT off as for held_to_release.
CREATE FUNCTION key_tails_to_hold(p_queue text, p_keys text[], p_window integer, p_limit integer)
RETURNS TABLE (held_table oid, held_ctid tid)
LANGUAGE plpgsql VOLATILE
ROWS 100
SET search_path FROM CURRENT
SET jit = off
AS $$
BEGIN
  RETURN QUERY
    SELECT h.tableoid, h.ctid
    FROM unnest(p_keys) AS k(key)
    CROSS JOIN LATERAL (
      SELECT max(x.seq) AS after FROM queue_messages x
      WHERE x.queue = p_queue AND x.key = k.key AND x.held AND x.group_key IS NULL) t
    CROSS JOIN LATERAL (
      SELECT m.tableoid, m.ctid FROM queue_messages m
      WHERE m.queue = p_queue AND m.key = k.key AND m.seq > coalesce(t.after, 0)
        AND NOT m.held AND NOT m.scheduled AND m.group_key IS NULL AND m.lease_token IS NULL AND m.attempts = 0
      ORDER BY m.seq OFFSET CASE WHEN t.after IS NULL THEN p_window ELSE 0 END LIMIT p_limit
      FOR UPDATE OF m SKIP LOCKED) h;
END
$$;

-- Empties the older slots of a ring (queue_messages or outbox) by TRUNCATE, which frees
-- their dead rows even while a snapshot somewhere holds vacuum back. Not the clock's slot
-- nor the one before it: producers are writing them. A slot's ACCESS EXCLUSIVE lock is
-- taken only when it is free at once (NOWAIT), or, with p_wait_ms, after waiting that long
-- at most for the transactions holding it (a busy worker or relay always has one open);
-- claims and acks of all slots queue behind that wait, publishes do not (they write the
-- clock's slot). Holding the lock, nobody else can read or write the slot until this
-- commits, and the VOLATILE function's fresh snapshot per statement sees every committed
-- row; an uncommitted insert holds the slot's lock, so its row is never truncated. The
-- rows still in it (a backlog, delays, retries, leases, half messages) are first copied
-- into the clock's slot with every column kept (seq, so per-key and claim order; a lease,
-- which the handling transaction then finds by id), then the slot is truncated, all in
-- one transaction. A slot holding more than p_max_move rows (a deep backlog, which leaves
-- no dead rows to speak of), more rows than dead rows, or fewer than p_min_dead dead
-- rows, is left for later (p_min_dead 0, for tests, turns both dead-row checks off: they
-- are economy, not safety). `busy`: slots with rows on disk whose lock was not granted;
-- `moved`: rows copied. SECURITY DEFINER, so a worker's or relay's role needs no TRUNCATE
-- privilege; p_now (tests) only picks the slots. Two callers of one ring at once: the
-- second returns at once (the advisory lock), doing nothing.
CREATE FUNCTION rotate_ring(p_ring text, p_now timestamptz, p_max_move integer, p_wait_ms integer, p_min_dead integer,
                            OUT truncated smallint[], OUT busy smallint[], OUT moved integer)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
  v_now  smallint := (((extract(epoch FROM coalesce(p_now, clock_timestamp())) * 1000)::bigint >> 10) & 3)::smallint;
  v_slot smallint;
  v_leaf text;
  v_live integer;
  v_cols text;
BEGIN
  truncated := '{}';
  busy := '{}';
  moved := 0;
  IF p_ring NOT IN ('queue_messages', 'outbox') THEN
    RAISE EXCEPTION 'rotate_ring: % is not a ring', p_ring USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Under REPEATABLE READ every statement reads the snapshot taken before the locks: a
  -- row committed in between would look absent and be truncated.
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'rotate_% needs READ COMMITTED, not %', p_ring, current_setting('transaction_isolation')
      USING ERRCODE = 'invalid_transaction_state';
  END IF;
  IF NOT pg_try_advisory_xact_lock(hashtext(current_schema() || '.rotate_' || p_ring)) THEN
    RETURN;
  END IF;
  -- now + 1 and now + 2 are the two slots before the clock's previous one.
  FOR v_slot IN SELECT ((v_now + k) % 4)::smallint FROM generate_series(1, 2) k LOOP
    v_leaf := format('%s_%s', p_ring, v_slot);
    CONTINUE WHEN pg_relation_size(v_leaf::regclass) = 0;
    -- Before any lock, from the statistics (up to a second behind): a slot with few dead
    -- rows is vacuum's (a truncation would stall claims and replan every statement for
    -- little), and one holding a deep backlog is left until it drains.
    CONTINUE WHEN pg_stat_get_dead_tuples(v_leaf::regclass) < p_min_dead
               OR pg_stat_get_live_tuples(v_leaf::regclass) > p_max_move;
    BEGIN
      IF p_wait_ms > 0 THEN
        PERFORM set_config('lock_timeout', p_wait_ms || 'ms', true);
        EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', v_leaf);
      ELSE
        EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE NOWAIT', v_leaf);
      END IF;
    EXCEPTION WHEN lock_not_available THEN
      busy := busy || v_slot;
      CONTINUE;
    END;
    EXECUTE format('SELECT count(*) FROM (SELECT FROM %I LIMIT %s) l', v_leaf, p_max_move + 1) INTO v_live;
    CONTINUE WHEN v_live > p_max_move;
    -- Moving costs a row written per message: only worth it to free at least as many dead
    -- rows (the statistics' count, up to a second behind). Delayed messages waiting in a
    -- quiet slot are thus moved once per that many messages handled, not at every turn.
    CONTINUE WHEN p_min_dead > 0 AND v_live > 0 AND pg_stat_get_dead_tuples(v_leaf::regclass) < v_live;
    IF v_live > 0 THEN
      SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO v_cols
      FROM pg_attribute
      WHERE attrelid = p_ring::regclass AND attnum > 0 AND NOT attisdropped AND attname <> 'part';
      -- Into the clock's slot itself, seq given (a partition has no identity of its own).
      -- A copy of the same (queue, id) already in queue_messages' clock slot is the same
      -- message; an outbox row has no such copy (seq is unique), so none is skipped.
      EXECUTE format('INSERT INTO %I (part, %s) OVERRIDING SYSTEM VALUE SELECT %s, %s FROM %I ORDER BY seq %s',
                     p_ring || '_' || v_now, v_cols, v_now, v_cols, v_leaf,
                     CASE WHEN p_ring = 'queue_messages' THEN 'ON CONFLICT (queue, id, part) DO NOTHING' ELSE '' END);
      moved := moved + v_live;
    END IF;
    EXECUTE format('TRUNCATE %I', v_leaf);
    truncated := truncated || v_slot;
  END LOOP;
END
$$;

-- The ring of queue_messages, turned by the workers after their claims (rotate_ring).
CREATE FUNCTION rotate_queue_messages(p_now timestamptz DEFAULT NULL, p_max_move integer DEFAULT 5000, p_wait_ms integer DEFAULT 0,
  p_min_dead integer DEFAULT 256, OUT truncated smallint[], OUT busy smallint[], OUT moved integer)
LANGUAGE sql VOLATILE SET search_path FROM CURRENT
AS $$ SELECT * FROM rotate_ring('queue_messages', p_now, p_max_move, p_wait_ms, p_min_dead) $$;

-- The ring of the outbox, turned by the relays after their claims (rotate_ring). The rows
-- an emptied slot still holds are prepared half messages, rows waiting for a retry and
-- rows no relay's destination matched yet; a producer's open transaction holds its
-- slot's lock, so its row is never truncated: the slot is reported busy.
CREATE FUNCTION rotate_outbox(p_now timestamptz DEFAULT NULL, p_max_move integer DEFAULT 5000, p_wait_ms integer DEFAULT 0,
  p_min_dead integer DEFAULT 256, OUT truncated smallint[], OUT busy smallint[], OUT moved integer)
LANGUAGE sql VOLATILE SET search_path FROM CURRENT
AS $$ SELECT * FROM rotate_ring('outbox', p_now, p_max_move, p_wait_ms, p_min_dead) $$;

-- Token buckets: the queue's own (group_key = '') and one per group with a group rate.
-- A row holds the level at refilled_at; the level now is bucket_level(...).
CREATE TABLE queue_buckets (
  queue       text             NOT NULL,
  group_key   text             NOT NULL,
  tokens      double precision NOT NULL,
  refilled_at timestamptz      NOT NULL,
  PRIMARY KEY (queue, group_key)
);

-- What is in flight on a queue with max_in_flight: a narrow row per claiming worker
-- slot (slot_token, the slot's own token: a slot has one batch in flight at a time),
-- counted while locked_until is ahead, instead of an index on queue_messages' lease
-- that would make every claim of every queue a non-HOT update.
CREATE TABLE queue_leases (
  queue        text        NOT NULL,
  slot_token   uuid        NOT NULL,
  messages     integer     NOT NULL CHECK (messages > 0),
  locked_until timestamptz NOT NULL,
  PRIMARY KEY (queue, slot_token)
);

-- (consumer, message id) of every message handled, written in the handler's own
-- transaction: a redelivered message finds its row and has no second effect.
-- Partitioned by ranges of message id (UUIDv7: time first), so retention drops a
-- span of time whole instead of leaving vacuum a dead tuple per message; the id is
-- in the key, so each partition enforces it alone. maintainInbox makes the partitions.
CREATE TABLE inbox (
  consumer     text        NOT NULL,
  message_id   uuid        NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, message_id)
) PARTITION BY RANGE (message_id);
-- Ids outside every time partition (not UUIDv7, older than the oldest kept, far
-- ahead): purged by age, row by row; small while ids are sagabox's own.
CREATE TABLE inbox_other PARTITION OF inbox DEFAULT;
CREATE INDEX inbox_other_processed_at ON inbox_other (processed_at);

-- What could not be delivered or handled, with its reason, for inspection and replay.
-- Partitioned by dead_at, so retention drops a span of time whole; dead_id stays
-- unique (one identity) though the key must carry dead_at.
CREATE TABLE dead_letters (
  dead_id      bigint      GENERATED ALWAYS AS IDENTITY,
  -- Where it died: a queue's worker ('queue') or the relay before any queue ('outbox').
  source       text        NOT NULL CHECK (source IN ('outbox', 'queue')),
  queue        text        CHECK ((source = 'queue') = (queue IS NOT NULL)),
  id           uuid        NOT NULL,
  topic        text        NOT NULL,
  key          text,
  group_key    text,
  priority     smallint    NOT NULL DEFAULT 0,
  payload      jsonb       NOT NULL,
  headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
  -- 'cancelled': an operator took a pending message out (cancelMessages), to replay later.
  reason       text        NOT NULL CHECK (reason IN ('failed', 'timeout', 'expired', 'invalid', 'unroutable', 'unresolved', 'non_retryable', 'cancelled')),
  error        text        NOT NULL,
  attempts     integer     NOT NULL,
  created_at   timestamptz NOT NULL,
  dead_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (dead_id, dead_at)
) PARTITION BY RANGE (dead_at);
CREATE INDEX dead_letters_queue_dead_at ON dead_letters (queue, dead_at);
-- A message's dead letters by its id (getMessage): one index probe per partition, not
-- a scan of every partition.
CREATE INDEX dead_letters_id ON dead_letters (id);
-- Rows outside every time partition (maintenance not run yet): purged by age.
CREATE TABLE dead_letters_other PARTITION OF dead_letters DEFAULT;
CREATE INDEX dead_letters_other_dead_at ON dead_letters_other (dead_at);

-- A saga instance holds its whole state in one row, so a transition is one UPDATE
-- guarded by `revision` (optimistic concurrency). Partitioned by ranges of id (UUIDv7:
-- start time first), as is its history, so retention drops finished sagas whole.
CREATE TABLE sagas (
  id           uuid        PRIMARY KEY,
  saga_type    text        NOT NULL CHECK (length(saga_type) BETWEEN 1 AND 255),
  saga_version integer     NOT NULL CHECK (saga_version >= 1),
  status       text        NOT NULL CHECK (status IN ('running', 'compensating', 'completed', 'compensated', 'failed')),
  current_step integer     NOT NULL DEFAULT 0,
  state        jsonb       NOT NULL,
  -- Bumped by every transition; a transition that read an older revision loses.
  revision     integer     NOT NULL DEFAULT 0,
  -- The attempt token of the step in flight: replies and timeouts carry it, so a late
  -- reply to an earlier attempt (or after a timeout) changes nothing.
  step_token   uuid,
  deadline     timestamptz,
  -- The message id of the pending step's timeout, so the transition that supersedes the
  -- step or finishes the saga deletes it instead of leaving it queued until it fires.
  timeout_id   uuid,
  error        text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (id);
CREATE INDEX sagas_status_updated ON sagas (status, updated_at);
-- Ids outside every time partition (not UUIDv7, or not yet partitioned), and sagas not
-- finished when their partition expired: purged row by row once finished and old.
CREATE TABLE sagas_other PARTITION OF sagas DEFAULT;

-- Append-only step history: for inspection, and proof that no compensation ran
-- without its step. Partitioned on the same id ranges as sagas, so a saga and its
-- history go together; no foreign key, whose checks would make every drop scan.
CREATE TABLE saga_steps (
  seq        bigint      GENERATED ALWAYS AS IDENTITY,
  saga_id    uuid        NOT NULL,
  step       text        NOT NULL,
  event      text        NOT NULL,
  detail     jsonb,
  at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (saga_id, seq)
) PARTITION BY RANGE (saga_id);
CREATE TABLE saga_steps_other PARTITION OF saga_steps DEFAULT;

-- The level of a token bucket at `at`: what it held at `refilled_at` plus what the
-- rate added since, capped at the burst.
CREATE FUNCTION bucket_level(tokens double precision, refilled_at timestamptz, rate double precision,
                             burst double precision, at timestamptz)
RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
  SELECT least(burst, tokens + rate * greatest(0, extract(epoch FROM at - refilled_at)::double precision))
$$;

-- A bucket's size: the burst set, or by default a tenth of a second of the rate.
CREATE FUNCTION bucket_burst(burst integer, rate double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(burst, greatest(1, ceil(rate / 10)))::double precision
$$;

-- The group buckets of a queue below their brim, as {group: whole tokens}, and the
-- highest level under one token (null: every group has a whole token).
CREATE FUNCTION group_tokens(p_queue text, p_rate double precision, p_burst double precision,
                             p_now timestamptz, OUT tokens jsonb, OUT low double precision)
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
  SELECT coalesce(jsonb_object_agg(g.group_key, floor(g.level)::integer), '{}'::jsonb),
         max(g.level) FILTER (WHERE g.level < 1)
  FROM (SELECT b.group_key, bucket_level(b.tokens, b.refilled_at, p_rate, p_burst, p_now) AS level
        FROM queue_buckets b WHERE b.queue = p_queue AND b.group_key <> '') g
  WHERE g.level < p_burst
$$;

-- A limited queue's claim locks its candidates first, in parallel with other claimers,
-- and takes the queue's row lock only in flow_grant, to cut the batch. flow_prepare runs
-- before, unlocked: the group limits the scan needs.
CREATE FUNCTION flow_prepare(p_queue text, p_now timestamptz)
RETURNS TABLE (
  ready        boolean,          -- always true: the claim gates its scan on this row
  group_max     integer,
  group_tokens  jsonb,           -- {group: whole tokens} for groups below group_burst
  group_wait_ms double precision -- when a group has no whole token: when the first one will
)
LANGUAGE plpgsql VOLATILE
ROWS 1 -- the default, 1,000, pushes the claim's estimate past jit_above_cost
SET search_path FROM CURRENT
AS $$
DECLARE
  q        queues%ROWTYPE;
  v_tokens jsonb;
  v_low    double precision;
BEGIN
  SELECT * INTO q FROM queues WHERE name = p_queue;
  IF NOT FOUND THEN
    RETURN QUERY SELECT true, NULL::int, NULL::jsonb, NULL::float8;
    RETURN;
  END IF;

  IF q.group_rate_per_second IS NOT NULL THEN
    SELECT t.tokens, t.low INTO v_tokens, v_low
    FROM group_tokens(p_queue, q.group_rate_per_second, bucket_burst(q.group_burst, q.group_rate_per_second), p_now) t;
  END IF;
  RETURN QUERY SELECT true, q.group_max_in_flight, v_tokens, (1 - v_low) / q.group_rate_per_second * 1000;
END
$$;

-- How many of the p_want candidates the claim may keep, and what it needs to keep to
-- the limits. The counts are read after the queue lock is granted, and a VOLATILE
-- function takes a fresh snapshot per statement: it sees every claim committed before.
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
ROWS 1 -- the default, 1,000, pushes the claim's estimate past jit_above_cost
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
    -- purge deletes such rows, so the claim only reads here.
    SELECT coalesce(sum(l.messages), 0) INTO busy FROM queue_leases l
    WHERE l.queue = p_queue AND l.locked_until > p_now;
    n := least(n, greatest(0, q.max_in_flight - busy));
    IF n = 0 THEN wait := 25; END IF; -- a lease may end in another process: poll soon
  END IF;

  IF q.rate_per_second IS NOT NULL THEN
    v_burst := bucket_burst(q.burst, q.rate_per_second);
    SELECT bucket_level(b.tokens, b.refilled_at, q.rate_per_second, v_burst, p_now) INTO level
    FROM queue_buckets b WHERE b.queue = p_queue AND b.group_key = '';
    level := coalesce(level, v_burst);
    n := least(n, floor(level)::integer);
    IF level < 1 THEN wait := greatest(coalesce(wait, 0), (1 - level) / q.rate_per_second * 1000); END IF;
  END IF;

  IF q.group_rate_per_second IS NOT NULL THEN
    v_gburst := bucket_burst(q.group_burst, q.group_rate_per_second);
    SELECT t.tokens, t.low INTO v_gtokens, level FROM group_tokens(p_queue, q.group_rate_per_second, v_gburst, p_now) t;
    IF wait IS NULL AND level IS NOT NULL THEN wait := (1 - level) / q.group_rate_per_second * 1000; END IF;
  END IF;

  RETURN QUERY SELECT n, q.max_in_flight IS NOT NULL, wait,
                      q.rate_per_second, v_burst, q.group_rate_per_second, v_gburst, v_gtokens;
END
$$;

-- migrate:down

DROP FUNCTION flow_grant(text, integer, timestamptz);
DROP FUNCTION flow_prepare(text, timestamptz);
DROP FUNCTION group_tokens(text, double precision, double precision, timestamptz);
DROP FUNCTION bucket_burst(integer, double precision);
DROP FUNCTION bucket_level(double precision, timestamptz, double precision, double precision, timestamptz);
DROP TABLE saga_steps;
DROP TABLE sagas;
DROP TABLE dead_letters;
DROP TABLE inbox;
DROP TABLE queue_leases;
DROP TABLE queue_buckets;
DROP TABLE queue_messages;
DROP FUNCTION rotate_outbox(timestamptz, integer, integer, integer);
DROP FUNCTION rotate_queue_messages(timestamptz, integer, integer, integer);
DROP FUNCTION rotate_ring(text, timestamptz, integer, integer, integer);
DROP FUNCTION key_tails_to_hold(text, text[], integer, integer);
DROP FUNCTION key_held_release(text, text[]);
DROP FUNCTION held_to_release(text, text[], integer[]);
DROP FUNCTION held_on_insert(text, text, bigint, integer);
DROP FUNCTION queue_part(uuid);
DROP FUNCTION direct_routes_partition(integer, integer);
DROP TABLE direct_routes;
DROP TABLE half_message_decisions;
DROP TABLE outbox;
DROP TABLE queues;
