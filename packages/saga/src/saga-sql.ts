import { quoteSchema } from '@sagabox/core/extension';

/** The saga tables' runtime queries for one schema; every value is a bind parameter. */
export interface SagaSql {
  insertSaga: string;
  selectType: string;
  lockSaga: string;
  updateSaga: string;
  insertHistory: string;
  selectSaga: string;
  selectSagaWithHistory: string;
  listSagas: string;
  dropQueuedTimeout: string;
  dropOutboxTimeout: string;
}

const cache = new Map<string, SagaSql>();

/** The columns every saga read returns. */
const COLUMNS = `id, saga_type, saga_version, status, current_step, state, revision, step_token, deadline, timeout_id, error, created_at, updated_at`;

/** Returns (and caches) the saga queries for `schema`. */
export function sagaSql(schema: string): SagaSql {
  let q = cache.get(schema);
  if (q) return q;
  const s = quoteSchema(schema);
  q = {
    // ON CONFLICT: a caller-chosen id makes the start idempotent; the caller learns
    // from the empty RETURNING that the saga already existed.
    insertSaga: `
      INSERT INTO ${s}.sagas (id, saga_type, saga_version, status, current_step, state, step_token, deadline, timeout_id)
      VALUES ($1::uuid, $2::text, $3::int, 'running', $4::int, $5::jsonb, $6::uuid, $7::timestamptz, $8::uuid)
      ON CONFLICT (id) DO NOTHING
      RETURNING id`,
    selectType: `SELECT saga_type, saga_version FROM ${s}.sagas WHERE id = $1::uuid`,
    // A transition holds the row lock from its read to its commit, so two transitions of
    // one saga (a reply and a timeout handled by two workers) run one after the other.
    lockSaga: `SELECT ${COLUMNS} FROM ${s}.sagas WHERE id = $1::uuid FOR UPDATE`,
    // The revision guard is redundant with the row lock; it makes a bug that skips the
    // lock fail loudly (0 rows updated) instead of silently losing a transition. The same
    // statement deletes the timeout the transition superseded ($11, null: none) from the
    // orchestrator's queue $10 when it waits there, the usual case, so that costs no round
    // trip; `dropped` says whether it did (see dropQueuedTimeout for a leased one). It also
    // appends the transition's history ($12-$14, as insertHistory), only when the row was
    // updated, again without a round trip of its own.
    updateSaga: `
      WITH dropped AS (
        DELETE FROM ${s}.queue_messages
        WHERE $11::uuid IS NOT NULL AND queue = $10::text AND id = $11::uuid
          AND (locked_until IS NULL OR locked_until < now())
        RETURNING 1
      ), updated AS (
        UPDATE ${s}.sagas
        SET status = $2::text, current_step = $3::int, state = $4::jsonb, step_token = $5::uuid,
            deadline = $6::timestamptz, error = $7::text, timeout_id = $9::uuid, revision = revision + 1, updated_at = now()
        WHERE id = $1::uuid AND revision = $8::int
        RETURNING revision
      ), history AS (
        INSERT INTO ${s}.saga_steps (saga_id, step, event, detail)
        SELECT $1::uuid, t.step, t.event, t.detail
        FROM unnest($12::text[], $13::text[], $14::jsonb[]) WITH ORDINALITY AS t(step, event, detail, ord)
        WHERE EXISTS (SELECT 1 FROM updated)
        ORDER BY t.ord
      )
      SELECT revision, (SELECT count(*)::int FROM dropped) AS dropped FROM updated`,
    insertHistory: `
      INSERT INTO ${s}.saga_steps (saga_id, step, event, detail)
      SELECT $1::uuid, t.step, t.event, t.detail
      FROM unnest($2::text[], $3::text[], $4::jsonb[]) WITH ORDINALITY AS t(step, event, detail, ord)
      ORDER BY t.ord`,
    selectSaga: `SELECT ${COLUMNS} FROM ${s}.sagas WHERE id = $1::uuid`,
    // One statement, so the row and its history come from one snapshot: a transition
    // between two reads would pair a step's history with another step's deadline.
    selectSagaWithHistory: `
      SELECT ${COLUMNS}, h.seqs, h.steps, h.events, h.details, h.ats
      FROM ${s}.sagas
      CROSS JOIN LATERAL (
        SELECT array_agg(seq ORDER BY seq) AS seqs, array_agg(step ORDER BY seq) AS steps, array_agg(event ORDER BY seq) AS events,
               array_agg(detail ORDER BY seq) AS details, array_agg(at ORDER BY seq) AS ats
        FROM ${s}.saga_steps WHERE saga_id = $1::uuid
      ) h
      WHERE id = $1::uuid`,
    listSagas: `
      SELECT ${COLUMNS} FROM ${s}.sagas
      WHERE ($1::text IS NULL OR status = $1::text)
        AND ($2::text IS NULL OR saga_type = $2::text)
      ORDER BY updated_at DESC, id
      LIMIT $3::int`,
    // A superseded step's timeout, $2, waiting in the orchestrator's queue $1. One under a
    // live lease is being handled right now: it waits for our saga row lock and then finds
    // its token stale, so it is left to finish.
    dropQueuedTimeout: `
      DELETE FROM ${s}.queue_messages
      WHERE queue = $1::text AND id = $2::uuid AND (locked_until IS NULL OR locked_until < now())
      RETURNING id`,
    // The same timeout still in the outbox ($1 id, $2 the control topic). No index serves
    // the id (none on the outbox's hot path), so this runs only when the queue had nothing.
    dropOutboxTimeout: `
      DELETE FROM ${s}.outbox WHERE id = $1::uuid AND topic = $2::text AND state = 'ready'
      RETURNING id`,
  };
  cache.set(schema, q);
  return q;
}

/** A `sagas` row as the queries above return it. */
export interface SagaRowData {
  id: string;
  saga_type: string;
  saga_version: number;
  status: SagaStatus;
  current_step: number;
  state: unknown;
  revision: number;
  step_token: string | null;
  deadline: Date | null;
  timeout_id: string | null;
  error: string | null;
  created_at: Date;
  updated_at: Date;
}

/**
 * Saga statuses. `running` and `compensating` are in flight; `completed` and
 * `compensated` are final; `failed` means a compensation kept failing and waits for an
 * operator's `retrySaga`.
 */
export type SagaStatus = 'running' | 'compensating' | 'completed' | 'compensated' | 'failed';
