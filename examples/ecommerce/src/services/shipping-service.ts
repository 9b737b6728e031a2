import { createWorker, type Logger } from '@sagabox/core';
import { participant } from '@sagabox/saga';
import { ORDER_TOPICS, type ScheduleReply } from '../order-saga.js';
import { openParticipantPools, runParticipantService } from './participant-service.js';
import { DEMO_TIMINGS, SUPPORTED_REGIONS, type RunningService, type ServiceConfig } from './service-config.js';

interface ShipmentCommand {
  orderId: string;
  region: string;
}

/**
 * The shipping service: schedules an order's shipment, or refuses a region it does not
 * deliver to, and cancels a shipment when the saga compensates.
 */
export async function startShippingService(config: ServiceConfig, logger: Logger): Promise<RunningService> {
  const pools = openParticipantPools(config, 'shipping', 5, logger);
  const { pool } = pools;
  const supported = new Set<string>(SUPPORTED_REGIONS);

  const worker = createWorker<ShipmentCommand>({
    pool,
    queue: 'shipping',
    concurrency: 2,
    leaseMs: DEMO_TIMINGS.leaseMs,
    pollIntervalMs: DEMO_TIMINGS.pollIntervalMs,
    retry: DEMO_TIMINGS.retry,
    logger,
    handler: participant({
      handlers: {
        [ORDER_TOPICS.schedule]: async (command, { client }): Promise<ScheduleReply> => {
          const { orderId, region } = command.payload as ShipmentCommand;
          const existing = await client.query<{ status: string }>('SELECT status FROM shipments WHERE order_id = $1', [orderId]);
          if (existing.rows[0]) return existing.rows[0].status === 'scheduled' ? { type: 'scheduled' } : { type: 'cancelled' };
          if (!supported.has(region)) return { type: 'region_unsupported', region };
          await client.query("INSERT INTO shipments (order_id, region, status) VALUES ($1, $2, 'scheduled')", [orderId, region]);
          return { type: 'scheduled' };
        },
        [ORDER_TOPICS.cancel]: async (command, { client }) => {
          const { orderId, region } = command.payload as ShipmentCommand;
          // An upsert: cancelling a shipment never scheduled leaves a tombstone, so a
          // late schedule command finds it and does not ship.
          await client.query(
            `INSERT INTO shipments (order_id, region, status) VALUES ($1, $2, 'cancelled')
             ON CONFLICT (order_id) DO UPDATE SET status = 'cancelled', updated_at = now()`,
            [orderId, region],
          );
          return { type: 'undone' };
        },
      },
    }),
  });
  return runParticipantService(pools, worker, logger);
}
