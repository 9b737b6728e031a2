-- Why: the whole messaging core of sagabox in one step -- the outbox that producers
-- write in their own transaction, the queues that consumers claim from, the dead
-- letters that keep what could not be handled, and the inbox that makes handling
-- idempotent. Runs with search_path set to the sagabox schema, so names here are
-- unqualified and the schema name is never spliced into this file.
--
-- Churn: outbox and queue rows are deleted as soon as they are delivered or acked
-- (DELETE, not UPDATE-and-keep), so hot tables stay small. Every index below exists
-- for one claim query; none exist "just in case". See docs/operations.md for the
-- autovacuum settings that keep bloat flat under sustained load.

-- migrate:up

CREATE TABLE outbox (
  -- Database-assigned order. Delivery order follows seq, never client ids: two
  -- UUIDv7s made in the same millisecond by two processes are not ordered.
  seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id           uuid        NOT NULL,
  topic        text        NOT NULL CHECK (length(topic) BETWEEN 1 AND 255),
  -- Ordering key: messages with the same key leave one at a time, in seq order.
  key          text        CHECK (key IS NULL OR length(key) BETWEEN 1 AND 255),
  payload      jsonb       NOT NULL,
  headers      jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(headers) = 'object'),
  -- 'prepared' is a half message: stored, invisible to delivery until committed.
  state        text        NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'prepared')),
  -- When the relay may (re)try to move it: now, or later after a failed delivery.
  available_at timestamptz NOT NULL DEFAULT now(),
  -- When consumers may handle it (a delayed message). The relay moves delayed
  -- messages to their queues at once, so a large delayed backlog never slows the
  -- relay's claim; the queue's run_at does the waiting.
  run_at       timestamptz,
  expires_at   timestamptz,
  attempts     integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  last_error   text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  -- Half-message check-back bookkeeping: when to ask the producer's checker next,
  -- and how often it was asked. A checking relay holds the row lock while it asks.
  check_at     timestamptz,
  checks       integer     NOT NULL DEFAULT 0 CHECK (checks >= 0),
  CHECK (state = 'ready' OR check_at IS NOT NULL)
);
-- Idempotent publish: the same id twice is a no-op (ON CONFLICT (id) DO NOTHING).
CREATE UNIQUE INDEX outbox_id_key ON outbox (id);
-- Head-of-key test in the relay's claim: "is there an earlier row with my key?"
CREATE INDEX outbox_key_seq ON outbox (key, seq) WHERE key IS NOT NULL;
-- Check-back scan over half messages only.
CREATE INDEX outbox_prepared_check_at ON outbox (check_at) WHERE state = 'prepared';

-- Named queues. A queue is a subscription of one or more topics (routes live in
-- the relay's configuration); a row here makes an empty queue visible to admins.
CREATE TABLE queues (
  name       text        PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:-]{1,128}$'),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE queue_messages (
  seq          bigint      GENERATED ALWAYS AS IDENTITY,
  queue        text        NOT NULL,
  id           uuid        NOT NULL,
  topic        text        NOT NULL,
  key          text,
  payload      jsonb       NOT NULL,
  headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
  priority     smallint    NOT NULL DEFAULT 0,
  run_at       timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz,
  attempts     integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  -- Lease: a claim sets a fresh token and an expiry; ack and nack must present the
  -- token, so a worker whose lease ran out cannot complete a message another holds.
  lease_token  uuid,
  locked_until timestamptz,
  locked_by    text,
  last_error   text,
  created_at   timestamptz NOT NULL, -- when the producer published it
  enqueued_at  timestamptz NOT NULL DEFAULT now(),
  CHECK ((lease_token IS NULL) = (locked_until IS NULL)),
  -- Delivery is idempotent by (queue, id): a relay that dies after delivering but
  -- before deleting its outbox row re-delivers into ON CONFLICT DO NOTHING.
  PRIMARY KEY (queue, id)
);
-- The worker claim walks this index in order.
CREATE INDEX queue_messages_claim ON queue_messages (queue, priority DESC, seq);
-- Head-of-key test in the worker claim.
CREATE INDEX queue_messages_key_seq ON queue_messages (queue, key, seq) WHERE key IS NOT NULL;

CREATE TABLE dead_letters (
  dead_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- Where it died: a queue's worker ('queue') or the relay before any queue ('outbox').
  source       text        NOT NULL CHECK (source IN ('outbox', 'queue')),
  queue        text        CHECK ((source = 'queue') = (queue IS NOT NULL)),
  id           uuid        NOT NULL,
  topic        text        NOT NULL,
  key          text,
  payload      jsonb       NOT NULL,
  headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
  priority     smallint    NOT NULL DEFAULT 0,
  reason       text        NOT NULL CHECK (reason IN ('failed', 'expired', 'invalid', 'unroutable', 'unresolved', 'non_retryable')),
  error        text        NOT NULL,
  attempts     integer     NOT NULL,
  created_at   timestamptz NOT NULL,
  dead_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_queue_dead_at ON dead_letters (queue, dead_at);

CREATE TABLE inbox (
  consumer     text        NOT NULL,
  message_id   uuid        NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, message_id)
);
-- Retention purge deletes by age.
CREATE INDEX inbox_processed_at ON inbox (processed_at);

-- Every decision taken about a half message, kept for the admin API and audits.
CREATE TABLE half_message_decisions (
  seq        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  message_id uuid        NOT NULL,
  topic      text        NOT NULL,
  decision   text        NOT NULL CHECK (decision IN ('prepared', 'commit', 'rollback', 'unknown', 'unresolved', 'no_checker', 'check_failed')),
  source     text        NOT NULL CHECK (source IN ('producer', 'checker', 'relay')),
  detail     text,
  decided_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX half_message_decisions_message ON half_message_decisions (message_id, seq);

-- migrate:down

DROP TABLE half_message_decisions;
DROP TABLE inbox;
DROP TABLE dead_letters;
DROP TABLE queue_messages;
DROP TABLE queues;
DROP TABLE outbox;
