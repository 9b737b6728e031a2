import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/**
 * What a dashboard user may do. Every signed-in user may read counts, lists and
 * histories; `payloads` shows message and dead-letter payloads (they may hold personal
 * data, so no one sees them unless granted); `actions` allows pause, retry, cancel,
 * delete, replay, purge and decisions.
 */
export type DashboardPermission = 'read' | 'payloads' | 'actions';

/** Every {@link DashboardPermission}. */
export const DASHBOARD_PERMISSIONS: readonly DashboardPermission[] = ['read', 'payloads', 'actions'];

/** A token the dashboard accepts, with what its holder may do. */
export interface DashboardToken {
  /** The secret, at least 8 characters. Sent once by the login form, or as `Authorization: Bearer <token>`. */
  token: string;
  /** Who holds it (1-64 characters), logged with every action and recorded with half-message decisions. */
  name: string;
  /** What it allows beyond reading (`read` is implied). */
  permissions: readonly DashboardPermission[];
}

/** Default life of a login session, in milliseconds (8 hours). */
export const DEFAULT_DASHBOARD_SESSION_MS = 8 * 3_600_000;

/** The session cookie's name. */
export const SESSION_COOKIE = 'sagabox_dashboard';

/** Who is asking, and what they may do. */
export interface Access {
  name: string;
  permissions: ReadonlySet<DashboardPermission>;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Constant-time comparison of two secrets of any length. */
function secretsEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

export function accessOf(t: DashboardToken): Access {
  return { name: t.name, permissions: new Set<DashboardPermission>(['read', ...t.permissions]) };
}

/** The token a login form or `Authorization: Bearer` header presented, if it is one of `tokens`. */
export function findToken(tokens: readonly DashboardToken[], given: string): DashboardToken | undefined {
  let found: DashboardToken | undefined;
  // Compare against every token so the time taken does not say which one matched.
  for (const t of tokens) if (secretsEqual(t.token, given) && found === undefined) found = t;
  return found;
}

/**
 * The session cookie: the token's name and an expiry, signed with the token itself
 * (HMAC-SHA256). Nothing is kept on the server, so any process serving the dashboard
 * accepts it, and changing or removing a token ends its sessions at once.
 */
export function sessionCookieValue(t: DashboardToken, expiresAt: number): string {
  const body = Buffer.from(JSON.stringify({ n: t.name, e: expiresAt })).toString('base64url');
  return `${body}.${createHmac('sha256', t.token).update(body).digest('base64url')}`;
}

export function tokenOfSession(tokens: readonly DashboardToken[], value: string, now: number): DashboardToken | undefined {
  const [body, mac] = value.split('.');
  if (!body || !mac) return undefined;
  let claims: { n?: unknown; e?: unknown };
  try {
    claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as { n?: unknown; e?: unknown };
  } catch {
    return undefined;
  }
  if (typeof claims.e !== 'number' || claims.e <= now) return undefined;
  const t = tokens.find((x) => x.name === claims.n);
  if (!t) return undefined;
  return secretsEqual(createHmac('sha256', t.token).update(body).digest('base64url'), mac) ? t : undefined;
}

export function cookieOf(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The `Set-Cookie` header of a session (or of its removal when `value` is empty). */
export function sessionSetCookie(req: IncomingMessage, mount: string, value: string, maxAgeMs: number): string {
  // HttpOnly: no script on the page can read the session; SameSite=Strict: another
  // site cannot make the browser send it; Path: only this dashboard's URLs get it.
  const secure = (req.socket as { encrypted?: boolean }).encrypted === true || req.headers['x-forwarded-proto'] === 'https';
  return `${SESSION_COOKIE}=${value}; Path=${mount === '' ? '/' : `${mount}/`}; Max-Age=${Math.floor(maxAgeMs / 1_000)}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

/** Problems with the token options, for one `INVALID_OPTIONS` error. */
export function tokenProblems(tokens: readonly DashboardToken[]): string[] {
  const problems: string[] = [];
  const names = new Set<string>();
  for (const [i, t] of tokens.entries()) {
    if (typeof t !== 'object' || t === null) { problems.push(`tokens[${i}] must be an object`); continue; }
    if (typeof t.token !== 'string' || t.token.length < 8 || t.token.length > 1_024) problems.push(`tokens[${i}].token must be 8-1024 characters`);
    if (typeof t.name !== 'string' || !/^[\w.@ -]{1,64}$/.test(t.name)) problems.push(`tokens[${i}].name must be 1-64 letters, digits, spaces or . @ _ -`);
    else if (names.has(t.name)) problems.push(`tokens[${i}].name ${t.name} is used twice`);
    else names.add(t.name);
    if (!Array.isArray(t.permissions) || t.permissions.some((p) => !DASHBOARD_PERMISSIONS.includes(p))) {
      problems.push(`tokens[${i}].permissions must be a list of ${DASHBOARD_PERMISSIONS.join(', ')}`);
    }
  }
  return problems;
}

/** Failed sign-ins (form or bearer) one client address may make per minute; then it waits out the minute. */
export const DASHBOARD_FAILED_LOGINS_PER_MINUTE = 10;
const THROTTLE_WINDOW_MS = 60_000;
const THROTTLE_MAX_ADDRESSES = 10_000;

/**
 * Counts failed sign-ins per client address, so a token cannot be guessed at network
 * speed. Behind a proxy every client shares its address: the limit is then global.
 */
export function createLoginThrottle(): { retryAfterMs(address: string, now: number): number; failed(address: string, now: number): void } {
  const failures = new Map<string, { count: number; since: number }>();
  return {
    retryAfterMs(address, now) {
      const f = failures.get(address);
      if (!f || now - f.since >= THROTTLE_WINDOW_MS) return 0;
      return f.count >= DASHBOARD_FAILED_LOGINS_PER_MINUTE ? THROTTLE_WINDOW_MS - (now - f.since) : 0;
    },
    failed(address, now) {
      const f = failures.get(address);
      if (f && now - f.since < THROTTLE_WINDOW_MS) f.count++;
      else failures.set(address, { count: 1, since: now });
      if (failures.size > THROTTLE_MAX_ADDRESSES) {
        for (const [a, x] of failures) if (now - x.since >= THROTTLE_WINDOW_MS) failures.delete(a);
        // Still full: the oldest entries go first (a Map iterates in insertion order).
        for (const a of failures.keys()) { if (failures.size <= THROTTLE_MAX_ADDRESSES) break; failures.delete(a); }
      }
    },
  };
}
