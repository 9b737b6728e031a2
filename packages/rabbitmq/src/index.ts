export * from './connection.js';
export * from './create-rabbitmq-destination.js';
export * from './create-rabbitmq-consumer.js';
export { AMQP_HEADERS, DEAD_LETTER_HEADERS, inboxId } from './amqp-message.js';
