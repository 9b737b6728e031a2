/**
 * The sagabox side of every workload, written against @sagabox/core's public API
 * only. Loaded with a dynamic import, so the peers still run when the core does not
 * build yet (main.ts then prints why sagabox was skipped).
 */
import { addDirectRoute } from '@sagabox/core/admin';
import { createRelay, createWorker, publish } from '@sagabox/core';
import { migrateUp } from '@sagabox/core/migrate';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { execute } from '../harness/databases.js';
import type { Consumer, ConsumerOptions, Publisher, Variant, VariantSet } from '../harness/variant.js';

const SCHEMA = 'sagabox';
const QUEUE = 'bench';
const TOPIC = 'bench.noop';
const ROUTES = [{ topic: 'bench.*', queue: QUEUE }];

async function install(url: string): Promise<void> {
  await migrateUp({ connectionString: url, schema: SCHEMA });
  await execute(url, `INSERT INTO ${SCHEMA}.queues (name) VALUES ('${QUEUE}') ON CONFLICT DO NOTHING`);
}

/** The same schema, with the bench topic routed straight to the queue at publish time. */
async function installDirect(url: string): Promise<void> {
  await install(url);
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  try {
    for (const route of ROUTES) await addDirectRoute(pool, route, { schema: SCHEMA });
  } finally {
    await pool.end();
  }
}

function publisher(notify: boolean) {
  return async (): Promise<Publisher> => ({
    async publish(client, n) {
      await publish(client, { topic: TOPIC, payload: { n } }, { schema: SCHEMA, notify });
    },
    async close() {},
  });
}

/**
 * W1 diagnostic: the statement publish() prepares for a message of an unrouted topic,
 * sent through pg without publish() around it (no checks, no encoding; no key, no NOTIFY), so a
 * run shows the statement's cost apart from the code that builds it. The text is read
 * back from pg_prepared_statements after one publish, so it is the one core sends today.
 */
async function outboxStatementPublisher(url: string): Promise<Publisher> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let text: string;
  try {
    await client.query('BEGIN');
    await publish(client, { topic: TOPIC, payload: { n: 0 } }, { schema: SCHEMA, notify: false });
    const { rows } = await client.query<{ statement: string }>(`SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%INSERT INTO%outbox_%'`);
    if (rows.length !== 1) throw new Error(`expected publish to prepare one outbox statement, found ${rows.length}`);
    text = rows[0]!.statement;
    await client.query('ROLLBACK');
  } finally {
    await client.end();
  }
  const statement = { name: 'bench_outbox_statement', text };
  return {
    async publish(c, n) {
      await c.query(statement, [randomUUID(), TOPIC, null, JSON.stringify({ n }), '{}', null, null, 0, null]);
    },
    async close() {},
  };
}

/**
 * W2: the backlog goes straight into the queue table (the relay is not what W2 measures).
 * The ids are UUIDv7 as publish makes them, one a millisecond up to now (published over
 * the last count milliseconds): the inbox keeps such ids in its time partitions, while
 * random (v4) ids would all take the default partition's path, which only foreign ids take.
 */
async function seedQueue(url: string, count: number): Promise<void> {
  await execute(
    url,
    `INSERT INTO ${SCHEMA}.queue_messages (queue, id, topic, payload, created_at)
     SELECT '${QUEUE}', (substr(t.ms, 1, 8) || '-' || substr(t.ms, 9, 4) || '-7' || substr(gen_random_uuid()::text, 16))::uuid,
            '${TOPIC}', jsonb_build_object('n', g), now()
     FROM generate_series(1, ${Math.trunc(count)}) AS g,
          LATERAL (SELECT lpad(to_hex(floor(extract(epoch FROM now()) * 1000)::bigint - ${Math.trunc(count)} + g), 12, '0') AS ms) AS t`,
  );
}

/** W2r: the backlog sits in the outbox, as if producers had published it. */
async function seedOutbox(url: string, count: number): Promise<void> {
  await execute(
    url,
    `INSERT INTO ${SCHEMA}.outbox (id, topic, payload)
     SELECT gen_random_uuid(), '${TOPIC}', jsonb_build_object('n', g)
     FROM generate_series(1, ${Math.trunc(count)}) AS g`,
  );
}

function payloadNumber(payload: unknown): number {
  return (payload as { n: number }).n;
}

/** A worker with its defaults but concurrency (and inbox when off); `batchSize` only for a tuned variant. */
function worker(inbox: boolean, batchSize?: number) {
  return async (url: string, options: ConsumerOptions): Promise<Consumer> => {
    const pool = new pg.Pool({ connectionString: url, max: options.concurrency + 2 });
    const w = createWorker({
      pool,
      schema: SCHEMA,
      queue: QUEUE,
      concurrency: options.concurrency,
      // Left to its default, the batch size adapts (10, doubling to 400 under a backlog);
      // a tuned variant fixes it.
      ...(batchSize === undefined ? {} : { batchSize }),
      inbox,
      handler: async (message) => {
        options.onMessage(payloadNumber(message.payload));
      },
    });
    return {
      start: () => w.start(),
      async stop() {
        await w.stop();
        await pool.end();
      },
    };
  };
}

async function relayOnly(url: string): Promise<Consumer> {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  const relay = createRelay({ pool, schema: SCHEMA, routes: ROUTES });
  return {
    start: () => relay.start(),
    async stop() {
      await relay.stop();
      await pool.end();
    },
  };
}

/** W3: relay and worker in one process, as a small service would run them. */
async function relayAndWorker(url: string, options: ConsumerOptions): Promise<Consumer> {
  const relay = await relayOnly(url);
  const consumer = await worker(true)(url, options);
  return {
    async start() {
      await consumer.start();
      await relay.start();
    },
    async stop() {
      await relay.stop();
      await consumer.stop();
    },
  };
}

const queueBusySql = `SELECT EXISTS (SELECT 1 FROM ${SCHEMA}.queue_messages WHERE queue = '${QUEUE}') AS busy`;

/** Every sagabox variant, by workload. */
export function sagaboxVariants(): VariantSet {
  return {
    w1: [
      { id: 'sagabox', label: 'sagabox publish', kind: 'sagabox', install, openPublisher: publisher(true) },
      {
        id: 'sagabox_nonotify',
        label: 'sagabox publish (notify: false)',
        kind: 'sagabox',
        install,
        openPublisher: publisher(false),
      },
      {
        id: 'sagabox_statement',
        label: "sagabox's outbox INSERT alone, prepared, no NOTIFY (diagnostic: without publish())",
        kind: 'sagabox',
        install,
        openPublisher: outboxStatementPublisher,
      },
      {
        id: 'sagabox_direct',
        label: 'sagabox publish (direct route to the queue)',
        kind: 'sagabox',
        install: installDirect,
        openPublisher: publisher(true),
        notes: "sagabox direct route: addDirectRoute({ topic: 'bench.*', queue: 'bench' }); publish writes the queue row (4 indexes) instead of the outbox row, no relay.",
      },
    ],
    w2: [
      {
        id: 'sagabox_inbox',
        label: 'sagabox worker (defaults, inbox on)',
        kind: 'sagabox',
        install,
        seed: seedQueue,
        openConsumer: worker(true),
        busySql: queueBusySql,
        handlesMessages: true,
      },
      {
        id: 'sagabox_inbox_batch100',
        label: 'sagabox worker (tuned: batchSize 100 fixed, inbox on)',
        kind: 'sagabox',
        install,
        seed: seedQueue,
        openConsumer: worker(true, 100),
        busySql: queueBusySql,
        handlesMessages: true,
      },
      {
        id: 'sagabox_inbox_batch10',
        label: 'sagabox worker (batchSize 10 fixed, inbox on: the claim size without adapting)',
        kind: 'sagabox',
        install,
        seed: seedQueue,
        openConsumer: worker(true, 10),
        busySql: queueBusySql,
        handlesMessages: true,
      },
      {
        id: 'sagabox_noinbox',
        label: 'sagabox worker (defaults, inbox off)',
        kind: 'sagabox',
        install,
        seed: seedQueue,
        openConsumer: worker(false),
        busySql: queueBusySql,
        handlesMessages: true,
      },
    ],
    w2r: [
      {
        id: 'sagabox_relay',
        label: 'sagabox relay (outbox -> queue)',
        kind: 'sagabox',
        install,
        seed: seedOutbox,
        openConsumer: (url) => relayOnly(url),
        busySql: `SELECT EXISTS (SELECT 1 FROM ${SCHEMA}.outbox) AS busy`,
        handlesMessages: false,
      },
    ],
    w3: [
      {
        id: 'sagabox',
        label: 'sagabox (outbox -> relay -> queue -> worker)',
        kind: 'sagabox',
        install,
        openPublisher: publisher(true),
        openConsumer: relayAndWorker,
      },
      {
        id: 'sagabox_direct',
        label: 'sagabox direct route (publish -> queue -> worker)',
        kind: 'sagabox',
        install: installDirect,
        openPublisher: publisher(true),
        openConsumer: worker(true),
        notes: 'sagabox W3: worker concurrency 10, other options at their defaults (inbox on); the two-hop variant adds one relay in the same process; the direct variant has no relay (publish NOTIFYs the queue).',
      },
    ],
  } satisfies VariantSet;
}

export type { Variant };
