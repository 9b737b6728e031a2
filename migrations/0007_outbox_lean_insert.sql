-- Why: every publish is a one-row INSERT into the outbox inside the producer's own
-- transaction, so each fixed cost of that INSERT is paid by every producer commit.
-- Measured with pgbench (4 clients; BEGIN, a business row, a message row, COMMIT)
-- against the same loop with a plain four-column row under one index:
--   * the outbox's row CHECK (0006) cost about 9% of the commit rate. PostgreSQL
--     rebuilds every CHECK expression once per statement, and a publish is a statement
--     of one row; even a one-clause CHECK cost about 4%;
--   * the unique index on id, with the ON CONFLICT speculative insert it served, cost
--     about 13% more.
-- Without both, a publish costs what the plain row costs (0.99x in the same run).
--
-- What takes their place:
--   * Field rules: the outbox's only writers are sagabox's statements (publish,
--     prepare, replay), which validate every field before they write, and the relay
--     checks each row it claims and dead-letters, as 'invalid', one it cannot deliver
--     (a row written by hand, say) instead of failing on it.
--   * A repeated id is removed where it is delivered instead of where it is published:
--     a queue row is keyed (queue, id) and the consumers' inbox (consumer, message id).
--     That was already the only protection once the first copy had left the outbox,
--     which is usually within milliseconds.
--   * Half messages are still looked up by id (commit, rollback, a repeated prepare),
--     so ids stay unique among prepared rows, through a partial index that a ready
--     row's INSERT only tests the predicate of.

-- migrate:up

ALTER TABLE outbox DROP CONSTRAINT outbox_row_check;
DROP INDEX outbox_id_key;
CREATE UNIQUE INDEX outbox_prepared_id ON outbox (id) WHERE state = 'prepared';

-- migrate:down

-- Fails while the outbox holds an id twice (a repeat not yet delivered): let the relay
-- drain the outbox first.
DROP INDEX outbox_prepared_id;
CREATE UNIQUE INDEX outbox_id_key ON outbox (id);
ALTER TABLE outbox ADD CONSTRAINT outbox_row_check CHECK (
      length(topic) BETWEEN 1 AND 255
  AND (key IS NULL OR length(key) BETWEEN 1 AND 255)
  AND (group_key IS NULL OR length(group_key) BETWEEN 1 AND 255)
  AND jsonb_typeof(headers) = 'object'
  AND state IN ('ready', 'prepared')
  AND (state = 'ready' OR check_at IS NOT NULL)
  AND attempts >= 0
  AND checks >= 0
);
