-- Why: one hop instead of two. A topic routed to a queue in the producer's own
-- database needs no relay: `publish` can write the queue row itself, in the
-- producer's transaction, with the same guarantees (it commits or rolls back with the
-- business rows; per-key order is commit order through the same advisory lock; the
-- same id twice is a no-op through the queue's primary key). The message skips the
-- outbox and the relay's claim, enqueue and delete, and the worker is woken by the
-- producer's own NOTIFY.
--
-- A topic that matches no row here goes to the outbox as before, so the relay keeps
-- serving other databases and brokers. A topic that matches a row goes only to the
-- queues of its matching rows.
--
-- Churn: none. Routes change when a deployment changes, and publish reads the whole
-- (small) table on every call, so it is consistent with the caller's snapshot.

-- migrate:up

CREATE TABLE direct_routes (
  -- The topic pattern as given ('orders.created', 'orders.*', 'orders.#').
  pattern     text        NOT NULL CHECK (length(pattern) BETWEEN 1 AND 255),
  queue       text        NOT NULL REFERENCES queues (name) ON DELETE CASCADE,
  -- The pattern compiled (by sagabox, from a validated pattern) to an anchored regular
  -- expression over '.' || topic, so publish matches with one `~` per route.
  topic_regex text        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (pattern, queue)
);

-- migrate:down

DROP TABLE direct_routes;
