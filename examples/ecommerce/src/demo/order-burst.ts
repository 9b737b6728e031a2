import { randomUUID } from 'node:crypto';
import type { PlaceOrderRequest } from '../services/orders-service.js';

/** A seeded pseudo-random generator (mulberry32): the same seed gives the same burst. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** An order of the burst and why it is expected to fail, if it is. */
export interface PlannedOrder {
  id: string;
  request: PlaceOrderRequest;
  /** What the order was built to run into; the stock of the limited SKU decides which of those fail. */
  trap: 'none' | 'limited_stock' | 'declined_card' | 'unsupported_region';
}

/** The SKU with little stock: orders for it beyond its stock fail with "not enough stock". */
export const LIMITED_SKU = 'limited-edition';

/** Stock the inventory starts with for a burst of `orders`: plenty, except the limited SKU (about half of its orders). */
export function initialStock(orders: number): Record<string, number> {
  return { widget: orders * 10, gadget: orders * 10, gizmo: orders * 10, [LIMITED_SKU]: Math.max(1, Math.floor(orders * 0.05)) };
}

/**
 * Plans a burst: most orders are ordinary; about 10% ask for the limited SKU, 5% pay
 * with a card the gateway declines, 5% ship to a region shipping does not serve.
 */
export function planOrders(count: number, random: () => number): PlannedOrder[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  return Array.from({ length: count }, (_, i) => {
    const roll = random();
    const trap: PlannedOrder['trap'] =
      roll < 0.1 ? 'limited_stock' : roll < 0.15 ? 'declined_card' : roll < 0.2 ? 'unsupported_region' : 'none';
    return {
      id: randomUUID(),
      trap,
      request: {
        customerId: `customer-${(i % 50) + 1}`,
        sku: trap === 'limited_stock' ? LIMITED_SKU : pick(['widget', 'gadget', 'gizmo']),
        qty: trap === 'limited_stock' ? 1 : 1 + Math.floor(random() * 3),
        card: trap === 'declined_card' ? 'tok_declined' : 'tok_ok',
        region: trap === 'unsupported_region' ? 'antarctica' : pick(['eu', 'us', 'uk']),
      },
    };
  });
}

/** Options of {@link placeOrders}. */
export interface PlaceOrdersOptions {
  ordersUrl: string;
  orders: readonly PlannedOrder[];
  /** Requests in flight at once. Default 16. */
  concurrency?: number;
  /** Orders per second at most; default unlimited. */
  ratePerSecond?: number;
  /** Called after each order was accepted. */
  onPlaced?: (order: PlannedOrder) => void;
  /** Gives up on one order after this long, in milliseconds. Default 120,000. */
  orderTimeoutMs?: number;
}

/**
 * Places orders through the orders service's HTTP API. A request that gets no answer
 * (the service was killed, its port is closed) is sent again with the same
 * Idempotency-Key, so it creates the order at most once whatever happened to the first.
 */
export async function placeOrders(options: PlaceOrdersOptions): Promise<{ retries: number }> {
  const concurrency = options.concurrency ?? 16;
  const interval = options.ratePerSecond ? 1_000 / options.ratePerSecond : 0;
  const startedAt = Date.now();
  let next = 0;
  let retries = 0;
  const placeOne = async (order: PlannedOrder): Promise<void> => {
    const deadline = Date.now() + (options.orderTimeoutMs ?? 120_000);
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await fetch(`${options.ordersUrl}/orders`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': order.id },
          body: JSON.stringify(order.request),
          signal: AbortSignal.timeout(5_000),
        });
        if (res.status === 202) {
          await res.body?.cancel();
          return;
        }
        const text = await res.text();
        if (res.status < 500) throw new Error(`POST /orders answered ${res.status}: ${text}`);
      } catch (err) {
        if ((err as Error).message.startsWith('POST /orders answered 4')) throw err;
      }
      if (Date.now() > deadline) throw new Error(`order ${order.id} was not accepted within ${options.orderTimeoutMs ?? 120_000} ms`);
      retries++;
      await new Promise((r) => setTimeout(r, Math.min(1_000, 50 * 2 ** attempt)));
    }
  };
  const lane = async (): Promise<void> => {
    while (next < options.orders.length) {
      const i = next++;
      const due = startedAt + i * interval;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      const order = options.orders[i]!;
      await placeOne(order);
      options.onPlaced?.(order);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, options.orders.length) }, lane));
  return { retries };
}
