import {
  InvalidOptionsError,
  SagaboxError,
  silentLogger,
  type Destination,
  type Logger,
  type RelayedMessage,
} from '@sagabox/core';
import { topicMatcher } from '@sagabox/core/extension';
import { AMQPConnectionError, Connection, type Publisher, type ReturnedMessage } from 'rabbitmq-client';
import { toAmqp } from './amqp-message.js';
import { openConnection, type RabbitMqConnectionOptions } from './connection.js';

/** Default largest message body the destination sends, in bytes (16 MiB, RabbitMQ 4's default `max_message_size`). */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** Default longest wait for the broker's confirms of one batch, in milliseconds. */
export const DEFAULT_CONFIRM_TIMEOUT_MS = 15_000;

/**
 * A route: messages whose topic matches `topic` (exact, `*` one segment, `#` any
 * segments) are published to `exchange` with the topic as routing key (or
 * `routingKey` when given). A RabbitMQ topic exchange matches routing keys with the
 * same `*`/`#` wildcards, so bindings there read like sagabox routes.
 */
export interface RabbitMqRoute {
  /** The sagabox topic pattern (`*` and `#` wildcards) this route takes. */
  topic: string;
  /** The exchange messages of matching topics are published to. */
  exchange: string;
  /** The routing key to publish with (default: the message's topic). */
  routingKey?: string;
}

/** Options of {@link createRabbitMqDestination}. */
export interface RabbitMqDestinationOptions extends RabbitMqConnectionOptions {
  /** Topic patterns to exchanges. A topic matching several routes is published to each. */
  routes: readonly RabbitMqRoute[];
  /**
   * Declare each route's exchange (durable, type `topic`) at `start`. Default true; set
   * false when the exchanges are someone else's and may have other settings.
   */
  declareExchanges?: boolean;
  /** Largest body sent, in bytes; a larger message fails with `PAYLOAD_TOO_LARGE`. Default {@link DEFAULT_MAX_MESSAGE_BYTES}. */
  maxMessageBytes?: number;
  /** Longest wait for one batch's confirms, in milliseconds. Default {@link DEFAULT_CONFIRM_TIMEOUT_MS}. */
  confirmTimeoutMs?: number;
  /** Name for logs. Default `'rabbitmq'`. */
  name?: string;
  /** Where the destination logs (default: silent). */
  logger?: Logger;
}

interface ResolvedRoute {
  match: (topic: string) => boolean;
  exchange: string;
  routingKey: string | undefined;
}

function resolveRoutes(options: RabbitMqDestinationOptions, problems: string[]): ResolvedRoute[] {
  const routes: ResolvedRoute[] = [];
  if (!Array.isArray(options?.routes) || options.routes.length === 0) problems.push('routes must be a non-empty array');
  for (const [i, r] of (options?.routes ?? []).entries()) {
    try {
      if (typeof r.exchange !== 'string' || r.exchange.length > 255) throw new Error('exchange must be a string of at most 255 characters');
      if (r.routingKey !== undefined && (typeof r.routingKey !== 'string' || r.routingKey.length > 255)) throw new Error('routingKey must be a string of at most 255 characters');
      routes.push({ match: topicMatcher(r.topic), exchange: r.exchange, routingKey: r.routingKey });
    } catch (err) {
      problems.push(`routes[${i}]: ${(err as Error).message}`);
    }
  }
  return routes;
}

const positiveInt = (problems: string[], name: string, value: unknown): void => {
  if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < 1)) problems.push(`${name} must be a positive integer, got ${JSON.stringify(value)}`);
};

/**
 * A relay destination that publishes to RabbitMQ. Each message is published persistent
 * (`delivery_mode` 2), `mandatory`, with `message_id` = the sagabox id and the outbox
 * headers as AMQP headers; `deliver` resolves only when the broker has confirmed every
 * message of the batch, so the relay removes outbox rows the broker holds. A nack, an
 * unroutable (returned) message or a closed channel throws a `BROKER_REJECTED`
 * {@link SagaboxError} naming the broker's reason: the relay retries it, then
 * dead-letters it with that reason.
 *
 * A batch is published in its order on one channel and the confirms are awaited
 * together: RabbitMQ keeps a channel's order into each queue, so messages of one key
 * (which the relay hands over in commit order, one relay at a time per key) reach a
 * queue in commit order.
 *
 * @example
 * const relay = createRelay({
 *   pool,
 *   destinations: [createRabbitMqDestination({ url: 'amqp://guest:guest@127.0.0.1:5672', routes: [{ topic: 'orders.#', exchange: 'orders' }] })],
 * });
 */
export function createRabbitMqDestination(options: RabbitMqDestinationOptions): Destination {
  const problems: string[] = [];
  const routes = resolveRoutes(options, problems);
  positiveInt(problems, 'maxMessageBytes', options?.maxMessageBytes);
  positiveInt(problems, 'confirmTimeoutMs', options?.confirmTimeoutMs);
  if (options && options.url === undefined && !(options.connection instanceof Connection)) problems.push('give url or connection');
  if (problems.length > 0) throw new InvalidOptionsError('rabbitmq destination', problems);
  const name = options.name ?? 'rabbitmq';
  const maxBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const confirmTimeoutMs = options.confirmTimeoutMs ?? DEFAULT_CONFIRM_TIMEOUT_MS;
  const log = (options.logger ?? silentLogger).child({ component: 'rabbitmq-destination', destination: name });
  const declare = options.declareExchanges ?? true;
  const routesOf = new Map<string, ResolvedRoute[]>();
  const routesFor = (topic: string): ResolvedRoute[] => {
    let rs = routesOf.get(topic);
    if (!rs) {
      rs = routes.filter((r) => r.match(topic));
      if (routesOf.size < 10_000) routesOf.set(topic, rs);
    }
    return rs;
  };
  let connection: Connection | undefined;
  let ownsConnection = false;
  let publisher: Publisher | undefined;
  // Returned (unroutable) messages of the batch in flight, by message id. The broker
  // sends basic.return before the confirm of the same message, on the same channel.
  const returned = new Map<string, ReturnedMessage>();

  const open = (): Publisher => {
    if (publisher) return publisher;
    if (!connection) {
      ({ connection, owned: ownsConnection } = openConnection(options, log));
    }
    const exchanges = declare ? [...new Set(routes.map((r) => r.exchange))].filter((e) => e !== '' && !e.startsWith('amq.')) : [];
    publisher = connection.createPublisher({
      confirm: true,
      // The relay retries a failed batch with its own backoff and dead-letters it in the end.
      maxAttempts: 1,
      exchanges: exchanges.map((exchange) => ({ exchange, type: 'topic', durable: true })),
    });
    publisher.on('basic.return', (msg: ReturnedMessage) => {
      if (typeof msg.messageId === 'string') returned.set(msg.messageId, msg);
    });
    return publisher;
  };

  return {
    name,
    external: true,
    matches: (topic) => routesFor(topic).length > 0,
    async start() {
      open();
    },
    async deliver(messages: readonly RelayedMessage[]) {
      const pub = open();
      const now = Date.now();
      const sends: { id: string; done: Promise<void> }[] = [];
      for (const m of messages) {
        const size = Buffer.byteLength(m.payload, 'utf8');
        if (size > maxBytes) {
          throw new SagaboxError('PAYLOAD_TOO_LARGE', `message ${m.id} is ${size} bytes, more than the ${maxBytes} the broker takes`, {
            details: { messageId: m.id, bytes: size, maxMessageBytes: maxBytes },
          });
        }
      }
      // Every publish is written before any confirm is awaited: one round trip per batch.
      for (const m of messages) {
        for (const r of routesFor(m.topic)) {
          const { envelope, body } = toAmqp(m, r.exchange, r.routingKey ?? m.topic, now);
          const done = pub.send(envelope, body);
          done.catch(() => {}); // inspected below; a rejection must not go unhandled meanwhile
          sends.push({ id: m.id, done });
        }
      }
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), confirmTimeoutMs)));
      try {
        const outcome = await Promise.race([Promise.allSettled(sends.map((s) => s.done)), timeout]);
        if (outcome === 'timeout') {
          throw new SagaboxError('BROKER_UNREACHABLE', `no confirm from RabbitMQ within ${confirmTimeoutMs} ms`, { details: { destination: name } });
        }
        // rabbitmq-client emits basic.return from a setImmediate, after the confirm that
        // followed it has resolved: one turn of the check phase brings every return in.
        await new Promise((resolve) => setImmediate(resolve));
        for (const [i, result] of outcome.entries()) {
          const id = sends[i]!.id;
          if (result.status === 'rejected') {
            const cause = result.reason as { code?: string; message?: string };
            if (cause instanceof AMQPConnectionError || cause?.code === 'TIMEOUT') {
              // The relay puts the whole batch back without counting attempts.
              throw new SagaboxError('BROKER_UNREACHABLE', `RabbitMQ unreachable: ${cause.code ?? ''} ${cause.message ?? ''}`.trim(), { cause, details: { destination: name } });
            }
            throw new SagaboxError('BROKER_REJECTED', `RabbitMQ did not take message ${id}: ${cause?.code ?? ''} ${cause?.message ?? String(cause)}`.trim(), {
              cause,
              details: { messageId: id, brokerCode: cause?.code },
            });
          }
          const back = returned.get(id);
          if (back) {
            throw new SagaboxError(
              'BROKER_REJECTED',
              `RabbitMQ returned message ${id}: ${back.replyCode} ${back.replyText} (exchange ${JSON.stringify(back.exchange)}, routing key ${JSON.stringify(back.routingKey)})`,
              { details: { messageId: id, replyCode: back.replyCode, replyText: back.replyText, exchange: back.exchange, routingKey: back.routingKey } },
            );
          }
        }
        log.debug({ count: messages.length, publishes: sends.length }, 'batch confirmed by RabbitMQ');
      } finally {
        clearTimeout(timer);
        for (const m of messages) returned.delete(m.id);
      }
    },
    async stop() {
      const pub = publisher;
      publisher = undefined;
      await pub?.close().catch((err: unknown) => log.warn({ err }, 'closing the publisher failed'));
      if (ownsConnection) await connection?.close();
      connection = undefined;
    },
  };
}
