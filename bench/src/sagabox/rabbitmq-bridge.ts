/**
 * The RabbitMQ bridge beside RabbitMQ's own client, same run, same broker, same
 * messages (a ~100-byte JSON payload, persistent, five headers):
 *
 * - out: one relay, then two, draining an outbox of `count` messages (1,000 keys)
 *   into a topic exchange (confirms awaited per batch of 200) vs rabbitmq-client
 *   publishing the same number with confirms, 200 in flight per window (what one
 *   relay's batch allows);
 * - in: createRabbitMqConsumer (batch transaction with the inbox, ack after commit,
 *   empty handler) vs a rabbitmq-client consumer that acks every message, both with
 *   prefetch 100, each on a queue holding `count` messages.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { createRelay, publish } from '@sagabox/core';
import { migrateUp } from '@sagabox/core/migrate';
import { createRabbitMqConsumer, createRabbitMqDestination } from '@sagabox/rabbitmq';
import { Connection } from 'rabbitmq-client';
import type { BridgeResult } from '../report/results.js';

const WINDOW = 200;
const PREFETCH = 100;
const payload = (n: number) => ({ orderId: `order-${n}`, customer: 'c-1', amount: 42, currency: 'EUR', items: 3 });
const headers = (n: number) => ({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'correlation-id': `c-${n}`, 'causation-id': `x-${n}` });

const rate = (count: number, ms: number) => (count / ms) * 1000;

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Runs the four measurements; the queues and exchanges it makes are deleted at the end. */
export async function runRabbitMqBridge(url: string, amqpUrl: string, count: number): Promise<Omit<BridgeResult, 'error'>> {
  await migrateUp({ connectionString: url });
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  pool.on('error', () => {});
  const rabbit = new Connection(amqpUrl);
  rabbit.on('error', () => {});
  const run = randomUUID().slice(0, 8);
  const exchange = `sagabox-bench.${run}`;
  const clientQueue = `sagabox-bench.client.${run}`;
  const relayQueue = `sagabox-bench.relay.${run}`;
  try {
    await rabbit.exchangeDeclare({ exchange, type: 'topic', durable: true });
    for (const [queue, key] of [[clientQueue, 'client.#'], [relayQueue, 'relay.#']] as const) {
      await rabbit.queueDeclare({ queue, durable: true });
      await rabbit.queueBind({ queue, exchange, routingKey: key });
    }

    // Out, the client's own limit: confirmed publishes, a window of 200 in flight.
    const pub = rabbit.createPublisher({ confirm: true });
    const began0 = performance.now();
    for (let i = 0; i < count; i += WINDOW) {
      const sends: Promise<void>[] = [];
      for (let n = i; n < Math.min(count, i + WINDOW); n++) {
        sends.push(pub.send({ exchange, routingKey: 'client.placed', mandatory: true, durable: true, messageId: randomUUID(), contentType: 'application/json', headers: headers(n) }, Buffer.from(JSON.stringify(payload(n)))));
      }
      await Promise.all(sends);
    }
    const clientPublishMs = performance.now() - began0;
    let began: number;
    await pub.close();

    // Out, the relay: the outbox is filled first (not timed), then drained by one
    // relay, then (filled again) by two, as a relay is scaled.
    const drain = async (relays: number): Promise<number> => {
      for (let i = 0; i < count; i += 1_000) {
        await publish(pool, Array.from({ length: Math.min(1_000, count - i) }, (_, j) => ({ topic: 'relay.placed', key: `k-${(i + j) % 1_000}`, payload: payload(i + j), headers: headers(i + j) })));
      }
      let delivered = 0;
      const started = Array.from({ length: relays }, (_, r) => {
        const relay = createRelay({ pool, name: `bench-${r}`, batchSize: WINDOW, destinations: [createRabbitMqDestination({ url: amqpUrl, routes: [{ topic: 'relay.#', exchange }], declareExchanges: false })] });
        relay.events.on('delivered', (e) => (delivered += e.count));
        return relay;
      });
      const t0 = performance.now();
      await Promise.all(started.map((r) => r.start()));
      await until('the relays to drain the outbox', () => delivered >= count, 600_000);
      const ms = performance.now() - t0;
      await Promise.all(started.map((r) => r.stop()));
      return ms;
    };
    const relayMs = await drain(1);
    const twoRelaysMs = await drain(2);
    // The second drain's copies are not consumed below.
    await rabbit.queuePurge({ queue: relayQueue });
    await drain(1);

    // In, the plain client: ack each message.
    let acked = 0;
    began = performance.now();
    const plain = rabbit.createConsumer({ queue: clientQueue, queueOptions: { passive: true }, qos: { prefetchCount: PREFETCH }, concurrency: PREFETCH }, () => {
      acked++;
    });
    plain.on('error', () => {});
    await until('the plain consumer to drain its queue', () => acked >= count, 600_000);
    const plainMs = performance.now() - began;
    await plain.close();

    // In, the bridge: the inbox row and the (empty) handler in a transaction per batch, ack after commit.
    let handled = 0;
    const consumer = createRabbitMqConsumer({ url: amqpUrl, pool, queue: relayQueue, declareQueue: false, prefetch: PREFETCH, handler: () => {} });
    consumer.events.on('handled', (e) => (handled += e.count));
    began = performance.now();
    await consumer.start();
    await until('the inbox consumer to drain its queue', () => handled >= count, 600_000);
    const inboxMs = performance.now() - began;
    await consumer.stop();

    const clientPublish = rate(count, clientPublishMs);
    const relayRate = rate(count, relayMs);
    const plainRate = rate(count, plainMs);
    const inboxRate = rate(count, inboxMs);
    return {
      messages: count,
      clientPublishPerSecond: clientPublish,
      relayPerSecond: relayRate,
      relayRatio: relayRate / clientPublish,
      twoRelaysPerSecond: rate(count, twoRelaysMs),
      twoRelaysRatio: rate(count, twoRelaysMs) / clientPublish,
      plainConsumerPerSecond: plainRate,
      inboxConsumerPerSecond: inboxRate,
      consumerRatio: inboxRate / plainRate,
    };
  } finally {
    for (const queue of [clientQueue, relayQueue, `${relayQueue}.dead`]) await rabbit.queueDelete({ queue }).catch(() => {});
    await rabbit.exchangeDelete({ exchange }).catch(() => {});
    await rabbit.close();
    await pool.end();
  }
}
