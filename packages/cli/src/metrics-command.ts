import { Option, type Command } from 'commander';
import { createMetrics, DEFAULT_METRICS_PORT, serveMetrics } from '@sagabox/telemetry';
import { createCliLogger, LOG_LEVELS } from './cli-logger.js';
import { addConnectionOptions, requireDatabaseUrl, type ConnectionFlags } from './connection-options.js';
import type { CommandOutput } from './migrate-command.js';
import { checkMigrated, checkReachable, openPool } from './open-pool.js';
import { parseIntFlag, untilStopSignal } from './cli-values.js';

interface Flags extends ConnectionFlags {
  port: string;
  host: string;
  token?: string;
  logLevel: string;
  json?: boolean;
}

/**
 * Registers `sagabox metrics`: serves the database-wide Prometheus metrics (queue depth,
 * relay lag, sagas by status, sagas started/finished and their duration) on
 * `GET /metrics` until SIGINT or SIGTERM. Run one per database; relays and workers
 * expose their own counters from their processes.
 */
export function registerMetricsCommand(program: Command, out: CommandOutput = process.stdout): void {
  addConnectionOptions(
    program
      .command('metrics')
      .description('serve database-wide Prometheus metrics on /metrics (queue depth, relay lag, sagas); runs until SIGINT/SIGTERM')
      .option('--port <port>', 'port to listen on (0: any free one)', String(DEFAULT_METRICS_PORT))
      .option('--host <host>', 'interface to bind', '127.0.0.1')
      .addOption(new Option('--token <token>', 'bearer token a scrape must send (Prometheus: authorization.credentials)').env('SAGABOX_METRICS_TOKEN'))
      .option('--json', 'print the URL as JSON once listening, for scripts')
      .addOption(new Option('--log-level <level>', 'log level (logs go to stderr)').choices(LOG_LEVELS).default('info')),
  ).action(async (flags: Flags) => {
    const port = parseIntFlag('--port', flags.port, 0, 65_535);
    const logger = createCliLogger(flags.logLevel);
    const pool = openPool(requireDatabaseUrl(flags), 2);
    try {
      await checkReachable(pool, flags.databaseUrl);
      await checkMigrated(pool, flags.schema);
      const metrics = createMetrics({ database: { pool, schema: flags.schema }, logger });
      const endpoint = await serveMetrics({
        registry: metrics.registry, port, host: flags.host, ...(flags.token !== undefined ? { token: flags.token } : {}),
      });
      out.write(flags.json ? `${JSON.stringify({ url: endpoint.url })}\n` : `sagabox metrics on ${endpoint.url}\n`);
      logger.info({ url: endpoint.url }, 'metrics endpoint listening');
      await untilStopSignal();
      await endpoint.stop();
    } finally {
      await pool.end();
    }
  });
}
