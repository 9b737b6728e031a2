import type { Executor, Logger } from '@sagabox/core';
import {
  cancelMessages,
  countDeadLetters,
  decideHalfMessage,
  deleteMessages,
  listDeadLetters,
  pauseQueue,
  purgeDeadLetters,
  replayDeadLetters,
  resumeQueue,
  retryMessages,
  type MessageActionFilter,
  type MessageState,
} from '@sagabox/core/admin';
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
  if (dryRun(ctx.body)) return { action, dryRun: true, affected: await countDeadLetters(ctx.db, filter) };
  const affected = await (action === 'replay' ? replayDeadLetters : purgeDeadLetters)(ctx.db, filter);
  ctx.log.info({ ...filter, by: ctx.access.name, affected }, `dead letters ${action === 'replay' ? 'replayed' : 'purged'} from the dashboard`);
  return { action, dryRun: false, affected };
}

const FILTER_TEXT = ['queue', 'topic', 'key', 'group', 'id', 'errorContains'] as const;

/** A message-action filter from a JSON body; the admin functions check the values before any SQL. */
function messageActionFilter(raw: unknown, schema: string): MessageActionFilter {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new HttpError(400, 'filter must be an object');
  const input = raw as Record<string, unknown>;
  const filter: MessageActionFilter = { schema };
  for (const k of FILTER_TEXT) {
    const v = input[k];
    if (v === undefined || v === null || v === '') continue;
    if (typeof v !== 'string') throw new HttpError(400, `filter.${k} must be a string`);
    filter[k] = v;
  }
  if (input.state !== undefined && input.state !== null && input.state !== '') filter.state = input.state as MessageState;
  if (input.limit !== undefined) filter.limit = input.limit as number;
  return filter;
}

/**
 * `POST api/messages/retry|cancel|delete` with `{ filter, dryRun, reason }`: one message
 * (`filter.id`) or every pending one a filter matches. The dry run is the preview the
 * confirmation shows; messages under a live lease are never touched (`inFlight`).
 */
export async function messageAction(ctx: ActionContext, action: 'retry' | 'cancel' | 'delete'): Promise<unknown> {
  const filter = messageActionFilter(ctx.body.filter ?? {}, ctx.schema);
  const options = { dryRun: dryRun(ctx.body) };
  const result =
    action === 'retry' ? await retryMessages(ctx.db, filter, options)
    : action === 'delete' ? await deleteMessages(ctx.db, filter, options)
    : await cancelMessages(ctx.db, filter, { ...options, reason: optionalText(ctx.body, 'reason', 2_000) ?? 'cancelled from the dashboard', by: ctx.access.name });
  if (!options.dryRun) ctx.log.info({ queue: filter.queue ?? null, by: ctx.access.name, affected: result.affected, inFlight: result.inFlight }, `messages: ${action} from the dashboard`);
  return result;
}

/** `POST api/half-messages/:id/commit|rollback` with `{ reason }`: an operator's decision, recorded with the token's name. */
export async function halfMessageDecision(ctx: ActionContext, id: string, decision: 'commit' | 'rollback'): Promise<unknown> {
  if (!UUID.test(id)) throw new HttpError(400, 'message ids are UUIDs');
  const reason = optionalText(ctx.body, 'reason', 2_000) ?? 'decided from the dashboard';
  const record = await decideHalfMessage(ctx.db, id, { decision, by: ctx.access.name, reason, schema: ctx.schema });
  ctx.log.info({ messageId: id, decision, by: ctx.access.name }, 'half message decided from the dashboard');
  return record;
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
