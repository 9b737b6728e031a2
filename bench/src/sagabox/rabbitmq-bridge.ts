/**
 * The RabbitMQ bridge beside RabbitMQ's own client, same run, same broker, same
 * messages (a ~100-byte JSON payload, persistent, three headers):
 *
 * - out: one relay, then two, on their defaults (batches of 200, two in flight),
 *   draining an outbox of `count` messages (1,000 keys) into a topic exchange vs
 *   rabbitmq-client publishing the same number with confirms, 200 in flight per window
 *   (what one relay batch holds);
 * - in: createRabbitMqConsumer on its defaults (batch transactions with the inbox, two
 *   at once, ack after commit, empty handler) vs a rabbitmq-client consumer that acks
 *   every message, both with the bridge's default prefetch, each on a queue holding
 *   `count` messages.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { migrateUp } from '@sagabox/core/migrate';
import { createRabbitMqConsumer, createRabbitMqDestination, DEFAULT_PREFETCH } from '@sagabox/rabbitmq';
import { Connection } from 'rabbitmq-client';
import type { BridgeResult } from '../report/results.js';
import { bridgeResult, headers, payload, timed, timeRelayDrain, until, WINDOW } from './bridge-helpers.js';

/** Runs the four measurements; the queues and exchanges it makes are deleted at the end. */
export async function runRabbitMqBridge(url: string, amqpUrl: string, count: number): Promise<Omit<BridgeResult, 'error'>> {
  await migrateUp({ connectionString: url });
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  pool.on('error', () => {});
  const rabbit = new Connection(amqpUrl);
  rabbit.on('error', () => {});
  // The relays' and the bridge consumer's own connections, open before any timer starts,
  // as the client's is: connecting is not part of a drain.
  const own = [new Connection(amqpUrl), new Connection(amqpUrl), new Connection(amqpUrl)];
  for (const c of own) c.on('error', () => {});
  const run = randomUUID().slice(0, 8);
  const exchange = `sagabox-bench.${run}`;
  const clientQueue = `sagabox-bench.client.${run}`;
  const relayQueue = `sagabox-bench.relay.${run}`;
  try {
    await Promise.all([rabbit, ...own].map((c) => c.onConnect(10_000)));
    await rabbit.exchangeDeclare({ exchange, type: 'topic', durable: true });
    for (const [queue, key] of [[clientQueue, 'client.#'], [relayQueue, 'relay.#']] as const) {
      await rabbit.queueDeclare({ queue, durable: true });
      await rabbit.queueBind({ queue, exchange, routingKey: key });
    }

    // Out, the client's own limit: confirmed publishes, a window of 200 in flight.
    const pub = rabbit.createPublisher({ confirm: true });
    const clientPublish = await timed(async () => {
      for (let i = 0; i < count; i += WINDOW) {
        const sends: Promise<void>[] = [];
        for (let n = i; n < Math.min(count, i + WINDOW); n++) {
          sends.push(pub.send({ exchange, routingKey: 'client.placed', mandatory: true, durable: true, messageId: randomUUID(), contentType: 'application/json', headers: headers(n) }, Buffer.from(JSON.stringify(payload(n)))));
        }
        await Promise.all(sends);
      }
    });
    await pub.close();

    // Out, the relay, then two relays, as a relay is scaled.
    const destination = (relay: number) => createRabbitMqDestination({ connection: own[relay]!, routes: [{ topic: 'relay.#', exchange }], declareExchanges: false });
    const relay = await timeRelayDrain(pool, count, 'relay.placed', 1, destination);
    const twoRelays = await timeRelayDrain(pool, count, 'relay.placed', 2, destination);
    // The second drain's copies are not consumed below.
    await rabbit.queuePurge({ queue: relayQueue });
    await timeRelayDrain(pool, count, 'relay.placed', 1, destination);

    // In, the plain client: ack each message.
    let acked = 0;
    let plain: ReturnType<Connection['createConsumer']> | undefined;
    const plainConsumer = await timed(async () => {
      plain = rabbit.createConsumer({ queue: clientQueue, queueOptions: { passive: true }, qos: { prefetchCount: DEFAULT_PREFETCH }, concurrency: DEFAULT_PREFETCH }, () => {
        acked++;
      });
      plain.on('error', () => {});
      await until('the plain consumer to drain its queue', () => acked >= count);
    });
    await plain?.close();

    // In, the bridge: the inbox rows and the (empty) handler in a transaction per batch, ack after commit.
    let handled = 0;
    const consumer = createRabbitMqConsumer({ connection: own[2]!, pool, queue: relayQueue, declareQueue: false, handler: () => {} });
    consumer.events.on('handled', (e) => (handled += e.count));
    const inboxConsumer = await timed(async () => {
      await consumer.start();
      await until('the inbox consumer to drain its queue', () => handled >= count);
    });
    await consumer.stop();

    return bridgeResult(count, { clientPublish, relay, twoRelays, plainConsumer, inboxConsumer });
  } finally {
    for (const queue of [clientQueue, relayQueue, `${relayQueue}.dead`]) await rabbit.queueDelete({ queue }).catch(() => {});
    await rabbit.exchangeDelete({ exchange }).catch(() => {});
    await Promise.all([rabbit, ...own].map((c) => c.close()));
    await pool.end();
  }
}
