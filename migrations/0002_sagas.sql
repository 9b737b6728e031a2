-- Why: sagas are persisted state machines. One row per instance holds the whole
-- state so that a transition is one UPDATE guarded by `revision` (optimistic
-- concurrency); the step history is append-only, for inspection and for proving
-- that no compensation ran without its step.

-- migrate:up

CREATE TABLE sagas (
  id           uuid        PRIMARY KEY,
  saga_type    text        NOT NULL CHECK (length(saga_type) BETWEEN 1 AND 255),
  saga_version integer     NOT NULL CHECK (saga_version >= 1),
  status       text        NOT NULL CHECK (status IN ('running', 'compensating', 'completed', 'compensated', 'failed')),
  current_step integer     NOT NULL DEFAULT 0,
  state        jsonb       NOT NULL,
  -- Bumped by every transition; a transition that read an older revision loses.
  revision     integer     NOT NULL DEFAULT 0,
  -- The attempt token of the step in flight: replies and timeouts carry it, so a
  -- late reply to an earlier attempt (or after a timeout) changes nothing.
  step_token   uuid,
  deadline     timestamptz,
  error        text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sagas_status_updated ON sagas (status, updated_at);

CREATE TABLE saga_steps (
  seq        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  saga_id    uuid        NOT NULL REFERENCES sagas (id) ON DELETE CASCADE,
  step       text        NOT NULL,
  event      text        NOT NULL,
  detail     jsonb,
  at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX saga_steps_saga ON saga_steps (saga_id, seq);

-- migrate:down

DROP TABLE saga_steps;
DROP TABLE sagas;
