import type { Executor, Logger } from '@sagabox/core';
import {
  getMessage,
  listDeadLetters,
  listHalfMessages,
  listMessages,
  needsAttention,
  outboxStats,
  queueStats,
  storageHealth,
  type DeadLetter,
  type MessageDetail,
  type MessageFilter,
  type MessageState,
  type QueueStats,
} from '@sagabox/core/admin';
import { countSagas, getSaga, listSagas, type SagaStatus } from '@sagabox/saga';
import type { Access } from './dashboard-auth.js';
import { HttpError } from './dashboard-http.js';

/** How many dead letters, half messages and sagas the overview lists. */
export const DASHBOARD_LIST_LIMIT = 50;

/** A queue's numbers on the overview, with how fast its backlog grows (negative: shrinks). */
export interface DashboardQueue extends QueueStats {
  /** Change of ready + in flight + delayed per second over the last minute (null until two reads). */
  backlogPerSecond: number | null;
}

/** What a read route needs. */
export interface ReadContext {
  db: Executor;
  schema: string;
  access: Access;
  log: Logger;
  query: URLSearchParams;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const STATUSES: readonly SagaStatus[] = ['running', 'compensating', 'completed', 'compensated', 'failed'];
const RATE_WINDOW_MS = 60_000;

/** Payloads may hold personal data: only a user granted `payloads` gets them. */
export function deadLetterView(d: DeadLetter, access: Access): DeadLetter | (Omit<DeadLetter, 'payload'> & { payload: null; payloadHidden: true }) {
  return access.permissions.has('payloads') ? d : { ...d, payload: null, payloadHidden: true };
}

function messageView(m: MessageDetail, access: Access): unknown {
  if (access.permissions.has('payloads')) return m;
  return {
    ...m,
    copies: m.copies.map((c) => ({ ...c, payload: null, payloadHidden: true })),
    deadLetters: m.deadLetters.map((d) => deadLetterView(d, access)),
  };
}

/** Backlog of each queue over the last minute, for its rate of change. */
export function createBacklogRates(): (queues: QueueStats[]) => DashboardQueue[] {
  const history: { at: number; backlog: Map<string, number> }[] = [];
  return (queues) => {
    const now = Date.now();
    const backlog = new Map(queues.map((q) => [q.queue, q.ready + q.inFlight + q.delayed]));
    while (history.length > 0 && now - history[0]!.at > RATE_WINDOW_MS) history.shift();
    const oldest = history[0];
    history.push({ at: now, backlog });
    return queues.map((q) => {
      const before = oldest?.backlog.get(q.queue);
      const seconds = oldest ? (now - oldest.at) / 1_000 : 0;
      return { ...q, backlogPerSecond: before === undefined || seconds < 0.5 ? null : (backlog.get(q.queue)! - before) / seconds };
    });
  };
}

export async function overview(ctx: ReadContext, rates: (queues: QueueStats[]) => DashboardQueue[]): Promise<unknown> {
  const { db, schema } = ctx;
  const [queues, outbox, deadLetters, halfMessages, sagaCounts, sagas] = await Promise.all([
    queueStats(db, { schema }),
    outboxStats(db, { schema }),
    listDeadLetters(db, { schema, limit: DASHBOARD_LIST_LIMIT }),
    listHalfMessages(db, { schema, limit: DASHBOARD_LIST_LIMIT }),
    countSagas(db, { schema }),
    listSagas(db, { schema, limit: DASHBOARD_LIST_LIMIT }),
  ]);
  // After the others: run beside them, one of their own queries would be the oldest snapshot.
  const storage = await storageHealth(db, { schema }).catch((err: unknown) => {
    ctx.log.warn({ err }, 'dashboard: storage health unavailable');
    return null;
  });
  return {
    at: new Date(), queues: rates(queues), outbox, deadLetters: deadLetters.map((d) => deadLetterView(d, ctx.access)),
    halfMessages, sagaCounts, sagas, storage,
  };
}

/** `GET api/messages?queue=&state=&topic=&key=&group=&id=&error=&after=&limit=`: one page of `listMessages`. */
export async function messages(ctx: ReadContext): Promise<unknown> {
  const q = ctx.query;
  const filter: MessageFilter = { schema: ctx.schema };
  const text = (name: string): string | undefined => {
    const v = q.get(name);
    return v === null || v === '' ? undefined : v;
  };
  const queue = text('queue');
  if (queue !== undefined) filter.queue = queue;
  const state = text('state');
  if (state !== undefined) filter.state = state as MessageState; // listMessages checks it
  for (const [param, key] of [['topic', 'topic'], ['key', 'key'], ['group', 'group'], ['id', 'id'], ['error', 'errorContains'], ['after', 'after']] as const) {
    const v = text(param);
    if (v !== undefined) filter[key] = v;
  }
  const limit = text('limit');
  if (limit !== undefined) {
    if (!/^\d{1,4}$/.test(limit)) throw new HttpError(400, 'limit must be a whole number');
    filter.limit = Number(limit);
  }
  return listMessages(ctx.db, filter);
}

export async function message(ctx: ReadContext, id: string): Promise<unknown> {
  if (!UUID.test(id)) throw new HttpError(400, 'message ids are UUIDs');
  const found = await getMessage(ctx.db, id, { schema: ctx.schema });
  if (!found) throw new HttpError(404, `no message ${id}`);
  return messageView(found, ctx.access);
}

/** Largest `limit` of `GET api/dead-letters`. */
const MAX_DEAD_LETTER_PAGE = 1_000;

/**
 * `GET api/dead-letters?queue=&topic=&reason=&before=&limit=`: one page, newest first, as
 * `{ deadLetters, next }`; `next` is the `before` of the following page, null on the last.
 */
export async function deadLetters(ctx: ReadContext): Promise<unknown> {
  const q = ctx.query;
  const filter = deadLetterFilter({ queue: q.get('queue'), topic: q.get('topic'), reason: q.get('reason') });
  const limitText = q.get('limit');
  if (limitText !== null && limitText !== '' && !(/^\d{1,4}$/.test(limitText) && Number(limitText) >= 1 && Number(limitText) <= MAX_DEAD_LETTER_PAGE)) {
    throw new HttpError(400, `limit must be a whole number from 1 to ${MAX_DEAD_LETTER_PAGE}`);
  }
  const limit = limitText ? Number(limitText) : DASHBOARD_LIST_LIMIT;
  const before = q.get('before') || undefined; // listDeadLetters checks it
  // One row more than the page tells whether a next page exists.
  const rows = await listDeadLetters(ctx.db, { ...filter, schema: ctx.schema, limit: limit + 1, ...(before !== undefined ? { before } : {}) });
  const page = rows.slice(0, limit);
  return { deadLetters: page.map((d) => deadLetterView(d, ctx.access)), next: rows.length > limit ? page.at(-1)!.deadId : null };
}

/** A dead-letter filter from a query string or JSON body; `listDeadLetters` checks the values. */
export function deadLetterFilter(input: Record<string, unknown>): { queue?: string; topic?: string; reason?: string; deadIds?: string[] } {
  const out: { queue?: string; topic?: string; reason?: string; deadIds?: string[] } = {};
  for (const k of ['queue', 'topic', 'reason'] as const) {
    const v = input[k];
    if (v === undefined || v === null || v === '') continue;
    if (typeof v !== 'string') throw new HttpError(400, `${k} must be a string`);
    out[k] = v;
  }
  if (input.deadIds !== undefined) {
    if (!Array.isArray(input.deadIds) || input.deadIds.some((d) => typeof d !== 'string')) throw new HttpError(400, 'deadIds must be a list of ids');
    out.deadIds = input.deadIds as string[];
  }
  return out;
}

export async function sagas(ctx: ReadContext): Promise<unknown> {
  const status = ctx.query.get('status') || undefined;
  const type = ctx.query.get('type') || undefined;
  if (status !== undefined && !STATUSES.includes(status as SagaStatus)) throw new HttpError(400, `status must be one of ${STATUSES.join(', ')}`);
  return listSagas(ctx.db, { schema: ctx.schema, limit: DASHBOARD_LIST_LIMIT, ...(status ? { status: status as SagaStatus } : {}), ...(type ? { type } : {}) });
}

export async function saga(ctx: ReadContext, id: string): Promise<unknown> {
  if (!UUID.test(id)) throw new HttpError(400, 'saga ids are UUIDs');
  const details = await getSaga(ctx.db, id, { schema: ctx.schema });
  if (!details) throw new HttpError(404, `no saga ${id}`);
  return details;
}

/** `GET api/attention?maxAttempts=`: everything an operator should look at, payloads never included. */
export async function attention(ctx: ReadContext): Promise<unknown> {
  const max = ctx.query.get('maxAttempts');
  if (max !== null && !/^\d{1,4}$/.test(max)) throw new HttpError(400, 'maxAttempts must be a whole number');
  return needsAttention(ctx.db, { schema: ctx.schema, ...(max !== null ? { maxAttempts: Number(max) } : {}) });
}
