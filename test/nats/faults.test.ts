import { describe, expect, it } from 'vitest';
import { nanos } from '@nats-io/transport-node';
import { createRelay, type RelayedMessage } from '@sagabox/core';
import { createJetStreamConsumer, createJetStreamDestination, NATS_HEADERS } from '@sagabox/nats';
import { publishCommitted } from '../support/in-transaction.js';
import { useDatabase } from '../support/test-pool.js';
import { useJetStream } from '../support/nats-server.js';
import { startChild } from '../support/child.js';
import { waitFor } from '../support/wait-for.js';

const { db, pool, count } = await useDatabase();
const p = pool(12);
await p.query('CREATE TABLE effects (order_no bigserial, message_id uuid NOT NULL, k text, n int)');
const { server, jsm } = await useJetStream({ connect: { maxReconnectAttempts: -1, reconnectTimeWait: 100 } });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every message of a stream in stream order: its Nats-Msg-Id, key and payload. */
async function streamContents(stream: string): Promise<{ id: string; key: string | null; n: number }[]> {
  const { state } = await jsm.streams.info(stream);
  const out: { id: string; key: string | null; n: number }[] = [];
  for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq });
    if (!m) continue;
    out.push({ id: m.header.get(NATS_HEADERS.messageId), key: m.header.get(NATS_HEADERS.key) || null, n: (m.json() as { n: number }).n });
  }
  return out;
}

describe('NATS JetStream bridge faults', () => {
  it('broker down while producers publish: the outbox holds everything, the relay backs off without spending attempts, and all arrive once when the broker returns', async () => {
    await jsm.streams.add({ name: 'DOWN', subjects: ['down.>'] });
    // maxAttempts 2: were an outage counted against messages, they would be dead letters by the end.
    const relay = createRelay({
      pool: p,
      destinations: [createJetStreamDestination({ servers: server.url, routes: [{ topic: 'down.#' }], pubAckTimeoutMs: 1_000 })],
      pollIntervalMs: 50,
      retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 20 },
    });
    let errors = 0;
    relay.events.on('error', () => errors++);
    await relay.start();
    const ids: string[] = [];
    try {
      ids.push(...(await publishCommitted(p, Array.from({ length: 20 }, (_, n) => ({ topic: 'down.before', payload: { n } })))));
      await waitFor('first messages stored', async () => (await jsm.streams.info('DOWN')).state.messages === 20);
      await server.stop();
      for (let t = 0; t < 10; t++) {
        ids.push(...(await publishCommitted(p, Array.from({ length: 10 }, (_, n) => ({ topic: 'down.during', key: `k${n}`, payload: { n: t } })))));
        await sleep(20);
      }
      await waitFor('the relay tried and backed off', () => errors >= 3, 30_000);
      expect(await count('SELECT count(*) AS n FROM sagabox.outbox')).toBe(100);
      expect(await count('SELECT count(*) AS n FROM sagabox.outbox WHERE attempts > 0')).toBe(0);
      expect(await count('SELECT count(*) AS n FROM sagabox.dead_letters')).toBe(0);
      await server.start();
      await waitFor('outbox drained after the broker returned', async () => (await count('SELECT count(*) AS n FROM sagabox.outbox')) === 0, 60_000);
    } finally {
      await relay.stop();
    }
    expect(await count('SELECT count(*) AS n FROM sagabox.dead_letters')).toBe(0);
    const stored = await streamContents('DOWN');
    expect(stored.map((s) => s.id).sort()).toEqual([...ids].sort());
  });

  it('relays SIGKILLed after the PubAck and before removing the outbox rows, again and again: the stream drops every re-send by Nats-Msg-Id, and each key arrives in commit order end to end', async () => {
    await jsm.streams.add({ name: 'KILL', subjects: ['kill.>'] });
    const committed: string[] = [];
    const next = new Map<string, number>();
    let producing = true;
    const producer = async (seed: number) => {
      for (let i = 0; producing; i++) {
        const batch = Array.from({ length: 1 + ((seed + i) % 3) }, (_, j) => {
          const key = `k${(seed * 7 + i + j) % 5}`;
          const n = (next.get(key) ?? 0) + 1;
          next.set(key, n);
          return { topic: 'kill.order', key, payload: { n } };
        });
        // One producer per key at a time keeps n in commit order per key.
        committed.push(...(await publishCommitted(p, batch)));
        await sleep(10);
      }
    };
    const producers = [producer(1)];
    let kills = 0;
    for (let round = 0; round < 4; round++) {
      const relay = startChild('nats-relay-child.mjs', { DATABASE_URL: db.url, NATS_URL: server.url, ROUTE_TOPIC: 'kill.#', BATCH_SIZE: '20', HANG_AFTER_DELIVER: '1' });
      await relay.waitForLine(/^acked \d+$/);
      await relay.kill('SIGKILL');
      kills++;
    }
    producing = false;
    await Promise.all(producers);
    expect(kills).toBe(4);
    const relay = createRelay({ pool: p, destinations: [createJetStreamDestination({ servers: server.url, routes: [{ topic: 'kill.#' }] })], pollIntervalMs: 50 });
    await relay.start();
    try {
      await waitFor('outbox drained', async () => (await count('SELECT count(*) AS n FROM sagabox.outbox')) === 0, 30_000);
    } finally {
      await relay.stop();
    }
    const stored = await streamContents('KILL');
    // Every committed message once: the re-sends of the killed relays' batches were dropped.
    expect(stored.length).toBe(committed.length);
    expect(stored.map((s) => s.id).sort()).toEqual([...committed].sort());
    const inStream = new Map<string, number[]>();
    for (const s of stored) inStream.set(s.key!, [...(inStream.get(s.key!) ?? []), s.n]);
    for (const [key, ns] of inStream) expect(ns, `key ${key} in the stream`).toEqual(Array.from({ length: next.get(key)! }, (_, i) => i + 1));

    // Through a consumer with two lanes into the database: each key still in order, each effect once.
    const consumer = createJetStreamConsumer({
      servers: server.url,
      stream: 'KILL',
      durable: 'kill-orders',
      pool: p,
      concurrency: 2,
      batchSize: 7,
      handler: async (m, { client }) => {
        await client.query('INSERT INTO effects (message_id, k, n) VALUES ($1, $2, $3)', [m.id, m.key, (m.payload as { n: number }).n]);
      },
    });
    await consumer.start();
    try {
      await waitFor('all handled', async () => (await count(`SELECT count(*) AS n FROM effects WHERE k LIKE 'k%'`)) >= committed.length);
    } finally {
      await consumer.stop();
    }
    const { rows } = await p.query<{ k: string; ns: number[] }>(`SELECT k, array_agg(n ORDER BY order_no) AS ns FROM effects WHERE k LIKE 'k%' GROUP BY k`);
    for (const r of rows) expect(r.ns, `key ${r.k} as handled`).toEqual(Array.from({ length: next.get(r.k)! }, (_, i) => i + 1));
    expect(await count(`SELECT count(DISTINCT message_id) AS n FROM effects WHERE k LIKE 'k%'`)).toBe(committed.length);
  }, 180_000);

  it('a re-send after the duplicate window is stored twice, and the consumer inbox gives it one effect', async () => {
    await jsm.streams.add({ name: 'SHORT', subjects: ['short.>'], duplicate_window: nanos(300) });
    const destination = createJetStreamDestination({ servers: server.url, routes: [{ topic: 'short.#' }] });
    await destination.start?.({ pool: p });
    const m: RelayedMessage = {
      seq: '1', id: '0190d6a4-7c3b-7000-8000-00000000c0de', topic: 'short.x', key: 'once', payload: '{"n":1}', headers: '{}',
      runAt: null, expiresAt: null, attempts: 0, createdAt: new Date(), priority: 0, group: null,
    };
    try {
      await waitFor('delivered', async () => destination.deliver([m], { client: undefined as never }).then(() => true, () => false));
      await sleep(600);
      await destination.deliver([m], { client: undefined as never });
    } finally {
      await destination.stop?.();
    }
    expect((await jsm.streams.info('SHORT')).state.messages).toBe(2);
    let duplicates = 0;
    const consumer = createJetStreamConsumer({
      servers: server.url,
      stream: 'SHORT',
      durable: 'short',
      pool: p,
      batchSize: 1,
      handler: async (msg, { client }) => {
        await client.query('INSERT INTO effects (message_id, k, n) VALUES ($1, $2, $3)', [msg.id, msg.key, 1]);
      },
    });
    consumer.events.on('committed', (e) => (duplicates += e.duplicates));
    await consumer.start();
    try {
      await waitFor('both deliveries settled', async () => {
        const i = await jsm.consumers.info('SHORT', 'short');
        return i.num_pending === 0 && i.num_ack_pending === 0;
      });
    } finally {
      await consumer.stop();
    }
    expect(await count(`SELECT count(*) AS n FROM effects WHERE message_id = $1`, [m.id])).toBe(1);
    expect(duplicates).toBe(1);
  });

  it('a consumer SIGKILLed after its transaction committed and before its acks: the redelivered messages have no second effect', async () => {
    await jsm.streams.add({ name: 'ACK', subjects: ['ack.>'] });
    const ids = await publishCommitted(p, Array.from({ length: 12 }, (_, n) => ({ topic: 'ack.x', payload: { n } })));
    const relay = createRelay({ pool: p, destinations: [createJetStreamDestination({ servers: server.url, routes: [{ topic: 'ack.#' }] })], pollIntervalMs: 50 });
    await relay.start();
    try {
      await waitFor('stored', async () => (await jsm.streams.info('ACK')).state.messages === 12);
    } finally {
      await relay.stop();
    }
    const child = startChild('nats-consumer-child.mjs', { DATABASE_URL: db.url, NATS_URL: server.url, STREAM: 'ACK', DURABLE: 'ack', KILL_ON_COMMIT: '1', BATCH_SIZE: '12' });
    await child.waitForLine(/^committed \d+$/).catch(() => {});
    await child.kill();
    expect(child.process.signalCode).toBe('SIGKILL');
    const before = await count(`SELECT count(*) AS n FROM effects WHERE message_id = ANY($1)`, [ids]);
    expect(before).toBeGreaterThan(0);
    let duplicates = 0;
    const consumer = createJetStreamConsumer({
      servers: server.url,
      stream: 'ACK',
      durable: 'ack',
      pool: p,
      ackWaitMs: 1_000,
      handler: async (msg, { client }) => {
        await client.query('INSERT INTO effects (message_id, k, n) VALUES ($1, $2, $3)', [msg.id, null, (msg.payload as { n: number }).n]);
      },
    });
    consumer.events.on('committed', (e) => (duplicates += e.duplicates));
    await consumer.start();
    try {
      await waitFor('all acked', async () => {
        const i = await jsm.consumers.info('ACK', 'ack');
        return i.num_pending === 0 && i.num_ack_pending === 0;
      }, 30_000);
    } finally {
      await consumer.stop();
    }
    expect(duplicates).toBe(before);
    expect(await count(`SELECT count(*) AS n FROM effects WHERE message_id = ANY($1)`, [ids])).toBe(12);
    expect(await count(`SELECT count(DISTINCT message_id) AS n FROM effects WHERE message_id = ANY($1)`, [ids])).toBe(12);
  });
});
