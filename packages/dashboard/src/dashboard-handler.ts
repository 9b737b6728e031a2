import type { IncomingMessage, ServerResponse } from 'node:http';
import { DEFAULT_SCHEMA, isSagaboxError, SagaboxError, silentLogger, type Executor, type Logger } from '@sagabox/core';
import {
  accessOf,
  cookieOf,
  createLoginThrottle,
  DASHBOARD_PERMISSIONS,
  DEFAULT_DASHBOARD_SESSION_MS,
  findToken,
  SESSION_COOKIE,
  sessionCookieValue,
  sessionSetCookie,
  tokenOfSession,
  tokenProblems,
  type Access,
  type DashboardPermission,
  type DashboardToken,
} from './dashboard-auth.js';
import { bulkDeadLetters, halfMessageDecision, messageAction, pauseOrResume, replayOne, sagaAction, type ActionContext } from './dashboard-actions.js';
import { hostnameOf, HttpError, mountedPath, readJsonBody, sendJson } from './dashboard-http.js';
import { dashboardPage } from './dashboard-page.js';
import { attention, createBacklogRates, deadLetters, message, messages, overview, saga, sagas, type ReadContext } from './dashboard-reads.js';
import { isLoopbackHost } from './loopback.js';

/** Default refresh interval of the page, in milliseconds. */
export const DEFAULT_DASHBOARD_REFRESH_MS = 2_000;

/** Options of {@link createDashboardHandler}. */
export interface DashboardOptions {
  /** Pool on the sagabox database. */
  pool: Executor;
  /** sagabox schema. Default `'sagabox'`. */
  schema?: string;
  /**
   * Tokens that may sign in, each with its permissions. With none (and no `token`), the
   * dashboard answers only requests addressed to a loopback name, with `openPermissions`.
   */
  tokens?: readonly DashboardToken[];
  /** Shorthand for one token named `operator` with `read` and `actions` (payloads stay hidden). */
  token?: string;
  /** What anyone on loopback may do when no token is configured. Default `['read', 'actions']`. */
  openPermissions?: readonly DashboardPermission[];
  /**
   * The path prefix the handler is mounted under when the host passes it whole URLs
   * (plain `http`, a Fastify route), e.g. `'/ops'`. Not needed under Express's
   * `app.use('/ops', handler)`, which strips it. Default `''`.
   */
  basePath?: string;
  /** How long a login lasts, in milliseconds. Default {@link DEFAULT_DASHBOARD_SESSION_MS} (8 hours). */
  sessionMs?: number;
  /** How often the page refreshes, in milliseconds. Default {@link DEFAULT_DASHBOARD_REFRESH_MS}. */
  refreshMs?: number;
  /** Where the dashboard logs failed requests (default: silent). */
  logger?: Logger;
}

type Route = (args: { req: IncomingMessage; access: Access; read: ReadContext; action: () => Promise<ActionContext>; m: string[] }) => Promise<unknown>;

/** The API's routes; `rates` keeps this handler's backlog history for the overview. */
const routesOf = (rates: ReturnType<typeof createBacklogRates>): { method: 'GET' | 'POST'; pattern: RegExp; run: Route }[] => [
  { method: 'GET', pattern: /^\/api\/overview$/, run: ({ read }) => overview(read, rates) },
  { method: 'GET', pattern: /^\/api\/messages$/, run: ({ read }) => messages(read) },
  { method: 'POST', pattern: /^\/api\/messages\/(retry|cancel|delete)$/, run: async ({ action, m }) => messageAction(await action(), m[1] as 'retry' | 'cancel' | 'delete') },
  { method: 'GET', pattern: /^\/api\/messages\/([^/]+)$/, run: ({ read, m }) => message(read, m[1]!) },
  { method: 'GET', pattern: /^\/api\/attention$/, run: ({ read }) => attention(read) },
  { method: 'POST', pattern: /^\/api\/half-messages\/([^/]+)\/(commit|rollback)$/, run: async ({ action, m }) => halfMessageDecision(await action(), m[1]!, m[2] as 'commit' | 'rollback') },
  { method: 'GET', pattern: /^\/api\/dead-letters$/, run: ({ read }) => deadLetters(read) },
  { method: 'GET', pattern: /^\/api\/sagas$/, run: ({ read }) => sagas(read) },
  { method: 'GET', pattern: /^\/api\/sagas\/([^/]+)$/, run: ({ read, m }) => saga(read, m[1]!) },
  { method: 'POST', pattern: /^\/api\/queues\/([^/]+)\/(pause|resume)$/, run: async ({ action, m }) => pauseOrResume(await action(), m[1]!, m[2] as 'pause' | 'resume') },
  { method: 'POST', pattern: /^\/api\/dead-letters\/(replay|purge)$/, run: async ({ action, m }) => bulkDeadLetters(await action(), m[1] as 'replay' | 'purge') },
  { method: 'POST', pattern: /^\/api\/dead-letters\/([^/]+)\/replay$/, run: async ({ action, m }) => replayOne(await action(), m[1]!) },
  { method: 'POST', pattern: /^\/api\/sagas\/([^/]+)\/(cancel|retry)$/, run: async ({ action, m }) => sagaAction(await action(), m[1]!, m[2] as 'cancel' | 'retry') },
];

function resolveOptions(options: DashboardOptions): { tokens: DashboardToken[]; basePath: string; open: Access; sessionMs: number } {
  const problems: string[] = [];
  const tokens = [...(options.tokens ?? [])];
  if (options.tokens !== undefined && !Array.isArray(options.tokens)) problems.push('tokens must be an array');
  if (options.token !== undefined) {
    if (typeof options.token !== 'string' || options.token.length < 8) problems.push('the token must be at least 8 characters');
    else tokens.push({ token: options.token, name: 'operator', permissions: ['actions'] });
  }
  problems.push(...tokenProblems(tokens));
  const basePath = options.basePath ?? '';
  if (typeof basePath !== 'string' || (basePath !== '' && !/^(\/[\w.~-]+)+$/.test(basePath))) problems.push(`basePath must look like /ops (no trailing slash), got ${JSON.stringify(basePath)}`);
  const open = options.openPermissions ?? ['read', 'actions'];
  if (!Array.isArray(open) || open.some((p) => !DASHBOARD_PERMISSIONS.includes(p))) problems.push(`openPermissions must be a list of ${DASHBOARD_PERMISSIONS.join(', ')}`);
  const sessionMs = options.sessionMs ?? DEFAULT_DASHBOARD_SESSION_MS;
  if (!Number.isInteger(sessionMs) || sessionMs < 60_000 || sessionMs > 30 * 86_400_000) problems.push('sessionMs must be a whole number of milliseconds from 60,000 (a minute) to 30 days');
  if (problems.length > 0) throw new SagaboxError('INVALID_OPTIONS', `invalid dashboard options: ${problems.join('; ')}`, { details: { problems } });
  return { tokens, basePath, open: { name: 'local', permissions: new Set<DashboardPermission>(['read', ...open]) }, sessionMs };
}

const STATUS_OF_CODE: Record<string, number> = { NOT_FOUND: 404, SAGA_CONFLICT: 409, HALF_MESSAGE_ALREADY_DECIDED: 409 };

/**
 * The dashboard as a `node:http` request handler: the page at the mount point and a
 * JSON API under `api/`, every URL in the page relative, so it can be mounted under a
 * path of an existing server (plain `http`, Express, Fastify) or served alone with
 * {@link serveDashboard}. Reads and actions go through the admin functions of
 * `@sagabox/core` and `@sagabox/saga`; input is validated and passed as parameters.
 *
 * Access: with `tokens`, a user signs in on the page's form (an HttpOnly session
 * cookie signed with the token) or sends `Authorization: Bearer <token>`; each token's
 * permissions are enforced here, on the server. Without tokens, only requests to a
 * loopback host name are answered. Every action is a JSON `POST`, so a cross-site
 * form cannot trigger one.
 *
 * @throws {SagaboxError} `INVALID_OPTIONS` listing every problem with the options.
 * @example
 * // Under /ops of a plain node:http server:
 * const dashboard = createDashboardHandler({ pool, basePath: '/ops', tokens: [{ name: 'alice', token: process.env.OPS_TOKEN!, permissions: ['actions'] }] });
 * http.createServer((req, res) => (req.url!.startsWith('/ops') ? dashboard(req, res) : app(req, res))).listen(3000);
 */
export function createDashboardHandler(options: DashboardOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { tokens, basePath, open, sessionMs } = resolveOptions(options);
  const schema = options.schema ?? DEFAULT_SCHEMA;
  const db = options.pool;
  const log = (options.logger ?? silentLogger).child({ component: 'dashboard' });
  const routes = routesOf(createBacklogRates());
  const page = dashboardPage({ refreshMs: options.refreshMs ?? DEFAULT_DASHBOARD_REFRESH_MS });

  const throttle = createLoginThrottle();
  const address = (req: IncomingMessage): string => req.socket.remoteAddress ?? 'unknown';
  const checkThrottle = (req: IncomingMessage): void => {
    const wait = throttle.retryAfterMs(address(req), Date.now());
    if (wait > 0) throw Object.assign(new HttpError(429, 'too many failed sign-ins from this address: wait a minute'), { retryAfterS: Math.ceil(wait / 1_000) });
  };

  const accessFor = (req: IncomingMessage): Access => {
    if (tokens.length === 0) {
      // Without a token, only answer requests addressed to a loopback name: a page on
      // another site that rebinds its DNS name to 127.0.0.1 gets nothing.
      if (!isLoopbackHost(hostnameOf(req.headers.host))) throw new HttpError(403, 'host not allowed');
      return open;
    }
    const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const session = cookieOf(req, SESSION_COOKIE);
    if (bearer !== undefined) checkThrottle(req);
    const t = bearer !== undefined ? findToken(tokens, bearer) : session !== undefined ? tokenOfSession(tokens, session, Date.now()) : undefined;
    if (!t && bearer !== undefined) throttle.failed(address(req), Date.now());
    if (!t) throw Object.assign(new HttpError(401, 'sign in first: a token is required'), { bearer: true });
    return accessOf(t);
  };

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const { mount, path, fullPath, search } = mountedPath(req, basePath);
    if (req.method === 'GET' && (path === '' || path === '/' || path === '/index.html')) {
      // The page's URLs are relative: it must be at a path ending in '/'.
      if (!fullPath.endsWith('/') && path !== '/index.html') {
        res.writeHead(308, { location: `${fullPath}/${search}` });
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-frame-options': 'DENY', 'content-security-policy': page.contentSecurityPolicy });
      res.end(page.html);
      return;
    }
    if (!path.startsWith('/api/')) throw new HttpError(404, 'not found');
    if (path === '/api/login' && req.method === 'POST') {
      const body = await readJsonBody(req);
      if (tokens.length === 0) return sendJson(res, 200, session(open, false));
      checkThrottle(req);
      const t = typeof body.token === 'string' ? findToken(tokens, body.token) : undefined;
      if (!t) {
        throttle.failed(address(req), Date.now());
        log.warn({ remote: req.socket.remoteAddress }, 'dashboard: sign-in with an unknown token');
        throw new HttpError(401, 'unknown token');
      }
      log.info({ by: t.name }, 'dashboard: signed in');
      return sendJson(res, 200, session(accessOf(t), true), { 'set-cookie': sessionSetCookie(req, mount, sessionCookieValue(t, Date.now() + sessionMs), sessionMs) });
    }
    if (path === '/api/logout' && req.method === 'POST') {
      await readJsonBody(req);
      return sendJson(res, 200, { signedOut: true }, { 'set-cookie': sessionSetCookie(req, mount, '', 0) });
    }
    const access = accessFor(req);
    if (path === '/api/session' && req.method === 'GET') return sendJson(res, 200, session(access, tokens.length > 0));
    for (const r of routes) {
      const m = r.pattern.exec(path);
      if (!m) continue;
      if (req.method !== r.method) throw new HttpError(405, `use ${r.method}`);
      const read: ReadContext = { db, schema, access, log, query: new URL(req.url ?? '/', 'http://dashboard').searchParams };
      const action = async (): Promise<ActionContext> => {
        if (!access.permissions.has('actions')) throw new HttpError(403, `${access.name} may not act: the token lacks the actions permission`);
        return { db, schema, access, log, body: await readJsonBody(req) };
      };
      const decoded = m.map((part) => decodeURIComponent(part));
      return sendJson(res, 200, await r.run({ req, access, read, action, m: decoded }));
    }
    throw new HttpError(404, 'not found');
  };

  return (req, res) => {
    route(req, res).catch((err: unknown) => {
      if (err instanceof HttpError) {
        const headers: Record<string, string> = 'bearer' in err ? { 'www-authenticate': 'Bearer' } : 'retryAfterS' in err ? { 'retry-after': String(err.retryAfterS) } : {};
        return sendJson(res, err.status, { error: err.message }, headers);
      }
      if (err instanceof URIError) return sendJson(res, 400, { error: 'malformed URL' });
      if (isSagaboxError(err)) {
        const code = (err as SagaboxError).code;
        const status = STATUS_OF_CODE[code] ?? (code.startsWith('INVALID_') ? 400 : undefined);
        if (status !== undefined) return sendJson(res, status, { error: (err as Error).message, code });
      }
      log.error({ err }, 'dashboard request failed');
      sendJson(res, 500, { error: 'internal error (see the server log)' });
    });
  };
}

function session(access: Access, loginRequired: boolean): unknown {
  return { name: access.name, permissions: [...access.permissions], loginRequired };
}
