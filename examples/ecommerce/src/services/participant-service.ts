import pg from 'pg';
import { createQueueDestination, createRelay, type Destination, type Logger, type RelayOptions } from '@sagabox/core';
import { sagaRoutes } from '@sagabox/saga';
import { DEMO_TIMINGS, type RunningService, type ServiceConfig } from './service-config.js';

/** A participant's two pools: its own database, and the orders database its replies go to. */
export interface ParticipantPools {
  pool: pg.Pool;
  ordersPool: pg.Pool;
}

/** Opens a participant service's pools (`max` connections on its own database). */
export function openParticipantPools(config: ServiceConfig, service: 'inventory' | 'payments' | 'shipping', max: number, logger: Logger): ParticipantPools {
  const pool = new pg.Pool({ connectionString: config.databases[service], max, connectionTimeoutMillis: 10_000 });
  const ordersPool = new pg.Pool({ connectionString: config.databases.orders, max: 2, connectionTimeoutMillis: 10_000 });
  pool.on('error', (err) => logger.warn({ err }, `idle ${service} connection failed`));
  ordersPool.on('error', (err) => logger.warn({ err }, 'idle orders connection failed'));
  return { pool, ordersPool };
}

/** What takes a participant's commands: a worker on its queue, or a broker consumer. */
export interface CommandConsumer {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Runs a participant: its worker (or broker consumer) for its commands, and a relay that
 * moves the replies from its outbox into the orchestrator's queue in the orders database
 * (or to `replies`, a broker destination). `relay` adds relay options (the payments
 * service's half-message checkers).
 */
export async function runParticipantService(
  { pool, ordersPool }: ParticipantPools,
  worker: CommandConsumer,
  logger: Logger,
  relay: Partial<Omit<RelayOptions, 'pool' | 'destinations'>> = {},
  replies: Destination = createQueueDestination({ pool: ordersPool, routes: sagaRoutes() }),
): Promise<RunningService> {
  const replyRelay = createRelay({
    pollIntervalMs: DEMO_TIMINGS.pollIntervalMs,
    logger,
    ...relay,
    pool,
    destinations: [replies],
  });
  await replyRelay.start();
  await worker.start();
  return {
    async stop() {
      await worker.stop();
      await replyRelay.stop();
      await Promise.all([pool.end(), ordersPool.end()]);
    },
  };
}
