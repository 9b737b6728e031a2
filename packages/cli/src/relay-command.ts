import { Command, Option } from 'commander';
import { createQueueDestination, createRelay, waitForDatabase, type Destination, type QueueRoute } from '@sagabox/core';
import { addConnectionOptions, requireDatabaseUrl, type ConnectionFlags } from './connection-options.js';
import { createCliLogger, LOG_LEVELS } from './cli-logger.js';
import { checkMigrated, checkReachable, openPool } from './open-pool.js';
import type { CommandOutput } from './migrate-command.js';
import { UsageError } from './usage-error.js';
import { parseDurationFlag, parseIntFlag, untilStopSignal } from './cli-values.js';
import { brokerDestination } from './broker-destination.js';

interface RelayFlags extends ConnectionFlags {
  route: string[];
  to?: string;
  subjectPrefix?: string;
  targetDatabaseUrl?: string;
  targetSchema?: string;
  batchSize?: number;
  pollIntervalMs?: number;
  listen: boolean;
  failFast?: boolean;
  onUnroutable: 'hold' | 'dead-letter' | 'drop';
  logLevel: string;
  json?: boolean;
}

/** Parses `topic-pattern=queue` into a route. */
export function parseRoute(text: string): QueueRoute {
  const i = text.lastIndexOf('=');
  if (i <= 0 || i === text.length - 1) throw new UsageError(`--route must look like 'orders.*=billing', got ${JSON.stringify(text)}`);
  return { topic: text.slice(0, i), queue: text.slice(i + 1) };
}

const int = (name: string) => (value: string): number => parseIntFlag(name, value, 1);

/**
 * Registers `sagabox relay`: runs a relay until SIGINT or SIGTERM, then stops it gracefully.
 * @example sagabox relay --route 'orders.*=billing' --route 'orders.#=audit'
 * @example sagabox relay --to amqp://guest:guest@127.0.0.1:5672 --route 'orders.#=orders'
 */
export function registerRelayCommand(program: Command, out: CommandOutput = process.stdout): Command {
  const command = program
    .command('relay')
    .description('move committed outbox messages to queues or a broker; runs until SIGINT/SIGTERM')
    .requiredOption('--route <pattern=queue>', "route a topic pattern to a queue ('*' one segment, '#' any); repeatable. With --to nats://: 'pattern' (subject = topic) or 'pattern=subject'; with --to amqp://: 'pattern=exchange'", (v: string, prev: string[] = []) => [...prev, v])
    .option('--to <url>', 'deliver to a broker instead of queues: nats://host:4222 (JetStream; the routed topics become subjects) or amqp://user:password@host:5672/vhost (RabbitMQ; the topic is the routing key)')
    .option('--subject-prefix <prefix>', "with --to nats://: put before each topic to make its subject (e.g. 'events.')")
    .option('--target-database-url <url>', 'deliver into the queues of another database (default: the outbox database)')
    .option('--target-schema <name>', 'sagabox schema in the target database (default: --schema)')
    .option('--batch-size <n>', 'messages claimed per batch', int('--batch-size'))
    .option('--poll-interval-ms <duration>', 'poll interval when no NOTIFY arrives: ms, or 2s, 1m', (v: string) => parseDurationFlag('--poll-interval-ms', v, 1))
    .option('--no-listen', 'poll only (behind a transaction-pooling PgBouncer)')
    .option('--json', 'print one JSON line when started and one when stopped, for scripts')
    .option('--fail-fast', 'exit when a database cannot be reached at start (default: wait for it, retrying with backoff)')
    .addOption(
      new Option('--on-unroutable <action>', 'a message none of the routes matches: leave it for a relay that knows it, dead-letter it, or drop it')
        .choices(['hold', 'dead-letter', 'drop'])
        .default('hold'),
    )
    .addOption(new Option('--log-level <level>', 'log level of the JSON log on stderr').choices(LOG_LEVELS).default('info'))
    .action(async (flags: RelayFlags) => {
      const logger = createCliLogger(flags.logLevel);
      if (flags.to && flags.targetDatabaseUrl) throw new UsageError('give --to or --target-database-url, not both');
      if (flags.subjectPrefix !== undefined && !flags.to) throw new UsageError('--subject-prefix goes with --to nats://');
      // Built before any connection, so a bad flag fails at once with exit code 2.
      const broker = flags.to
        ? await brokerDestination({ url: flags.to, routes: flags.route, logger, ...(flags.subjectPrefix !== undefined ? { subjectPrefix: flags.subjectPrefix } : {}) })
        : undefined;
      const routes = broker ? [] : flags.route.map(parseRoute);
      const pool = openPool(requireDatabaseUrl(flags), 4);
      const target = flags.targetDatabaseUrl ? openPool(flags.targetDatabaseUrl, 4) : undefined;
      // Listening from the start: a signal while the databases are awaited ends the wait.
      const stopping = new AbortController();
      const stopSignal = untilStopSignal().then(() => stopping.abort());
      try {
        if (flags.failFast) await checkReachable(pool, flags.databaseUrl);
        else await waitForDatabase(pool, { logger, signal: stopping.signal });
        await checkMigrated(pool, flags.schema);
        if (target) {
          if (flags.failFast) await checkReachable(target, flags.targetDatabaseUrl);
          else await waitForDatabase(target, { logger, signal: stopping.signal });
          await checkMigrated(target, flags.targetSchema ?? flags.schema);
        }
        const destinations: Destination[] = broker
          ? [broker]
          : [createQueueDestination({ routes, schema: flags.targetSchema ?? flags.schema, ...(target ? { pool: target } : {}) })];
        const relay = createRelay({
          pool,
          schema: flags.schema,
          destinations,
          listen: flags.listen,
          onUnroutable: flags.onUnroutable,
          logger,
          // Without --fail-fast, start() waits for the databases (a warn line per retry).
          ...(flags.failFast ? { waitForDatabaseMs: 0 } : {}),
          ...(flags.batchSize ? { batchSize: flags.batchSize } : {}),
          ...(flags.pollIntervalMs ? { pollIntervalMs: flags.pollIntervalMs } : {}),
        });
        // A signal while start() still waits for the database stops it too.
        const started = relay.start().then(() => true);
        if (await Promise.race([started, stopSignal.then(() => false)])) {
          if (flags.json) out.write(`${JSON.stringify({ relay: 'started', routes })}\n`);
          await stopSignal;
        }
        await relay.stop();
        await started.catch(() => {});
        if (flags.json) out.write(`${JSON.stringify({ relay: 'stopped' })}\n`);
      } catch (err) {
        // Stopped while waiting for a database: a clean stop, not a failure.
        if (!stopping.signal.aborted) throw err;
      } finally {
        await pool.end();
        await target?.end();
      }
    });
  return addConnectionOptions(command);
}
