import { DEFAULT_SAGA_REPLY_TOPIC } from '@sagabox/saga';
import { createJetStreamConsumer, createJetStreamDestination } from '@sagabox/nats';
import { describeSagaAcrossBroker } from '../support/saga-across-broker.js';
import { useJetStream } from '../support/nats-server.js';

// Commands and replies share one stream; each side reads its subjects through a durable consumer.
const { server, jsm } = await useJetStream();
await jsm.streams.add({ name: 'SAGA', subjects: ['inventory.*', DEFAULT_SAGA_REPLY_TOPIC] });

await describeSagaAcrossBroker({
  broker: 'NATS JetStream',
  destination: (topic) => createJetStreamDestination({ servers: server.url, routes: [{ topic }] }),
  commandConsumer: (pool, handler) => createJetStreamConsumer({ servers: server.url, pool, stream: 'SAGA', durable: 'inventory', filterSubject: 'inventory.*', handler }),
  replyConsumer: (pool, consumer, handler) =>
    createJetStreamConsumer({ servers: server.url, pool, stream: 'SAGA', durable: 'replies', consumer, filterSubject: DEFAULT_SAGA_REPLY_TOPIC, handler }),
  commandInbox: 'inventory',
});
