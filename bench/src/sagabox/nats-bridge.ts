/**
 * The NATS JetStream bridge beside the NATS client's own JetStream calls, same run, same
 * server, same messages (a ~100-byte JSON payload, three headers, Nats-Msg-Id):
 *
 * - out: one relay, then two, draining an outbox of `count` messages (1,000 keys) into
 *   a file-backed stream (PubAcks awaited per batch of 200) vs @nats-io/jetstream
 *   publishing the same number, PubAck awaited, 200 in flight per window (what one
 *   relay's batch allows);
 * - in: createJetStreamConsumer (batch transaction of 200 with the inbox, two lanes,
 *   ack after commit, empty handler) vs a client consumer that acks every message, each on a durable
 *   consumer with max_ack_pending 1,000 over `count` stored messages.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { createRelay, publish } from '@sagabox/core';
import { migrateUp } from '@sagabox/core/migrate';
import { createJetStreamConsumer, createJetStreamDestination } from '@sagabox/nats';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers as natsHeaders } from '@nats-io/transport-node';
import type { BridgeResult } from '../report/results.js';

const WINDOW = 200;
const MAX_ACK_PENDING = 1_000;
// A transaction's fixed cost (BEGIN, the inbox insert, COMMIT's fsync) is spread over
// a batch; two lanes overlap one batch's commit with the next one's handling.
const CONSUMER_BATCH = 200;
const CONSUMER_LANES = 2;
const payload = (n: number) => ({ orderId: `order-${n}`, customer: 'c-1', amount: 42, currency: 'EUR', items: 3 });
const headers = (n: number) => ({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'correlation-id': `c-${n}`, 'causation-id': `x-${n}` });

const rate = (count: number, ms: number) => (count / ms) * 1000;

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Runs the four measurements; the stream it makes is deleted at the end. */
export async function runNatsBridge(url: string, natsUrl: string, count: number): Promise<Omit<BridgeResult, 'error'>> {
  await migrateUp({ connectionString: url });
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  pool.on('error', () => {});
  const nc = await connect({ servers: natsUrl });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const run = randomUUID().slice(0, 8);
  const stream = `SAGABOX_BENCH_${run}`;
  const root = `sagabox-bench-${run}`;
  try {
    await jsm.streams.add({ name: stream, subjects: [`${root}.>`], storage: 'file' as never });

    // Out, the client's own limit: PubAck awaited, a window of 200 in flight.
    const began0 = performance.now();
    for (let i = 0; i < count; i += WINDOW) {
      const sends: Promise<unknown>[] = [];
      for (let n = i; n < Math.min(count, i + WINDOW); n++) {
        const h = natsHeaders();
        for (const [k, v] of Object.entries(headers(n))) h.set(k, v);
        sends.push(js.publish(`${root}.client.placed`, JSON.stringify(payload(n)), { msgID: randomUUID(), headers: h }));
      }
      await Promise.all(sends);
    }
    const clientPublishMs = performance.now() - began0;

    // Out, the relay: the outbox is filled first (not timed), then drained by one
    // relay, then (filled again) by two, as a relay is scaled.
    const drain = async (relays: number, topic: string): Promise<number> => {
      for (let i = 0; i < count; i += 1_000) {
        await publish(pool, Array.from({ length: Math.min(1_000, count - i) }, (_, j) => ({ topic, key: `k-${(i + j) % 1_000}`, payload: payload(i + j), headers: headers(i + j) })));
      }
      let delivered = 0;
      const started = Array.from({ length: relays }, (_, r) => {
        const relay = createRelay({ pool, name: `bench-${r}`, batchSize: WINDOW, destinations: [createJetStreamDestination({ servers: natsUrl, subjectPrefix: `${root}.`, routes: [{ topic: 'relay.#' }] })] });
        relay.events.on('delivered', (e) => (delivered += e.count));
        return relay;
      });
      const t0 = performance.now();
      await Promise.all(started.map((r) => r.start()));
      await until('the relays to drain the outbox', () => delivered >= count, 600_000);
      const ms = performance.now() - t0;
      await Promise.all(started.map((r) => r.stop()));
      return ms;
    };
    const relayMs = await drain(1, 'relay.placed');
    // The two relays' copies go to another subject, which no consumer below reads.
    const twoRelaysMs = await drain(2, 'relay.again');

    // In, the plain client: ack each message.
    await jsm.consumers.add(stream, { durable_name: 'plain', ack_policy: AckPolicy.Explicit, max_ack_pending: MAX_ACK_PENDING, filter_subject: `${root}.client.>` });
    let acked = 0;
    const began1 = performance.now();
    const plain = await (await js.consumers.get(stream, 'plain')).consume({
      max_messages: MAX_ACK_PENDING,
      callback: (m) => {
        m.ack();
        acked++;
      },
    });
    await until('the plain consumer to drain', () => acked >= count, 600_000);
    const plainMs = performance.now() - began1;
    await plain.close();

    // In, the bridge: the inbox rows and the (empty) handler in a transaction per batch, ack after commit.
    await jsm.consumers.add(stream, { durable_name: 'inbox', ack_policy: AckPolicy.Explicit, max_ack_pending: MAX_ACK_PENDING, filter_subject: `${root}.relay.placed` });
    let handled = 0;
    const consumer = createJetStreamConsumer({ servers: natsUrl, stream, durable: 'inbox', pool, maxAckPending: MAX_ACK_PENDING, batchSize: CONSUMER_BATCH, concurrency: CONSUMER_LANES, handler: () => {} });
    consumer.events.on('committed', (e) => (handled += e.ids.length));
    const began2 = performance.now();
    await consumer.start();
    await until('the inbox consumer to drain', () => handled >= count, 600_000);
    const inboxMs = performance.now() - began2;
    await consumer.stop();

    const clientPublish = rate(count, clientPublishMs);
    const relayRate = rate(count, relayMs);
    const plainRate = rate(count, plainMs);
    const inboxRate = rate(count, inboxMs);
    return {
      messages: count,
      clientPublishPerSecond: clientPublish,
      relayPerSecond: relayRate,
      relayRatio: relayRate / clientPublish,
      twoRelaysPerSecond: rate(count, twoRelaysMs),
      twoRelaysRatio: rate(count, twoRelaysMs) / clientPublish,
      plainConsumerPerSecond: plainRate,
      inboxConsumerPerSecond: inboxRate,
      consumerRatio: inboxRate / plainRate,
    };
  } finally {
    await jsm.streams.delete(stream).catch(() => {});
    await nc.close();
    await pool.end();
  }
}
