import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { register as defaultRegistry, type Registry } from 'prom-client';
import { bearerTokenMatches } from '@sagabox/core/extension';

/**
 * A `node:http` request handler that answers with the registry's metrics in the
 * Prometheus text format. Mount it on your own server at `/metrics`.
 * @example
 * const handle = metricsHandler(metrics.registry);
 * http.createServer((req, res) => (req.url === '/metrics' ? handle(req, res) : appHandler(req, res)));
 */
export function metricsHandler(registry: Registry = defaultRegistry): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (_req, res) => {
    try {
      const body = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType });
      res.end(body);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`metrics collection failed: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  };
}

/** Options of {@link serveMetrics}. */
export interface ServeMetricsOptions {
  /** Port; 0 picks a free one. Default 9464 (the OpenTelemetry Prometheus exporter's). */
  port?: number;
  /** Interface to bind. Default `'127.0.0.1'`; use `'0.0.0.0'` for a scraper on another host. */
  host?: string;
  /** Default: prom-client's global registry. */
  registry?: Registry;
  /**
   * When set, a scrape needs `Authorization: Bearer <token>` (Prometheus:
   * `authorization: { credentials: ... }` in the scrape config); others get 401.
   */
  token?: string;
}

/** A running metrics endpoint. */
export interface MetricsServer {
  /** The URL of the endpoint, e.g. `http://127.0.0.1:9464/metrics`. */
  readonly url: string;
  /** The underlying Node HTTP server. */
  readonly server: Server;
  /** Closes the server. */
  stop(): Promise<void>;
}

/** Default port of {@link serveMetrics}. */
export const DEFAULT_METRICS_PORT = 9464;

/**
 * Serves `GET /metrics` on its own small HTTP server; every other path is 404.
 * @example
 * const metrics = createMetrics({ database: { pool } });
 * const endpoint = await serveMetrics({ registry: metrics.registry, port: 9464 });
 */
export async function serveMetrics(options: ServeMetricsOptions = {}): Promise<MetricsServer> {
  const handle = metricsHandler(options.registry ?? defaultRegistry);
  const server = createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) {
      if (options.token !== undefined && !bearerTokenMatches(req.headers.authorization, options.token)) {
        return void res.writeHead(401, { 'content-type': 'text/plain; charset=utf-8', 'www-authenticate': 'Bearer' }).end('a bearer token is required\n');
      }
      return void handle(req, res);
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? DEFAULT_METRICS_PORT, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics`,
    server,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
