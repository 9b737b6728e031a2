import { timingSafeEqual } from 'node:crypto';

/**
 * True when an HTTP `Authorization` header carries `Bearer <token>`, compared in
 * constant time. Used by sagabox's own endpoints (dashboard API, metrics).
 *
 * @example
 * if (!bearerTokenMatches(req.headers.authorization, token)) res.writeHead(401).end();
 */
export function bearerTokenMatches(header: string | undefined, token: string): boolean {
  const given = Buffer.from(/^Bearer (.+)$/i.exec(header ?? '')?.[1] ?? '');
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}
