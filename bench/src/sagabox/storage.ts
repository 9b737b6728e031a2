/**
 * sagabox as the storage workloads see it, two ways: each queue fed by a direct route
 * (publish writes the queue row; no relay), or through the outbox and a relay beside
 * the worker. One worker per queue with the library's defaults but for concurrency.
 * Public API only, but for the seed, which writes queue rows in one statement so that a
 * million-message backlog takes seconds.
 */
import { createRelay, createWorker, publish } from '@sagabox/core';
import { addDirectRoute } from '@sagabox/core/admin';
import { migrateUp } from '@sagabox/core/migrate';
import pg from 'pg';
import { execute } from '../harness/databases.js';
import type { StorageSystem } from '../harness/storage-system.js';
import type { Consumer, ConsumerOptions } from '../harness/variant.js';

const SCHEMA = 'sagabox';
const topic = (queue: string) => `bench.${queue}`;

async function install(url: string, queues: readonly string[], direct: boolean): Promise<void> {
  await migrateUp({ connectionString: url, schema: SCHEMA });
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  try {
    for (const queue of queues) {
      await pool.query(`INSERT INTO ${SCHEMA}.queues (name) VALUES ($1) ON CONFLICT DO NOTHING`, [queue]);
      if (direct) await addDirectRoute(pool, { topic: topic(queue), queue }, { schema: SCHEMA });
    }
  } finally {
    await pool.end();
  }
}

export const sagaboxStorage: StorageSystem = {
  id: 'sagabox',
  label: 'sagabox (direct route, worker defaults)',
  kind: 'sagabox',
  notes: "sagabox: addDirectRoute({ topic: 'bench.<queue>', queue }) and publish() in the caller's transaction (notify on); createWorker({ queue, concurrency: 10 }) with every other option at its default (batchSize 10, inbox on, lease 30 s).",
  schemas: [SCHEMA],
  install: (url, queues) => install(url, queues, true),
  async openPublisher(_url, queue) {
    return {
      async publish(client, n) {
        await publish(client, { topic: topic(queue), payload: { n } }, { schema: SCHEMA });
      },
      async close() {},
    };
  },
  async seed(url, queue, count, firstN) {
    const chunk = 250_000;
    for (let start = 0; start < count; start += chunk) {
      const size = Math.min(chunk, count - start);
      await execute(
        url,
        `INSERT INTO ${SCHEMA}.queue_messages (queue, id, topic, payload, created_at)
         SELECT '${queue}', gen_random_uuid(), '${topic(queue)}', jsonb_build_object('n', ${Math.trunc(firstN + start)} + g), now()
         FROM generate_series(0, ${size - 1}) AS g`,
      );
    }
  },
  openConsumer: (url, queue, options) => openWorker(url, queue, options, false),
};

/**
 * The same through the outbox: publish() writes an outbox row, and a relay with the
 * library's defaults (one per queue, in the consumer's process) moves it to the queue.
 */
export const sagaboxOutboxStorage: StorageSystem = {
  ...sagaboxStorage,
  id: 'sagabox_outbox',
  label: 'sagabox (outbox and relay, defaults)',
  notes: "sagabox_outbox: publish() into the outbox in the caller's transaction (notify on); createRelay({ routes: [{ topic: 'bench.<queue>', queue }] }) and createWorker({ queue, concurrency: 10 }), every other option at its default.",
  install: (url, queues) => install(url, queues, false),
  openConsumer: (url, queue, options) => openWorker(url, queue, options, true),
};

async function openWorker(url: string, queue: string, options: ConsumerOptions, relayed: boolean): Promise<Consumer> {
  const pool = new pg.Pool({ connectionString: url, max: options.concurrency + (relayed ? 3 : 2) });
  const relay = relayed ? createRelay({ pool, schema: SCHEMA, routes: [{ topic: topic(queue), queue }] }) : undefined;
  const worker = createWorker({
    pool,
    schema: SCHEMA,
    queue,
    concurrency: options.concurrency,
    handler: async (message) => {
      options.onMessage((message.payload as { n: number }).n);
    },
  });
  return {
    async start() {
      await relay?.start();
      await worker.start();
    },
    async stop() {
      await relay?.stop();
      await worker.stop();
      await pool.end();
    },
  };
}
