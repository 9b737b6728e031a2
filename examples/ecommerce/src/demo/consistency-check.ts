import type pg from 'pg';
import type { GatewayCharge } from './payment-gateway.js';
import type { ServiceName } from '../services/service-config.js';

/** One named check of the demo's end state. */
export interface CheckResult {
  name: string;
  ok: boolean;
  /** What was checked, or what went wrong. */
  detail: string;
  /** Up to ten offending orders or SKUs. */
  examples: string[];
}

/** Everything the checks read: the services' databases and the gateway's charges. */
export interface ConsistencyInput {
  pools: Record<ServiceName, pg.Pool>;
  gatewayCharges: readonly GatewayCharge[];
  /** Orders the burst placed. */
  placed: number;
}

const check = (name: string, bad: string[], detail: string): CheckResult => ({
  name,
  ok: bad.length === 0,
  detail: bad.length === 0 ? detail : `${bad.length} violation(s)`,
  examples: bad.slice(0, 10),
});

/**
 * Checks that the four services and the gateway agree once every saga has finished:
 *
 * 1. every order placed has a saga, and every saga finished (completed or compensated);
 * 2. stock balances: for each SKU, available + active reservations = initial stock;
 * 3. completed orders hold a reservation, one unrefunded charge and a scheduled shipment;
 *    compensated orders hold none of these;
 * 4. every charge the gateway made has a shipment or a refund;
 * 5. no order was charged twice at the gateway.
 */
export async function checkConsistency(input: ConsistencyInput): Promise<CheckResult[]> {
  const { pools } = input;
  const sagas = (await pools.orders.query<{ id: string; status: string; confirmed: boolean }>(
    `SELECT s.id, s.status, o.confirmed_at IS NOT NULL AS confirmed
       FROM sagabox.sagas s JOIN orders o ON o.id = s.id`,
  )).rows;
  const orderCount = Number((await pools.orders.query<{ n: string }>('SELECT count(*) AS n FROM orders')).rows[0]!.n);
  const stock = (await pools.inventory.query<{ sku: string; initial: number; available: number; held: number }>(
    `SELECT s.sku, s.initial, s.available, COALESCE(sum(r.qty) FILTER (WHERE r.status = 'reserved'), 0)::int AS held
       FROM stock s LEFT JOIN reservations r ON r.sku = s.sku GROUP BY s.sku ORDER BY s.sku`,
  )).rows;
  const reserved = new Set((await pools.inventory.query<{ order_id: string }>("SELECT order_id FROM reservations WHERE status = 'reserved'")).rows.map((r) => r.order_id));
  const shipped = new Set((await pools.shipping.query<{ order_id: string }>("SELECT order_id FROM shipments WHERE status = 'scheduled'")).rows.map((r) => r.order_id));

  const succeeded = input.gatewayCharges.filter((c) => c.status === 'succeeded');
  const chargesByOrder = new Map<string, GatewayCharge[]>();
  for (const c of succeeded) chargesByOrder.set(c.orderId, [...(chargesByOrder.get(c.orderId) ?? []), c]);
  const unrefunded = (orderId: string) => (chargesByOrder.get(orderId) ?? []).filter((c) => !c.refunded).length;

  const unfinished = sagas.filter((s) => s.status !== 'completed' && s.status !== 'compensated').map((s) => `${s.id} ${s.status}`);
  if (orderCount !== input.placed) unfinished.unshift(`${input.placed} orders placed, ${orderCount} in the orders table`);
  if (sagas.length !== orderCount) unfinished.unshift(`${orderCount} orders, ${sagas.length} sagas`);

  const unbalanced = stock
    .filter((s) => s.available + s.held !== s.initial)
    .map((s) => `${s.sku}: available ${s.available} + reserved ${s.held} != initial ${s.initial}`);

  const wrongOutcome: string[] = [];
  for (const s of sagas) {
    if (s.status === 'completed') {
      const missing = [
        reserved.has(s.id) ? null : 'reservation',
        unrefunded(s.id) === 1 ? null : 'charge',
        shipped.has(s.id) ? null : 'shipment',
        s.confirmed ? null : 'confirmation',
      ].filter(Boolean);
      if (missing.length > 0) wrongOutcome.push(`${s.id} completed without ${missing.join(', ')}`);
    } else if (s.status === 'compensated') {
      const left = [reserved.has(s.id) ? 'reservation' : null, unrefunded(s.id) > 0 ? 'charge' : null, shipped.has(s.id) ? 'shipment' : null].filter(Boolean);
      if (left.length > 0) wrongOutcome.push(`${s.id} compensated but still has ${left.join(', ')}`);
    }
  }

  const chargedNotShipped = succeeded.filter((c) => !c.refunded && !shipped.has(c.orderId)).map((c) => `${c.orderId} charged (${c.id}) but neither shipped nor refunded`);
  const doubles = [...chargesByOrder.entries()].filter(([, cs]) => cs.length > 1).map(([orderId, cs]) => `${orderId} charged ${cs.length} times`);

  return [
    check('every order finished (completed or compensated)', unfinished, `${sagas.length} sagas, all finished`),
    check('stock + reservations balance', unbalanced, `${stock.length} SKUs balance`),
    check('completed orders reserved, charged and shipped; compensated ones undone', wrongOutcome, `${sagas.length} orders match their outcome`),
    check('every charged order has a shipment or a refund', chargedNotShipped, `${succeeded.length} charges accounted for`),
    check('no double charges at the gateway', doubles, `${chargesByOrder.size} orders charged once each`),
  ];
}
