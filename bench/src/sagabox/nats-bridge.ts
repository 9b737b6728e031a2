/**
 * The NATS JetStream bridge beside the NATS client's own JetStream calls, same run, same
 * server, same messages (a ~100-byte JSON payload, three headers, Nats-Msg-Id):
 *
 * - out: one relay, then two, on their defaults (batches of 200, two in flight),
 *   draining an outbox of `count` messages (1,000 keys) into a file-backed stream vs
 *   @nats-io/jetstream publishing the same number, PubAck awaited, 200 in flight per
 *   window (what one relay batch holds);
 * - in: createJetStreamConsumer on its defaults (batch transactions with the inbox, two
 *   at once, ack after commit, empty handler) vs a client consumer that acks every
 *   message, each on a durable consumer with the bridge's default max_ack_pending over
 *   `count` stored messages.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { migrateUp } from '@sagabox/core/migrate';
import { createJetStreamConsumer, createJetStreamDestination, DEFAULT_MAX_ACK_PENDING } from '@sagabox/nats';
import { AckPolicy, jetstream, jetstreamManager, type ConsumerMessages } from '@nats-io/jetstream';
import { connect, headers as natsHeaders } from '@nats-io/transport-node';
import type { BridgeResult } from '../report/results.js';
import { bridgeResult, headers, payload, timed, timeRelayDrain, until, WINDOW } from './bridge-helpers.js';

/** Runs the four measurements; the stream it makes is deleted at the end. */
export async function runNatsBridge(url: string, natsUrl: string, count: number): Promise<Omit<BridgeResult, 'error'>> {
  await migrateUp({ connectionString: url });
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  pool.on('error', () => {});
  const nc = await connect({ servers: natsUrl });
  // The relays' and the bridge consumer's own connections, open before any timer starts,
  // as the client's is: connecting is not part of a drain.
  const own = await Promise.all([0, 1, 2].map(() => connect({ servers: natsUrl })));
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const run = randomUUID().slice(0, 8);
  const stream = `SAGABOX_BENCH_${run}`;
  const root = `sagabox-bench-${run}`;
  try {
    await jsm.streams.add({ name: stream, subjects: [`${root}.>`], storage: 'file' as never });

    // Out, the client's own limit: PubAck awaited, a window of 200 in flight.
    const clientPublish = await timed(async () => {
      for (let i = 0; i < count; i += WINDOW) {
        const sends: Promise<unknown>[] = [];
        for (let n = i; n < Math.min(count, i + WINDOW); n++) {
          const h = natsHeaders();
          for (const [k, v] of Object.entries(headers(n))) h.set(k, v);
          sends.push(js.publish(`${root}.client.placed`, JSON.stringify(payload(n)), { msgID: randomUUID(), headers: h }));
        }
        await Promise.all(sends);
      }
    });

    // Out, the relay, then two relays, as a relay is scaled.
    const destination = (relay: number) => createJetStreamDestination({ connection: own[relay]!, subjectPrefix: `${root}.`, routes: [{ topic: 'relay.#' }] });
    const relay = await timeRelayDrain(pool, count, 'relay.placed', 1, destination);
    // The two relays' copies go to another subject, which no consumer below reads.
    const twoRelays = await timeRelayDrain(pool, count, 'relay.again', 2, destination);

    // In, the plain client: ack each message.
    await jsm.consumers.add(stream, { durable_name: 'plain', ack_policy: AckPolicy.Explicit, max_ack_pending: DEFAULT_MAX_ACK_PENDING, filter_subject: `${root}.client.>` });
    let acked = 0;
    let plain: ConsumerMessages | undefined;
    const plainConsumer = await timed(async () => {
      plain = await (await js.consumers.get(stream, 'plain')).consume({
        max_messages: DEFAULT_MAX_ACK_PENDING,
        callback: (m) => {
          m.ack();
          acked++;
        },
      });
      await until('the plain consumer to drain', () => acked >= count);
    });
    await plain?.close();

    // In, the bridge: the inbox rows and the (empty) handler in a transaction per batch, ack after commit.
    await jsm.consumers.add(stream, { durable_name: 'inbox', ack_policy: AckPolicy.Explicit, max_ack_pending: DEFAULT_MAX_ACK_PENDING, filter_subject: `${root}.relay.placed` });
    let handled = 0;
    const consumer = createJetStreamConsumer({ connection: own[2]!, stream, durable: 'inbox', pool, handler: () => {} });
    consumer.events.on('committed', (e) => (handled += e.ids.length));
    const inboxConsumer = await timed(async () => {
      await consumer.start();
      await until('the inbox consumer to drain', () => handled >= count);
    });
    await consumer.stop();

    return bridgeResult(count, { clientPublish, relay, twoRelays, plainConsumer, inboxConsumer });
  } finally {
    await jsm.streams.delete(stream).catch(() => {});
    await Promise.all([nc, ...own].map((c) => c.close()));
    await pool.end();
  }
}
