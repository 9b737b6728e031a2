import type { Destination, Logger } from '@sagabox/core';
import { UsageError } from './usage-error.js';

/** What `sagabox relay --to <url>` needs to build a broker destination. */
export interface BrokerTarget {
  /** The `--to` URL; its scheme picks the broker. */
  url: string;
  /** The `--route` flags as given. */
  routes: readonly string[];
  subjectPrefix?: string;
  logger: Logger;
}

/** Splits `pattern=target` (target optional when `targetRequired` is false). */
function splitRoute(text: string, targetRequired: boolean, what: string): { topic: string; target: string | undefined } {
  const i = text.lastIndexOf('=');
  if (i < 0 && !targetRequired) return { topic: text, target: undefined };
  if (i <= 0 || i === text.length - 1) throw new UsageError(`--route must look like ${what}, got ${JSON.stringify(text)}`);
  return { topic: text.slice(0, i), target: text.slice(i + 1) };
}

/**
 * The destination for `--to`: the broker package is loaded only when its scheme is
 * used, so the CLI runs without the clients of brokers nobody asked for.
 */
export async function brokerDestination(target: BrokerTarget): Promise<Destination> {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(target.url)?.[1]?.toLowerCase();
  if (scheme === 'nats' || scheme === 'tls') {
    const { createJetStreamDestination } = await import('@sagabox/nats').catch((err: unknown) => {
      if ((err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') throw new UsageError('--to nats:// needs the @sagabox/nats package: npm install @sagabox/nats');
      throw err;
    });
    const routes = target.routes.map((r) => {
      const { topic, target: subject } = splitRoute(r, false, "'orders.#' or 'orders.*=orders-subject'");
      return subject === undefined ? { topic } : { topic, subject };
    });
    return createJetStreamDestination({ servers: target.url, routes, subjectPrefix: target.subjectPrefix ?? '', logger: target.logger });
  }
  if (scheme === 'amqp' || scheme === 'amqps') {
    const { createRabbitMqDestination } = await import('@sagabox/rabbitmq').catch((err: unknown) => {
      if ((err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') throw new UsageError('--to amqp:// needs the @sagabox/rabbitmq package: npm install @sagabox/rabbitmq');
      throw err;
    });
    if (target.subjectPrefix !== undefined) throw new UsageError('--subject-prefix goes with --to nats://');
    const routes = target.routes.map((r) => {
      const { topic, target: exchange } = splitRoute(r, true, "'orders.#=orders-exchange'");
      return { topic, exchange: exchange! };
    });
    return createRabbitMqDestination({ url: target.url, routes, logger: target.logger });
  }
  // The URL may carry a password: name its scheme only.
  throw new UsageError(`--to must be a nats:// or amqp:// URL, got ${scheme === undefined ? 'no scheme' : `${scheme}://`}`);
}
