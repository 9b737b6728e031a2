import type { IncomingMessage, ServerResponse } from 'node:http';
import { bearerTokenMatches } from '@sagabox/core/extension';
import {
  DEFAULT_SCHEMA,
  isSagaboxError,
  silentLogger,
  type Executor,
  type Logger,
} from '@sagabox/core';
import {
  listDeadLetters,
  listHalfMessages,
  outboxStats,
  queueStats,
  replayDeadLetters,
  storageHealth,
  type QueueStats,
} from '@sagabox/core/admin';
import { countSagas, getSaga, listSagas, type SagaStatus } from '@sagabox/saga';
import { DASHBOARD_HTML } from './dashboard-page.js';
import { isLoopbackHost } from './loopback.js';

/** Default refresh interval of the page, in milliseconds. */
export const DEFAULT_DASHBOARD_REFRESH_MS = 2_000;
/** How many dead letters, half messages and sagas the overview lists. */
export const DASHBOARD_LIST_LIMIT = 50;

/** Options of {@link createDashboardHandler}. */
export interface DashboardOptions {
  /** Pool on the sagabox database. */
  pool: Executor;
  /** sagabox schema. Default `'sagabox'`. */
  schema?: string;
  /** When set, every API call needs `Authorization: Bearer <token>` (the page asks for it once). */
  token?: string;
  /** How often the page refreshes, in milliseconds. Default {@link DEFAULT_DASHBOARD_REFRESH_MS}. */
  refreshMs?: number;
  /** Where the dashboard logs failed requests (default: silent). */
  logger?: Logger;
}

/** A queue's numbers on the overview, with how fast its backlog grows (negative: shrinks). */
export interface DashboardQueue extends QueueStats {
  /** Change of ready + in flight + delayed per second over the last minute (null until two reads). */
  backlogPerSecond: number | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DEAD_ID = /^\d{1,19}$/;
const STATUSES: readonly SagaStatus[] = ['running', 'compensating', 'completed', 'compensated', 'failed'];
const RATE_WINDOW_MS = 60_000;

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

function hostnameOf(host: string | undefined): string {
  const h = (host ?? '').toLowerCase();
  return h.startsWith('[') ? h.slice(1, h.indexOf(']')) : h.replace(/:\d+$/, '');
}

/**
 * The dashboard as a `node:http` request handler: the page at `/` and a small JSON API
 * under `/api`. Reads go through the admin functions of `@sagabox/core` and
 * `@sagabox/saga` only; request input is validated (ids, statuses) and passed as
 * parameters, never turned into SQL. Mount it yourself, or use {@link serveDashboard}.
 *
 * Routes: `GET /api/overview`, `GET /api/sagas?status=&type=`, `GET /api/sagas/:id`,
 * `POST /api/dead-letters/:deadId/replay` (needs `content-type: application/json`, so a
 * cross-site form cannot post it).
 *
 * @example
 * http.createServer(createDashboardHandler({ pool, token: process.env.DASHBOARD_TOKEN })).listen(8080, '127.0.0.1');
 */
export function createDashboardHandler(options: DashboardOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const schema = options.schema ?? DEFAULT_SCHEMA;
  const db = options.pool;
  const log = (options.logger ?? silentLogger).child({ component: 'dashboard' });
  const refreshMs = options.refreshMs ?? DEFAULT_DASHBOARD_REFRESH_MS;
  const page = DASHBOARD_HTML.replace('__REFRESH_MS__', String(refreshMs)).replace('__NEEDS_TOKEN__', String(options.token !== undefined));
  // Backlog of each queue over the last minute, for its rate of change.
  const history: { at: number; backlog: Map<string, number> }[] = [];

  const withRates = (queues: QueueStats[]): DashboardQueue[] => {
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

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://dashboard');
    const path = url.pathname;
    if (req.method === 'GET' && (path === '/' || path === '/index.html')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-frame-options': 'DENY' });
      res.end(page);
      return;
    }
    if (!path.startsWith('/api/')) throw new HttpError(404, 'not found');
    // Without a token, only answer requests addressed to a loopback name: a page on
    // another site that rebinds its DNS name to 127.0.0.1 gets nothing.
    if (options.token === undefined && !isLoopbackHost(hostnameOf(req.headers.host))) throw new HttpError(403, 'host not allowed');
    if (options.token !== undefined && !bearerTokenMatches(req.headers.authorization, options.token)) {
      res.setHeader('www-authenticate', 'Bearer');
      throw new HttpError(401, 'a bearer token is required');
    }
    if (req.method === 'GET' && path === '/api/overview') {
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
        log.warn({ err }, 'dashboard: storage health unavailable');
        return null;
      });
      return send(res, 200, { at: new Date(), queues: withRates(queues), outbox, deadLetters, halfMessages, sagaCounts, sagas, storage });
    }
    if (req.method === 'GET' && path === '/api/sagas') {
      const status = url.searchParams.get('status') ?? undefined;
      const type = url.searchParams.get('type') ?? undefined;
      if (status !== undefined && !STATUSES.includes(status as SagaStatus)) throw new HttpError(400, `status must be one of ${STATUSES.join(', ')}`);
      return send(res, 200, await listSagas(db, { schema, limit: DASHBOARD_LIST_LIMIT, ...(status ? { status: status as SagaStatus } : {}), ...(type ? { type } : {}) }));
    }
    const saga = /^\/api\/sagas\/([^/]+)$/.exec(path);
    if (req.method === 'GET' && saga) {
      const id = decodeURIComponent(saga[1]!);
      if (!UUID.test(id)) throw new HttpError(400, 'saga ids are UUIDs');
      const details = await getSaga(db, id, { schema });
      if (!details) throw new HttpError(404, `no saga ${id}`);
      return send(res, 200, details);
    }
    const replay = /^\/api\/dead-letters\/([^/]+)\/replay$/.exec(path);
    if (replay) {
      if (req.method !== 'POST') throw new HttpError(405, 'use POST');
      if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) throw new HttpError(415, 'content-type must be application/json');
      const deadId = replay[1]!;
      if (!DEAD_ID.test(deadId)) throw new HttpError(400, 'dead-letter ids are numbers');
      const replayed = await replayDeadLetters(db, { schema, deadIds: [deadId] });
      if (replayed === 0) {
        const [still] = await listDeadLetters(db, { schema, deadIds: [deadId] });
        throw new HttpError(still ? 409 : 404, still ? `dead letter ${deadId} is already back in its queue or outbox` : `no dead letter ${deadId}`);
      }
      log.info({ deadId }, 'dead letter replayed from the dashboard');
      return send(res, 200, { replayed });
    }
    throw new HttpError(404, 'not found');
  };

  return (req, res) => {
    route(req, res).catch((err: unknown) => {
      if (err instanceof HttpError) return send(res, err.status, { error: err.message });
      if (isSagaboxError(err, 'INVALID_OPTIONS') || isSagaboxError(err, 'INVALID_MESSAGE')) return send(res, 400, { error: (err as Error).message });
      log.error({ err }, 'dashboard request failed');
      send(res, 500, { error: 'internal error (see the server log)' });
    });
  };
}
