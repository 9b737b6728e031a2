import http from 'node:http';
import pg from 'pg';
import type { Logger } from '@sagabox/core';
import { createDashboardHandler } from '@sagabox/dashboard';
import { SERVICE_NAMES, type ServiceName } from '../services/service-config.js';

/** The demo's dashboards: one per service database, each mounted under `/<service>/` of one server. */
export interface DemoDashboard {
  /** The index page linking to each service's dashboard, e.g. `http://127.0.0.1:8080/`. */
  readonly url: string;
  stop(): Promise<void>;
}

const INDEX = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>sagabox demo dashboards</title><style>body{font:16px system-ui,sans-serif;margin:40px}a{display:block;margin:8px 0}</style></head>
<body><h1>sagabox e-commerce demo</h1><p>Each service has its own database, and its own dashboard:</p>
${SERVICE_NAMES.map((s) => `<a href="${s}/">${s}</a>`).join('\n')}
<p>With <code>--chaos</code>, watch a killed service's messages wait in flight until their lease runs out (Needs attention), then be retried and handled.</p>
</body></html>`;

/**
 * Serves a dashboard for each service database on 127.0.0.1, mounted under the
 * service's name (the way an application mounts it under a path of its own server),
 * with its own small pool so it never slows the services down.
 */
export async function startDemoDashboard(options: { urls: Record<ServiceName, string>; port: number; refreshMs?: number; logger: Logger }): Promise<DemoDashboard> {
  const pools = SERVICE_NAMES.map((s) => new pg.Pool({ connectionString: options.urls[s], max: 3, connectionTimeoutMillis: 10_000 }));
  for (const pool of pools) pool.on('error', (err) => options.logger.warn({ err }, 'dashboard: idle connection failed'));
  const handlers = new Map(SERVICE_NAMES.map((s, i) => [s as string, createDashboardHandler({
    pool: pools[i]!, basePath: `/${s}`, refreshMs: options.refreshMs ?? 1_000,
    // A demo on loopback: everything, payloads included, for whoever runs it.
    openPermissions: ['read', 'payloads', 'actions'], logger: options.logger.child({ service: s }),
  })]));
  const server = http.createServer((req, res) => {
    const first = /^\/([a-z]+)(?:[/?]|$)/.exec(req.url ?? '/')?.[1];
    const handler = first === undefined ? undefined : handlers.get(first);
    if (handler) return handler(req, res);
    if (req.url === '/' || req.url === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      return res.end(INDEX);
    }
    res.writeHead(404).end('not found');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  return {
    url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : options.port}/`,
    async stop() {
      await new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); });
      await Promise.all(pools.map((p) => p.end()));
    },
  };
}
