export * from './create-jetstream-destination.js';
export { DEFAULT_RECONNECT_TIME_WAIT_MS, type NatsConnectionSource } from './nats-connection.js';
export { NATS_HEADERS } from './nats-headers.js';
export { inboxMessageId } from './message-id.js';
export * from './create-jetstream-consumer.js';
