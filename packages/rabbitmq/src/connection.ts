import type { Logger } from '@sagabox/core';
import { Connection } from 'rabbitmq-client';

/** How a destination or consumer reaches RabbitMQ: its own connection from a URL, or one you share. */
export interface RabbitMqConnectionOptions {
  /**
   * `amqp://user:password@host:port/vhost` (or `amqps://`). The component opens its own
   * connection, reconnects with backoff when it drops, and closes it at `stop`.
   */
  url?: string;
  /** A `rabbitmq-client` connection to share; the component neither opens nor closes it. */
  connection?: Connection;
}

/** Default AMQP heartbeat of connections opened from a URL, in seconds: a silent broker is noticed within two. */
export const DEFAULT_HEARTBEAT_SECONDS = 10;

/** The given connection, or a new one from `url` that logs its drops and returns. */
export function openConnection(options: RabbitMqConnectionOptions, log: Logger): { connection: Connection; owned: boolean } {
  if (options.connection) return { connection: options.connection, owned: false };
  const connection = new Connection({
    url: options.url,
    heartbeat: DEFAULT_HEARTBEAT_SECONDS,
    connectionName: 'sagabox',
    // Reconnect soon after a broker returns: backoff steps of 250 ms, at most 5 s apart.
    retryLow: 250,
    retryHigh: 5_000,
    acquireTimeout: 10_000,
  });
  connection.on('error', (err: unknown) => log.warn({ err }, 'RabbitMQ connection error; reconnecting'));
  connection.on('connection', () => log.info({}, 'RabbitMQ connection (re)established'));
  return { connection, owned: true };
}
