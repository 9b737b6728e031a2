import { createWorker, type Logger } from '@sagabox/core';
import { participant } from '@sagabox/saga';
import { ORDER_TOPICS, type ReserveReply } from '../order-saga.js';
import { openParticipantPools, runParticipantService } from './participant-service.js';
import { DEMO_TIMINGS, type RunningService, type ServiceConfig } from './service-config.js';

interface StockCommand {
  orderId: string;
  sku: string;
  qty: number;
}

/**
 * The inventory service: reserves stock for an order and releases it again. Its worker
 * consumes the `inventory` queue in its own database; its relay sends the replies from
 * its outbox to the orders database.
 */
export async function startInventoryService(config: ServiceConfig, logger: Logger): Promise<RunningService> {
  const pools = openParticipantPools(config, 'inventory', 5, logger);
  const { pool } = pools;

  const worker = createWorker<StockCommand>({
    pool,
    queue: 'inventory',
    // One batch at a time: every reserve updates one of a few hot stock rows, and two
    // batches locking them in different orders would deadlock. Batching gives the speed.
    concurrency: 1,
    batchSize: 20,
    leaseMs: DEMO_TIMINGS.leaseMs,
    pollIntervalMs: DEMO_TIMINGS.pollIntervalMs,
    retry: DEMO_TIMINGS.retry,
    logger,
    // The inbox dedupes here: createWorker records each command's id in the inbox in
    // the same transaction as these handlers' writes and the reply, so a command
    // delivered twice reserves once.
    handler: participant({
      handlers: {
        [ORDER_TOPICS.reserve]: async (command, { client }): Promise<ReserveReply> => {
          const { orderId, sku, qty } = command.payload as StockCommand;
          const existing = await client.query<{ status: string }>('SELECT status FROM reservations WHERE order_id = $1', [orderId]);
          if (existing.rows[0]) return existing.rows[0].status === 'reserved' ? { type: 'reserved' } : { type: 'released' };
          const taken = await client.query('UPDATE stock SET available = available - $2 WHERE sku = $1 AND available >= $2', [sku, qty]);
          if (taken.rowCount === 0) {
            const { rows } = await client.query<{ available: number }>('SELECT available FROM stock WHERE sku = $1', [sku]);
            return { type: 'out_of_stock', sku, available: rows[0]?.available ?? 0 };
          }
          await client.query("INSERT INTO reservations (order_id, sku, qty, status) VALUES ($1, $2, $3, 'reserved')", [orderId, sku, qty]);
          return { type: 'reserved' };
        },
        [ORDER_TOPICS.release]: async (command, { client }) => {
          const { orderId, sku, qty } = command.payload as StockCommand;
          const released = await client.query<{ sku: string; qty: number }>(
            "UPDATE reservations SET status = 'released', updated_at = now() WHERE order_id = $1 AND status = 'reserved' RETURNING sku, qty",
            [orderId],
          );
          const row = released.rows[0];
          if (row) {
            await client.query('UPDATE stock SET available = available + $2 WHERE sku = $1', [row.sku, row.qty]);
          } else {
            // Nothing reserved (yet): leave a tombstone so that a late reserve of this
            // order cannot take stock after its saga gave up on it.
            await client.query(
              "INSERT INTO reservations (order_id, sku, qty, status) VALUES ($1, $2, $3, 'released') ON CONFLICT (order_id) DO NOTHING",
              [orderId, sku, qty],
            );
          }
          return { type: 'undone' };
        },
      },
    }),
  });
  return runParticipantService(pools, worker, logger);
}
