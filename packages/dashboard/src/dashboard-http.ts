import type { IncomingMessage, ServerResponse } from 'node:http';

/** An HTTP answer other than 200, thrown by a route and sent by the handler. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Largest JSON body the dashboard reads (filters and reasons are small). */
const MAX_BODY_BYTES = 64 * 1024;

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string | string[]> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

/**
 * The request's JSON body. A host framework that parsed it already (Express's
 * `express.json()`, Fastify) leaves it on `req.body`, and the stream is then empty.
 * Only `application/json` is accepted: a cross-site form cannot send it without a
 * CORS preflight, which the dashboard never answers.
 */
export async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) throw new HttpError(415, 'content-type must be application/json');
  const parsed = (req as IncomingMessage & { body?: unknown }).body;
  let body: unknown = parsed;
  if (parsed === undefined) {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) throw new HttpError(413, `the body is limited to ${MAX_BODY_BYTES} bytes`);
      chunks.push(chunk as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    try {
      body = text.trim() === '' ? {} : JSON.parse(text);
    } catch {
      throw new HttpError(400, 'the body is not valid JSON');
    }
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'the body must be a JSON object');
  return body as Record<string, unknown>;
}

/**
 * Where the handler is mounted and the path inside it. Express strips its mount path
 * from `req.url` and keeps the whole one in `req.originalUrl`; a plain `http` server or
 * a Fastify route passes the whole URL, and `basePath` names the prefix to strip.
 */
export function mountedPath(req: IncomingMessage, basePath: string): { mount: string; path: string; fullPath: string; search: string } {
  const url = new URL(req.url ?? '/', 'http://dashboard');
  const original = new URL((req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '/', 'http://dashboard');
  let path = url.pathname;
  let mount = '';
  if (basePath !== '' && (path === basePath || path.startsWith(`${basePath}/`))) {
    path = path.slice(basePath.length);
    mount = basePath;
  } else if (original.pathname !== url.pathname && original.pathname.endsWith(url.pathname === '/' ? '' : url.pathname)) {
    mount = original.pathname.slice(0, original.pathname.length - (url.pathname === '/' ? 0 : url.pathname.length)).replace(/\/$/, '');
  }
  return { mount, path, fullPath: original.pathname, search: url.search };
}

/** The `Host` header's name without its port (and without brackets for IPv6). */
export function hostnameOf(host: string | undefined): string {
  const h = (host ?? '').toLowerCase();
  return h.startsWith('[') ? h.slice(1, h.indexOf(']')) : h.replace(/:\d+$/, '');
}
