import type pg from 'pg';
import {
  createWorker,
  type Handler,
  type HalfMessageChecker,
  type Logger,
} from '@sagabox/core';
import { DEFAULT_SAGA_REPLY_TOPIC, halfMessageParticipant, participant } from '@sagabox/saga';
import { ORDER_TOPICS } from '../order-saga.js';
import { createGatewayClient, type GatewayClient } from '../demo/payment-gateway.js';
import { openParticipantPools, runParticipantService } from './participant-service.js';
import { DEMO_TIMINGS, type RunningService, type ServiceConfig } from './service-config.js';

interface ChargeCommand {
  orderId: string;
  customerId: string;
  amountCents: number;
  card: string;
}

const RECORD_CHARGE = `
  INSERT INTO payments (order_id, idempotency_key, amount_cents, gateway_charge_id, status)
  VALUES ($1, $2, $3, $4, 'charged')
  ON CONFLICT (order_id) DO NOTHING`;

/**
 * The charge handler: a half-message participant. For each `payments.charge` command it
 * (1) prepares the `charged` reply as a half message — stored in this database's outbox,
 * invisible to the relay; (2) charges the card at the gateway with the half message's
 * id as idempotency key; (3) commits the reply (or rolls it back and replies `declined`)
 * in the worker's transaction, together with the `payments` row and the inbox ack.
 * A crash between (2) and (3) is covered twice: the command comes back after its lease
 * and is charged again with the same key (the gateway returns the same charge), and if
 * it never comes back the relay's checker ({@link chargeChecker}) asks the gateway.
 */
function chargeHandler(pool: pg.Pool, gateway: GatewayClient): Handler<ChargeCommand> {
  return halfMessageParticipant<ChargeCommand>({
    topic: ORDER_TOPICS.charge,
    pool,
    checkAfterMs: DEMO_TIMINGS.checkAfterMs,
    reply: (command) => ({ type: 'charged', orderId: command.payload.orderId }),
    act: async (command, { client, halfMessageId }) => {
      const { orderId, amountCents, card } = command.payload;
      // Throws GatewayUnavailableError on a timeout or 5xx: the worker retries the
      // command with backoff, and the same idempotency key makes the retry safe.
      const charge = await gateway.charge({ idempotencyKey: halfMessageId, orderId, amountCents, card });
      if (charge.status === 'declined') return { ok: false, reply: { type: 'declined', reason: 'the issuer declined the card' } };
      await client.query(RECORD_CHARGE, [orderId, halfMessageId, amountCents, charge.id]);
      return { ok: true };
    },
  });
}

/**
 * The relay's check-back for a `charged` reply whose producer went silent (killed
 * between the gateway call and the commit, and its command dead-lettered): the half
 * message's id is the idempotency key, so the gateway knows whether the charge happened.
 */
function chargeChecker(pool: pg.Pool, gateway: GatewayClient): HalfMessageChecker<{ orderId?: string }> {
  return async (message, { signal }) => {
    const charge = await gateway.findCharge(message.id, signal); // a throw means "ask again later"
    if (charge === null || charge.status !== 'succeeded') return 'rollback';
    await pool.query(RECORD_CHARGE, [charge.orderId, message.id, charge.amountCents, charge.id]);
    return 'commit';
  };
}

/**
 * The payments service: charges cards through the fake gateway (a half message per
 * charge) and refunds them when the saga compensates.
 */
export async function startPaymentsService(config: ServiceConfig, logger: Logger): Promise<RunningService> {
  // The worker holds one connection per batch in flight (concurrency 4), and each charge
  // prepares its half message on another one, outside that transaction: room for both.
  const pools = openParticipantPools(config, 'payments', 12, logger);
  const { pool } = pools;
  const gateway = createGatewayClient(config.gatewayUrl);

  const charge = chargeHandler(pool, gateway);
  const refund = participant({
    topic: ORDER_TOPICS.refund,
    // Refunds at the gateway are idempotent by order, so a retried refund is harmless.
    handle: async (command, { client }) => {
      const { orderId } = command.payload as { orderId: string };
      await gateway.refund(orderId);
      await client.query("UPDATE payments SET status = 'refunded', updated_at = now() WHERE order_id = $1", [orderId]);
      return { type: 'undone' };
    },
  });
  const worker = createWorker({
    pool,
    queue: 'payments',
    concurrency: 4,
    // One command per transaction: each makes an HTTP call to the gateway.
    batchSize: 1,
    leaseMs: DEMO_TIMINGS.leaseMs,
    pollIntervalMs: DEMO_TIMINGS.pollIntervalMs,
    retry: DEMO_TIMINGS.retry,
    logger,
    handler: (message, ctx) => (message.topic === ORDER_TOPICS.charge ? charge(message as never, ctx) : refund(message, ctx)),
  });
  return runParticipantService(pools, worker, logger, {
    // The half-message check-back: replies are published to the saga reply topic.
    checkers: { [DEFAULT_SAGA_REPLY_TOPIC]: chargeChecker(pool, gateway) },
    checkIntervalMs: DEMO_TIMINGS.checkIntervalMs,
    checkBackoff: { baseDelayMs: 1_000, maxDelayMs: 10_000 },
  });
}
