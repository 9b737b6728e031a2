import { DEFAULT_SAGA_REPLY_TOPIC } from '@sagabox/saga';
import { createRabbitMqConsumer, createRabbitMqDestination } from '@sagabox/rabbitmq';
import { describeSagaAcrossBroker } from '../support/saga-across-broker.js';
import { RABBITMQ_URL, useRabbitMq } from '../support/rabbitmq.js';

// Commands go to an exchange and reach the participant's queue; replies come back
// through the orchestrator's reply queue.
const { name } = useRabbitMq();
const exchange = name('saga');
const commandQueue = name('inventory-q');

await describeSagaAcrossBroker({
  broker: 'RabbitMQ',
  destination: (topic) => createRabbitMqDestination({ url: RABBITMQ_URL, routes: [{ topic, exchange }] }),
  commandConsumer: (pool, handler) => createRabbitMqConsumer({ url: RABBITMQ_URL, pool, queue: commandQueue, bindings: [{ exchange, routingKey: 'inventory.*' }], handler }),
  replyConsumer: (pool, consumer, handler) =>
    createRabbitMqConsumer({ url: RABBITMQ_URL, pool, queue: name('replies-q'), consumer, bindings: [{ exchange, routingKey: DEFAULT_SAGA_REPLY_TOPIC }], handler }),
  commandInbox: commandQueue,
});
