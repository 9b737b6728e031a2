import { afterEach, describe, expect, it } from 'vitest';
import { createRelay, isSagaboxError, publish, type Relay } from '@sagabox/core';
import { createRabbitMqConsumer, createRabbitMqDestination, type RabbitMqConsumer } from '@sagabox/rabbitmq';
import { useDatabase } from '../support/test-pool.js';
import { startChild } from '../support/child.js';
import { waitFor } from '../support/wait-for.js';
import { RABBITMQ_URL, useRabbitMq } from '../support/rabbitmq.js';
import { startTcpProxy } from '../support/tcp-proxy.js';

const { db, pool, count } = await useDatabase();
const p = pool(12);
await p.query('CREATE TABLE effects (message_id uuid NOT NULL, k text, seq int, at timestamptz NOT NULL DEFAULT clock_timestamp())');
const { rabbit, name, depth } = useRabbitMq();

const running: (Relay | RabbitMqConsumer)[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
  await p.query('TRUNCATE effects');
});
function track<T extends Relay | RabbitMqConsumer>(r: T): T {
  running.push(r);
  return r;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const recordEffect = async (m: { id: string; key: string | null; payload: unknown }, { client }: { client: import('pg').PoolClient }) => {
  await client.query('INSERT INTO effects (message_id, k, seq) VALUES ($1, $2, $3)', [m.id, m.key, (m.payload as { seq: number }).seq]);
};

/** Publishes `perKey` rounds of one message per key, each round its own transaction: seq 1..perKey per key in commit order. */
async function publishRounds(keys: number, perKey: number, topic: string): Promise<string[]> {
  const ids: string[] = [];
  for (let seq = 1; seq <= perKey; seq++) {
    const { ids: round } = await publish(p, Array.from({ length: keys }, (_, k) => ({ topic, key: `key-${k}`, payload: { seq } })));
    ids.push(...round);
  }
  return ids;
}

/** Every id has exactly one effect, and each key's effects ran in seq order 1..perKey. */
async function expectOnceInOrder(ids: string[], keys: number, perKey: number): Promise<void> {
  expect(await count('SELECT count(*) AS n FROM effects')).toBe(ids.length);
  expect(await count('SELECT count(DISTINCT message_id) AS n FROM effects WHERE message_id = ANY($1)', [ids])).toBe(ids.length);
  const { rows } = await p.query<{ k: string; seqs: number[] }>('SELECT k, array_agg(seq ORDER BY at) AS seqs FROM effects GROUP BY k');
  expect(rows).toHaveLength(keys);
  for (const r of rows) expect(r.seqs).toEqual(Array.from({ length: perKey }, (_, i) => i + 1));
}

describe('RabbitMQ bridge faults', () => {
  it('broker unreachable while producers publish: the outbox holds, the relay backs off, delivery resumes, nothing is lost or doubled', async () => {
    const exchange = name('cut');
    const queue = name('cut-q');
    const proxy = await startTcpProxy(5672);
    try {
      const consumer = track(createRabbitMqConsumer({ url: RABBITMQ_URL, pool: p, queue, bindings: [{ exchange, routingKey: 'cut.#' }], handler: recordEffect }));
      await consumer.start();
      const relay = track(createRelay({
        pool: p,
        pollIntervalMs: 50,
        retry: { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 400 },
        destinations: [createRabbitMqDestination({ url: `amqp://guest:guest@127.0.0.1:${proxy.port}`, routes: [{ topic: 'cut.#', exchange }], confirmTimeoutMs: 2_000 })],
      }));
      let unreachable = 0;
      relay.events.on('error', ({ error }) => {
        if (isSagaboxError(error, 'BROKER_UNREACHABLE')) unreachable++;
      });
      await relay.start();
      const committed: string[] = [];
      let producing = true;
      let seq = 0;
      const producer = (async () => {
        while (producing) {
          seq++;
          const { ids } = await publish(p, Array.from({ length: 3 }, (_, k) => ({ topic: 'cut.tick', key: `key-${k}`, payload: { seq } })));
          committed.push(...ids);
          await sleep(10);
        }
      })();
      await waitFor('deliveries before the cut', async () => (await count('SELECT count(*) AS n FROM effects')) >= 30);
      await proxy.cut();
      const cutAt = committed.length;
      await waitFor('producers kept committing while the broker is away', () => committed.length >= cutAt + 60, 30_000);
      await waitFor('the relay backing off on an unreachable broker', () => unreachable > 0, 30_000);
      const held = await count('SELECT count(*) AS n FROM sagabox.outbox');
      expect(held).toBeGreaterThan(30);
      // An outage spends no message's attempts.
      expect(await count('SELECT count(*) AS n FROM sagabox.outbox WHERE attempts > 0')).toBe(0);
      expect(await count(`SELECT count(*) AS n FROM sagabox.dead_letters`)).toBe(0);
      await proxy.restore();
      await sleep(300);
      producing = false;
      await producer;
      await waitFor('every committed message handled', async () => (await count('SELECT count(DISTINCT message_id) AS n FROM effects')) === committed.length, 60_000);
      await waitFor('the outbox empty', async () => (await count('SELECT count(*) AS n FROM sagabox.outbox')) === 0);
      await expectOnceInOrder(committed, 3, seq);
    } finally {
      await proxy.close();
    }
  });

  it('a relay SIGKILLed after the broker confirmed, before the outbox rows were removed: the resend reaches the consumer, whose inbox makes the effect once, in per-key order', async () => {
    const exchange = name('relaykill');
    const queue = name('relaykill-q');
    const consumer = track(createRabbitMqConsumer({ url: RABBITMQ_URL, pool: p, queue, bindings: [{ exchange, routingKey: 'rk.#' }], handler: recordEffect }));
    let handled = 0;
    consumer.events.on('handled', (e) => (handled += e.count));
    await consumer.start();
    const keys = 4;
    const perKey = 15;
    const ids = await publishRounds(keys, perKey, 'rk.event');
    const doomed = startChild('rabbitmq-relay-child.mjs', { DATABASE_URL: db.url, AMQP_URL: RABBITMQ_URL, EXCHANGE: exchange, TOPIC: 'rk.#', BATCH_SIZE: '20', HANG_AFTER_CONFIRM: '1' });
    const line = await doomed.waitForLine(/^confirmed \d+$/);
    const confirmed = Number(line.split(' ')[1]);
    expect(confirmed).toBeGreaterThan(0);
    // The confirmed batch reached the consumer, and its rows are still in the outbox.
    await waitFor('the confirmed batch handled', async () => (await count('SELECT count(*) AS n FROM effects')) === confirmed);
    expect(await count('SELECT count(*) AS n FROM sagabox.outbox')).toBe(ids.length);
    await doomed.kill('SIGKILL');
    const relay = startChild('rabbitmq-relay-child.mjs', { DATABASE_URL: db.url, AMQP_URL: RABBITMQ_URL, EXCHANGE: exchange, TOPIC: 'rk.#', BATCH_SIZE: '20' });
    await relay.waitForLine(/^ready$/);
    await waitFor('the outbox drained', async () => (await count('SELECT count(*) AS n FROM sagabox.outbox')) === 0, 30_000);
    await waitFor('every message handled', async () => (await count('SELECT count(*) AS n FROM effects')) >= ids.length);
    await waitFor('the queue empty', async () => (await depth(queue)) === 0);
    await relay.kill('SIGKILL');
    // The resent batch arrived a second time and changed nothing.
    expect(handled).toBe(ids.length + confirmed);
    await expectOnceInOrder(ids, keys, perKey);
  });

  it('a consumer SIGKILLed after its transaction committed, before the ack: the redelivered messages have no second effect', async () => {
    const queue = name('consumerkill-q');
    await rabbit.queueDeclare({ queue, durable: true });
    const pub = rabbit.createPublisher({ confirm: true });
    const ids: string[] = [];
    const keys = 3;
    const perKey = 20;
    for (let seq = 1; seq <= perKey; seq++) {
      for (let k = 0; k < keys; k++) {
        const id = crypto.randomUUID();
        ids.push(id);
        await pub.send({ routingKey: queue, messageId: id, durable: true, headers: { 'sagabox-key': `key-${k}`, 'sagabox-topic': 'ck.event' } }, { seq });
      }
    }
    await pub.close();
    const doomed = startChild('rabbitmq-consumer-child.mjs', { DATABASE_URL: db.url, AMQP_URL: RABBITMQ_URL, QUEUE: queue, BATCH_SIZE: '10', KILL_AFTER_COMMIT: '1' });
    await doomed.waitForLine(/^committed$/);
    await doomed.kill('SIGKILL');
    const committedBeforeKill = await count('SELECT count(*) AS n FROM effects');
    expect(committedBeforeKill).toBeGreaterThan(0);
    // Nothing was acked: the broker holds every message again.
    await waitFor('all messages back in the queue', async () => (await depth(queue)) === ids.length);
    const consumer = track(createRabbitMqConsumer({ url: RABBITMQ_URL, pool: p, queue, consumer: queue, handler: recordEffect }));
    let handled = 0;
    consumer.events.on('handled', (e) => (handled += e.count));
    await consumer.start();
    await waitFor('the queue drained', async () => handled === ids.length && (await depth(queue)) === 0, 30_000);
    await expectOnceInOrder(ids, keys, perKey);
  });
  it("a consumer's connection cut mid-stream: it reconnects, the messages it held come again, each has one effect in per-key order, and every one is acknowledged", async () => {
    const queue = name('consumercut-q');
    await rabbit.queueDeclare({ queue, durable: true });
    const keys = 5;
    const perKey = 100;
    const pub = rabbit.createPublisher({ confirm: true });
    const ids: string[] = [];
    for (let seq = 1; seq <= perKey; seq++) {
      const round = Array.from({ length: keys }, (_, k) => {
        const id = crypto.randomUUID();
        ids.push(id);
        return pub.send({ routingKey: queue, messageId: id, durable: true, headers: { 'sagabox-key': `key-${k}`, 'sagabox-topic': 'cc.event' } }, { seq });
      });
      await Promise.all(round);
    }
    await pub.close();
    const proxy = await startTcpProxy(5672);
    try {
      // Slow enough that the cut finds deliveries held, in batches and waiting.
      const consumer = track(createRabbitMqConsumer({
        url: `amqp://guest:guest@127.0.0.1:${proxy.port}`,
        pool: p,
        queue,
        prefetch: 100,
        batchSize: 20,
        handler: async (m, ctx) => {
          await recordEffect(m, ctx);
          await sleep(1);
        },
      }));
      const errors: unknown[] = [];
      consumer.events.on('error', ({ error }) => errors.push(error));
      await consumer.start();
      await waitFor('some messages handled before the cut', async () => (await count('SELECT count(*) AS n FROM effects')) >= 50);
      await proxy.cut();
      await waitFor('the consumer noticing the cut', () => errors.length > 0, 30_000);
      await sleep(300);
      await proxy.restore();
      await waitFor('every message handled', async () => (await count('SELECT count(DISTINCT message_id) AS n FROM effects')) === ids.length, 60_000);
      // Every delivery was acknowledged: none is left in the queue or held unacknowledged.
      await waitFor('the queue empty', async () => (await depth(queue)) === 0);
      await consumer.stop();
      expect(await depth(queue)).toBe(0);
      await expectOnceInOrder(ids, keys, perKey);
    } finally {
      await proxy.close();
    }
  });
});
