import { createWorker, type Logger } from '@sagabox/core';
import { DEFAULT_SAGA_REPLY_TOPIC, participant } from '@sagabox/saga';
import { createRabbitMqConsumer, createRabbitMqDestination } from '@sagabox/rabbitmq';
import { ORDER_TOPICS, type ScheduleReply } from '../order-saga.js';
import { openParticipantPools, runParticipantService } from './participant-service.js';
import { DEMO_TIMINGS, SUPPORTED_REGIONS, type RunningService, type ServiceConfig } from './service-config.js';

interface ShipmentCommand {
  orderId: string;
  region: string;
}

/**
 * The shipping service: schedules an order's shipment, or refuses a region it does not
 * deliver to, and cancels a shipment when the saga compensates. With `config.rabbitmq`
 * it lives behind RabbitMQ: the same handler runs in a RabbitMQ consumer (inbox and
 * effect in one transaction, ack after commit) and its replies leave through RabbitMQ.
 */
export async function startShippingService(config: ServiceConfig, logger: Logger): Promise<RunningService> {
  const pools = openParticipantPools(config, 'shipping', 5, logger);
  const { pool } = pools;
  const supported = new Set<string>(SUPPORTED_REGIONS);

  const handler = participant({
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
    });
  const link = config.rabbitmq;
  if (link) {
    const consumer = createRabbitMqConsumer({
      url: link.url,
      pool,
      queue: link.shippingQueue,
      consumer: 'shipping',
      bindings: [{ exchange: link.exchange, routingKey: 'shipping.*' }],
      retry: DEMO_TIMINGS.retry,
      stopTimeoutMs: DEMO_TIMINGS.stopTimeoutMs,
      logger,
      handler,
    });
    const replies = createRabbitMqDestination({ url: link.url, routes: [{ topic: DEFAULT_SAGA_REPLY_TOPIC, exchange: link.exchange }], name: 'rabbitmq-replies', logger });
    return runParticipantService(pools, consumer, logger, {}, replies);
  }
  const worker = createWorker<ShipmentCommand>({
    pool,
    queue: 'shipping',
    concurrency: 2,
    leaseMs: DEMO_TIMINGS.leaseMs,
    pollIntervalMs: DEMO_TIMINGS.pollIntervalMs,
    retry: DEMO_TIMINGS.retry,
    logger,
    handler,
  });
  return runParticipantService(pools, worker, logger);
}
