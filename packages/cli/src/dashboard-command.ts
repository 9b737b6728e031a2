import { Option, type Command } from 'commander';
import { DEFAULT_DASHBOARD_HOST, DEFAULT_DASHBOARD_PORT, DEFAULT_DASHBOARD_REFRESH_MS, serveDashboard } from '@sagabox/dashboard';
import { createCliLogger, LOG_LEVELS } from './cli-logger.js';
import { addConnectionOptions, requireDatabaseUrl, type ConnectionFlags } from './connection-options.js';
import type { CommandOutput } from './migrate-command.js';
import { checkMigrated, checkReachable, openPool } from './open-pool.js';
import { parseDurationFlag, parseIntFlag, untilStopSignal } from './cli-values.js';
import { dashboardTokens } from './dashboard-tokens.js';

interface Flags extends ConnectionFlags {
  port: string;
  host: string;
  token?: string[];
  refreshMs: string;
  logLevel: string;
  json?: boolean;
}


/**
 * Registers `sagabox dashboard`: serves the web dashboard until SIGINT or SIGTERM.
 * Prints the URL on stdout once listening.
 */
export function registerDashboardCommand(program: Command, out: CommandOutput = process.stdout): void {
  addConnectionOptions(
    program
      .command('dashboard')
      .description('serve the web dashboard: queues, messages, dead letters, half messages, sagas, and their actions; runs until SIGINT/SIGTERM')
      .option('--port <port>', 'port to listen on (0: any free one)', String(DEFAULT_DASHBOARD_PORT))
      .option('--host <host>', 'interface to bind; anything but loopback needs --token', DEFAULT_DASHBOARD_HOST)
      .addOption(
        new Option(
          '--token <name:secret[:permissions]>',
          'a token that may sign in, repeatable: permissions a comma list of payloads, actions (none: read only); ' +
            'a bare secret is one token named operator allowed actions. More in SAGABOX_DASHBOARD_TOKENS, separated by spaces',
        )
          .env('SAGABOX_DASHBOARD_TOKEN')
          .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]),
      )
      .option('--refresh-ms <duration>', 'how often the page refreshes: ms, or 5s, 1m', String(DEFAULT_DASHBOARD_REFRESH_MS))
      .option('--json', 'print the URL as JSON once listening, for scripts')
      .addOption(new Option('--log-level <level>', 'log level (logs go to stderr)').choices(LOG_LEVELS).default('info')),
  ).action(async (flags: Flags) => {
    const port = parseIntFlag('--port', flags.port, 0, 65_535);
    const refreshMs = parseDurationFlag('--refresh-ms', flags.refreshMs, 200, 3_600_000);
    const tokens = dashboardTokens(flags.token ?? [], process.env.SAGABOX_DASHBOARD_TOKENS);
    const logger = createCliLogger(flags.logLevel);
    const pool = openPool(requireDatabaseUrl(flags), 4);
    try {
      await checkReachable(pool, flags.databaseUrl);
      await checkMigrated(pool, flags.schema);
      const dashboard = await serveDashboard({
        pool, schema: flags.schema, port, host: flags.host, refreshMs, logger,
        ...(tokens.length > 0 ? { tokens } : {}),
      });
      out.write(flags.json ? `${JSON.stringify({ url: dashboard.url })}\n` : `sagabox dashboard on ${dashboard.url}\n`);
      logger.info({ url: dashboard.url }, 'dashboard listening');
      await untilStopSignal();
      await dashboard.stop();
      logger.info({}, 'dashboard stopped');
    } finally {
      await pool.end();
    }
  });
}
