import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import pg from 'pg';
import { createQueueDestination, createRelay, type Logger } from '@sagabox/core';
import { createOrchestrator, DEFAULT_ORCHESTRATOR_CONSUMER, DEFAULT_SAGA_REPLY_TOPIC, getSaga, startSaga } from '@sagabox/saga';
import { createRabbitMqConsumer, createRabbitMqDestination } from '@sagabox/rabbitmq';
import { orderSaga, type OrderInput } from '../order-saga.js';
import { CATALOG, DEMO_TIMINGS, type RunningService, type ServiceConfig } from './service-config.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The body of `POST /orders`. */
export interface PlaceOrderRequest {
  customerId: string;
  sku: string;
  qty: number;
  card: string;
  region: string;
}

/** Checks a `POST /orders` body; returns every problem, or none. */
export function orderProblems(body: unknown): string[] {
  const b = (body ?? {}) as Partial<PlaceOrderRequest>;
  const problems: string[] = [];
  if (typeof b.customerId !== 'string' || b.customerId === '') problems.push('customerId must be a non-empty string');
  if (typeof b.sku !== 'string' || !(b.sku in CATALOG)) problems.push(`sku must be one of ${Object.keys(CATALOG).join(', ')}`);
  if (!Number.isInteger(b.qty) || (b.qty as number) < 1 || (b.qty as number) > 10) problems.push('qty must be an integer from 1 to 10');
  if (typeof b.card !== 'string' || b.card === '') problems.push('card must be a card token');
  if (typeof b.region !== 'string' || b.region === '') problems.push('region must be a non-empty string');
  return problems;
}

/**
 * Creates the order row and starts its saga in ONE transaction: both commit, or
 * neither does. startSaga writes the saga row and its first command into the outbox
 * of this same database, so a crash right after COMMIT loses nothing (the relay will
 * send the command) and a crash before it leaves no order without a saga.
 * The order id doubles as the saga id, so a client's retry with the same
 * Idempotency-Key places the order once.
 */
async function placeOrder(pool: pg.Pool, orderId: string, request: PlaceOrderRequest, logger: Logger): Promise<void> {
  const input: OrderInput = { orderId, ...request, amountCents: CATALOG[request.sku]! * request.qty };
  const client = await pool.connect();
  // A connection that dies between two queries emits 'error' on the client; without a
  // listener that would take the process down. The next query fails the request anyway.
  const onError = (err: Error) => logger.warn({ err, orderId }, 'database connection lost');
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    await client.query(
      `INSERT INTO orders (id, customer_id, sku, qty, amount_cents, card, region)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
      [orderId, input.customerId, input.sku, input.qty, input.amountCents, input.card, input.region],
    );
    await startSaga(client, orderSaga, input, { id: orderId });
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.off('error', onError);
    client.release();
  }
}

/** `GET /orders/:id`: the order, its saga's status and the saga's step history. */
async function describeOrder(pool: pg.Pool, orderId: string): Promise<unknown> {
  const { rows } = await pool.query('SELECT id, customer_id, sku, qty, amount_cents, region, created_at, confirmed_at FROM orders WHERE id = $1', [orderId]);
  const order = rows[0];
  if (!order) return undefined;
  const saga = await getSaga(pool, orderId);
  return {
    orderId: order.id,
    status: saga?.status ?? 'unknown',
    error: saga?.error ?? null,
    sku: order.sku,
    qty: order.qty,
    amountCents: order.amount_cents,
    region: order.region,
    createdAt: order.created_at,
    confirmedAt: order.confirmed_at,
    history: (saga?.history ?? []).map((e) => ({ step: e.step, event: e.event, at: e.at, detail: e.detail })),
  };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let body = '';
  for await (const chunk of req) body += chunk;
  return JSON.parse(body);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/**
 * The orders service: the HTTP API (`POST /orders`, `GET /orders/:id`), the saga
 * orchestrator, and the relay that sends the saga's commands from this database's
 * outbox into the other services' queues.
 */
export async function startOrdersService(config: ServiceConfig, logger: Logger): Promise<RunningService> {
  // Two pools on the orders database: a burst of HTTP requests must not take every
  // connection from the orchestrator and the relay, or no saga would move until it ends.
  const pool = new pg.Pool({ connectionString: config.databases.orders, max: 8, connectionTimeoutMillis: 10_000 });
  const apiPool = new pg.Pool({ connectionString: config.databases.orders, max: 6, connectionTimeoutMillis: 10_000 });
  const others = {
    inventory: new pg.Pool({ connectionString: config.databases.inventory, max: 2, connectionTimeoutMillis: 10_000 }),
    payments: new pg.Pool({ connectionString: config.databases.payments, max: 2, connectionTimeoutMillis: 10_000 }),
    shipping: new pg.Pool({ connectionString: config.databases.shipping, max: 2, connectionTimeoutMillis: 10_000 }),
  };
  for (const p of [pool, apiPool, ...Object.values(others)]) p.on('error', (err) => logger.warn({ err }, 'idle connection failed'));

  const orchestrator = createOrchestrator({
    pool,
    definitions: [orderSaga],
    concurrency: 3,
    leaseMs: DEMO_TIMINGS.leaseMs,
    pollIntervalMs: DEMO_TIMINGS.pollIntervalMs,
    logger,
  });
  // With --broker rabbitmq the shipping service's commands go to RabbitMQ, and its
  // replies come back from there into the orchestrator's transition handler, deduplicated
  // by the same inbox (consumer name) as the replies that arrive through the queue.
  const link = config.rabbitmq;
  const relay = createRelay({
    pool,
    pollIntervalMs: DEMO_TIMINGS.pollIntervalMs,
    // Replies and timeouts stay in this database (the orchestrator's queue); each
    // command goes to the queue of its service, in that service's database.
    routes: orchestrator.routes,
    destinations: Object.entries(others).map(([service, otherPool]) =>
      link && service === 'shipping'
        ? createRabbitMqDestination({ url: link.url, routes: [{ topic: 'shipping.*', exchange: link.exchange }], name: 'rabbitmq-shipping', logger })
        : createQueueDestination({ pool: otherPool, routes: [{ topic: `${service}.*`, queue: service }], name: service }),
    ),
    logger,
  });
  const brokerReplies = link
    ? createRabbitMqConsumer({
        url: link.url,
        pool,
        queue: link.repliesQueue,
        consumer: DEFAULT_ORCHESTRATOR_CONSUMER,
        bindings: [{ exchange: link.exchange, routingKey: DEFAULT_SAGA_REPLY_TOPIC }],
        stopTimeoutMs: DEMO_TIMINGS.stopTimeoutMs,
        logger,
        handler: orchestrator.handler,
      })
    : undefined;

  const log = logger.child({ component: 'http' });
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://orders');
    const handle = async (): Promise<void> => {
      if (req.method === 'POST' && url.pathname === '/orders') {
        let body: unknown;
        try {
          body = await readJson(req);
        } catch {
          return send(res, 400, { error: 'the body must be JSON' });
        }
        const problems = orderProblems(body);
        const key = req.headers['idempotency-key'];
        if (key !== undefined && (typeof key !== 'string' || !UUID.test(key))) problems.push('Idempotency-Key must be a UUID');
        if (problems.length > 0) return send(res, 400, { error: 'invalid order', problems });
        const orderId = typeof key === 'string' ? key.toLowerCase() : randomUUID();
        await placeOrder(apiPool, orderId, body as PlaceOrderRequest, log);
        return send(res, 202, { orderId });
      }
      const m = /^\/orders\/([^/]+)$/.exec(url.pathname);
      if (req.method === 'GET' && m && UUID.test(m[1]!)) {
        const order = await describeOrder(apiPool, m[1]!.toLowerCase());
        return order === undefined ? send(res, 404, { error: 'no such order' }) : send(res, 200, order);
      }
      return send(res, 404, { error: 'not found' });
    };
    handle().catch((err: unknown) => {
      log.error({ err }, 'request failed');
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
    });
  });

  await relay.start();
  await orchestrator.start();
  await brokerReplies?.start();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.ordersPort, '127.0.0.1', resolve);
  });
  log.info({ port: config.ordersPort }, 'orders API listening');
  return {
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await brokerReplies?.stop();
      await orchestrator.stop();
      await relay.stop();
      await Promise.all([pool.end(), apiPool.end(), ...Object.values(others).map((p) => p.end())]);
    },
  };
}
