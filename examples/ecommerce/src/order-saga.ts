import { match, P } from 'ts-pattern';
import { defineSaga, StepResult } from '@sagabox/saga';

/** What the orders service starts a saga with: the order as the customer placed it. */
export interface OrderInput {
  orderId: string;
  customerId: string;
  sku: string;
  qty: number;
  amountCents: number;
  /** A card token of the fake gateway: `tok_ok` is charged, `tok_declined` is declined. */
  card: string;
  region: string;
}

/** The saga's state: the input plus what the steps found out. Stored as jsonb. */
export interface OrderState extends OrderInput {
  reserved: boolean;
  charged: boolean;
  shipped: boolean;
}

/** Replies of the inventory service to `inventory.reserve`. */
export type ReserveReply =
  | { type: 'reserved' }
  | { type: 'out_of_stock'; sku: string; available: number }
  /** The order's stock was released (compensated) before its reserve command arrived. */
  | { type: 'released' };
/** Replies of the payments service to `payments.charge`. */
export type ChargeReply = { type: 'charged' } | { type: 'declined'; reason: string };
/** Replies of the shipping service to `shipping.schedule`. */
export type ScheduleReply = { type: 'scheduled' } | { type: 'region_unsupported'; region: string } | { type: 'cancelled' };

/** Topics of the commands the order saga sends; each service's queue takes `<service>.*`. */
export const ORDER_TOPICS = {
  reserve: 'inventory.reserve',
  release: 'inventory.release',
  charge: 'payments.charge',
  refund: 'payments.refund',
  schedule: 'shipping.schedule',
  cancel: 'shipping.cancel',
} as const;

/** Step timeouts of the demo, in milliseconds: long enough to ride out a killed service. */
export const ORDER_STEP_TIMEOUT_MS = 60_000;

/** A compensation succeeded when the participant answered `{ type: 'undone' }`. */
const undone = (reply: unknown) =>
  (reply as { type?: string } | null)?.type === 'undone' ? { ok: true as const } : { ok: false as const, reason: JSON.stringify(reply) };

/**
 * The order saga: reserve stock, charge the card, schedule the shipment, confirm the
 * order. Each remote step declares its compensation next to its command; when a step
 * fails (out of stock, card declined, region unsupported) or times out, the orchestrator
 * sends the compensations of the steps before it — and of the timed-out step itself,
 * which may have happened — in reverse order.
 */
export const orderSaga = defineSaga({
  name: 'order',
  version: 1,
  initialState: (input: OrderInput): OrderState => ({ ...input, reserved: false, charged: false, shipped: false }),
  steps: (step) => [
    step.remote<ReserveReply>({
      name: 'reserve',
      command: (s) => ({ topic: ORDER_TOPICS.reserve, payload: { orderId: s.orderId, sku: s.sku, qty: s.qty } }),
      onReply: (reply, s) =>
        match(reply)
          .with({ type: 'reserved' }, () => StepResult.ok({ ...s, reserved: true }))
          .with({ type: 'out_of_stock', sku: P.string }, (r) => StepResult.fail(`not enough stock of ${r.sku} (${r.available} left)`))
          .with({ type: 'released' }, () => StepResult.fail('stock was released before it was reserved'))
          .exhaustive(),
      compensate: (s) => ({ topic: ORDER_TOPICS.release, payload: { orderId: s.orderId, sku: s.sku, qty: s.qty } }),
      onCompensationReply: undone,
      timeoutMs: ORDER_STEP_TIMEOUT_MS,
    }),
    step.remote<ChargeReply>({
      name: 'charge',
      command: (s) => ({
        topic: ORDER_TOPICS.charge,
        payload: { orderId: s.orderId, customerId: s.customerId, amountCents: s.amountCents, card: s.card },
      }),
      onReply: (reply, s) =>
        match(reply)
          .with({ type: 'charged' }, () => StepResult.ok({ ...s, charged: true }))
          .with({ type: 'declined', reason: P.string }, (r) => StepResult.fail(`card declined: ${r.reason}`))
          .exhaustive(),
      compensate: (s) => ({ topic: ORDER_TOPICS.refund, payload: { orderId: s.orderId } }),
      onCompensationReply: undone,
      timeoutMs: ORDER_STEP_TIMEOUT_MS,
    }),
    step.remote<ScheduleReply>({
      name: 'ship',
      command: (s) => ({ topic: ORDER_TOPICS.schedule, payload: { orderId: s.orderId, region: s.region } }),
      onReply: (reply, s) =>
        match(reply)
          .with({ type: 'scheduled' }, () => StepResult.ok({ ...s, shipped: true }))
          .with({ type: 'region_unsupported', region: P.string }, (r) => StepResult.fail(`region unsupported: ${r.region}`))
          .with({ type: 'cancelled' }, () => StepResult.fail('shipment was cancelled before it was scheduled'))
          .exhaustive(),
      compensate: (s) => ({ topic: ORDER_TOPICS.cancel, payload: { orderId: s.orderId, region: s.region } }),
      onCompensationReply: undone,
      timeoutMs: ORDER_STEP_TIMEOUT_MS,
    }),
    // Runs in the orchestrator's own transaction: the order row and the saga's final
    // state commit together.
    step.local({
      name: 'confirm',
      run: async (s, { client }) => {
        await client.query('UPDATE orders SET confirmed_at = now() WHERE id = $1 AND confirmed_at IS NULL', [s.orderId]);
        return StepResult.ok(s);
      },
    }),
  ],
});
