import type { Executor, Logger } from '@sagabox/core';
import { listDeadLetters, MAX_DEAD_LETTER_LIST_LIMIT, pauseQueue, purgeDeadLetters, replayDeadLetters, resumeQueue } from '@sagabox/core/admin';
import { cancelSaga, retrySaga } from '@sagabox/saga';
import type { Access } from './dashboard-auth.js';
import { HttpError } from './dashboard-http.js';
import { deadLetterFilter } from './dashboard-reads.js';

/** What an action route needs. */
export interface ActionContext {
  db: Executor;
  schema: string;
  access: Access;
  log: Logger;
  body: Record<string, unknown>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DEAD_ID = /^\d{1,19}$/;

function optionalText(body: Record<string, unknown>, name: string, max: number): string | undefined {
  const v = body[name];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string' || v.length > max) throw new HttpError(400, `${name} must be a string of at most ${max} characters`);
  return v;
}

function dryRun(body: Record<string, unknown>): boolean {
  if (body.dryRun !== undefined && typeof body.dryRun !== 'boolean') throw new HttpError(400, 'dryRun must be true or false');
  return body.dryRun === true;
}

/** `POST api/queues/:queue/pause|resume`. */
export async function pauseOrResume(ctx: ActionContext, queue: string, action: 'pause' | 'resume'): Promise<unknown> {
  const result = await (action === 'pause' ? pauseQueue : resumeQueue)(ctx.db, queue, { schema: ctx.schema });
  ctx.log.info({ queue: result.queue, by: ctx.access.name, changed: result.changed }, `queue ${action}d from the dashboard`);
  return result;
}

/** `POST api/dead-letters/:deadId/replay`: one dead letter back to its queue or outbox. */
export async function replayOne(ctx: ActionContext, deadId: string): Promise<unknown> {
  if (!DEAD_ID.test(deadId)) throw new HttpError(400, 'dead-letter ids are numbers');
  const replayed = await replayDeadLetters(ctx.db, { schema: ctx.schema, deadIds: [deadId] });
  if (replayed === 0) {
    const [still] = await listDeadLetters(ctx.db, { schema: ctx.schema, deadIds: [deadId] });
    throw new HttpError(still ? 409 : 404, still ? `dead letter ${deadId} is already back in its queue or outbox` : `no dead letter ${deadId}`);
  }
  ctx.log.info({ deadId, by: ctx.access.name }, 'dead letter replayed from the dashboard');
  return { replayed };
}

/**
 * `POST api/dead-letters/replay|purge` with `{ filter, dryRun }`. A dry run counts what
 * the filter matches (the preview the confirmation dialog shows) and changes nothing.
 */
export async function bulkDeadLetters(ctx: ActionContext, action: 'replay' | 'purge'): Promise<unknown> {
  const rawFilter = ctx.body.filter ?? {};
  if (typeof rawFilter !== 'object' || rawFilter === null || Array.isArray(rawFilter)) throw new HttpError(400, 'filter must be an object');
  const filter = { ...deadLetterFilter(rawFilter as Record<string, unknown>), schema: ctx.schema };
  if (dryRun(ctx.body)) {
    const matched = await listDeadLetters(ctx.db, { ...filter, limit: MAX_DEAD_LETTER_LIST_LIMIT });
    return { action, dryRun: true, affected: matched.length, capped: matched.length === MAX_DEAD_LETTER_LIST_LIMIT };
  }
  const affected = await (action === 'replay' ? replayDeadLetters : purgeDeadLetters)(ctx.db, filter);
  ctx.log.info({ ...filter, by: ctx.access.name, affected }, `dead letters ${action === 'replay' ? 'replayed' : 'purged'} from the dashboard`);
  return { action, dryRun: false, affected };
}

/** `POST api/sagas/:id/cancel|retry`; cancel takes `{ reason }`. */
export async function sagaAction(ctx: ActionContext, id: string, action: 'cancel' | 'retry'): Promise<unknown> {
  if (!UUID.test(id)) throw new HttpError(400, 'saga ids are UUIDs');
  if (action === 'cancel') {
    const reason = optionalText(ctx.body, 'reason', 2_000);
    await cancelSaga(ctx.db, id, { schema: ctx.schema, reason: `${reason ?? 'cancelled'} (by ${ctx.access.name} from the dashboard)` });
  } else {
    await retrySaga(ctx.db, id, { schema: ctx.schema });
  }
  ctx.log.info({ sagaId: id, by: ctx.access.name }, `saga ${action} requested from the dashboard`);
  return { sagaId: id, requested: action };
}
