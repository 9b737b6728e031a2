import { createServer, type Server } from 'node:http';
import { SagaboxError } from '@sagabox/core';
import { createDashboardHandler, type DashboardOptions } from './dashboard-handler.js';
import { isLoopbackHost } from './loopback.js';

/** Default port of {@link serveDashboard}. */
export const DEFAULT_DASHBOARD_PORT = 8080;
/** Default interface of {@link serveDashboard}: loopback only. */
export const DEFAULT_DASHBOARD_HOST = '127.0.0.1';

/** Options of {@link serveDashboard}. */
export interface ServeDashboardOptions extends DashboardOptions {
  /** Port; 0 picks a free one. Default {@link DEFAULT_DASHBOARD_PORT}. */
  port?: number;
  /** Interface to bind. Default {@link DEFAULT_DASHBOARD_HOST}; any other needs `token`. */
  host?: string;
}

/** A running dashboard. */
export interface DashboardServer {
  /** Where to open it, e.g. `http://127.0.0.1:8080/`. */
  readonly url: string;
  /** The underlying Node HTTP server. */
  readonly server: Server;
  /** Closes the server (open connections included). */
  stop(): Promise<void>;
}


/**
 * Serves the dashboard on its own HTTP server. Bound to loopback by default; binding
 * to any other interface requires `token` or `tokens`, so its actions are never open
 * to the network. To add it to a server you already run, use {@link createDashboardHandler}.
 * @throws {SagaboxError} `INVALID_OPTIONS` for a non-loopback host without a token, or bad options.
 * @example
 * const dashboard = await serveDashboard({ pool, port: 8080 });
 * logger.info({ url: dashboard.url }, 'dashboard up');
 */
export async function serveDashboard(options: ServeDashboardOptions): Promise<DashboardServer> {
  const host = options.host ?? DEFAULT_DASHBOARD_HOST;
  const problems: string[] = [];
  if (!isLoopbackHost(host) && options.token === undefined && !(options.tokens && options.tokens.length > 0)) {
    problems.push(`a token is required to bind the dashboard to ${host} (not a loopback interface)`);
  }
  if (problems.length > 0) throw new SagaboxError('INVALID_OPTIONS', `invalid dashboard options: ${problems.join('; ')}`, { details: { problems } });
  const server = createServer(createDashboardHandler(options));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? DEFAULT_DASHBOARD_PORT, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    server,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
