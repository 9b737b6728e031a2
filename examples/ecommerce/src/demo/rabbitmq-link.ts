import { randomBytes } from 'node:crypto';
import { DEFAULT_SAGA_REPLY_TOPIC } from '@sagabox/saga';
import { Connection } from 'rabbitmq-client';
import type { Logger } from '@sagabox/core';
import type { RabbitMqLink } from '../services/service-config.js';

/** The RabbitMQ exchange and queues of one demo run, and how to remove them. */
export interface DemoRabbitMq {
  link: RabbitMqLink;
  /** Deletes the run's exchange and queues (dead-letter queues too) and closes the connection. */
  close(): Promise<void>;
}

/**
 * Declares the exchange and the two queues the shipping service's messages cross, with
 * their bindings, before any service starts: a command published before its consumer
 * is up then waits in its queue instead of coming back unroutable. Names carry the run's
 * prefix and a random suffix, so that runs side by side never share a queue.
 */
export async function createDemoRabbitMq(url: string, prefix: string, logger: Logger): Promise<DemoRabbitMq> {
  const rabbit = new Connection({ url, retryLow: 250, retryHigh: 2_000 });
  rabbit.on('error', (err: unknown) => logger.warn({ err }, 'RabbitMQ connection error'));
  try {
    await rabbit.onConnect(10_000, true);
  } catch (err) {
    rabbit.unsafeDestroy();
    throw new Error(`RabbitMQ at ${new URL(url).host} did not answer within 10 s (${(err as Error).message})`);
  }
  const base = `sagabox-demo.${prefix}.${randomBytes(3).toString('hex')}`;
  const link: RabbitMqLink = { url, exchange: base, shippingQueue: `${base}.shipping`, repliesQueue: `${base}.replies` };
  await rabbit.exchangeDeclare({ exchange: link.exchange, type: 'topic', durable: true });
  for (const [queue, routingKey] of [[link.shippingQueue, 'shipping.*'], [link.repliesQueue, DEFAULT_SAGA_REPLY_TOPIC]] as const) {
    await rabbit.queueDeclare({ queue, durable: true });
    await rabbit.queueBind({ queue, exchange: link.exchange, routingKey });
  }
  return {
    link,
    async close() {
      for (const queue of [link.shippingQueue, link.repliesQueue]) {
        await rabbit.queueDelete({ queue }).catch(() => {});
        await rabbit.queueDelete({ queue: `${queue}.dead` }).catch(() => {});
      }
      await rabbit.exchangeDelete({ exchange: link.exchange }).catch(() => {});
      await rabbit.close();
    },
  };
}
