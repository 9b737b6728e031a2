/**
 * What the RabbitMQ and NATS bridge workloads share: the messages, the outbox drain by
 * one or more relays, waiting, and the result with its ratios.
 */
import type pg from 'pg';
import { createRelay, publish, type Destination } from '@sagabox/core';
import type { BridgeResult } from '../report/results.js';

/** The client's confirmed-publish window, the size of one relay batch. */
export const WINDOW = 200;
/** Outbox rows carry this many distinct keys. */
const KEYS = 1_000;

/** A ~100-byte JSON payload. */
export const payload = (n: number) => ({ orderId: `order-${n}`, customer: 'c-1', amount: 42, currency: 'EUR', items: 3 });
/** Three headers a traced, correlated message carries. */
export const headers = (n: number) => ({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'correlation-id': `c-${n}`, 'causation-id': `x-${n}` });

const rate = (count: number, ms: number) => (count / ms) * 1000;

/** Polls `check` every 5 ms until it holds; throws after `timeoutMs`. */
export async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Fills the outbox with `count` messages of `topic` and settles the database as the W2
 * drain does after seeding (VACUUM ANALYZE, CHECKPOINT; none of it timed), then times
 * `relays` relays on their defaults draining it into their own `destination(relay)`s.
 * Each destination is given a broker connection opened before the timer starts, as the
 * client's is: a drain is timed from the relays' start to the last delivery.
 */
export async function timeRelayDrain(pool: pg.Pool, count: number, topic: string, relays: number, destination: (relay: number) => Destination): Promise<number> {
  for (let i = 0; i < count; i += 1_000) {
    await publish(pool, Array.from({ length: Math.min(1_000, count - i) }, (_, j) => ({ topic, key: `k-${(i + j) % KEYS}`, payload: payload(i + j), headers: headers(i + j) })));
  }
  // Without it the claim is planned on a table never analysed (autovacuum is off on
  // the bench's server), which a service's outbox under autovacuum never is, and the
  // fill's dirty pages are flushed by a checkpoint during the timed drain.
  await pool.query('VACUUM ANALYZE');
  await pool.query('CHECKPOINT');
  let delivered = 0;
  const started = Array.from({ length: relays }, (_, r) => {
    const relay = createRelay({ pool, name: `bench-${r}`, destinations: [destination(r)] });
    relay.events.on('delivered', (e) => (delivered += e.count));
    return relay;
  });
  const t0 = performance.now();
  await Promise.all(started.map((r) => r.start()));
  await until('the relays to drain the outbox', () => delivered >= count);
  const ms = performance.now() - t0;
  await Promise.all(started.map((r) => r.stop()));
  return ms;
}

/** Times `run` to completion, in milliseconds. */
export async function timed(run: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await run();
  return performance.now() - t0;
}

/** The four timings of one run as rates and ratios. */
export function bridgeResult(count: number, ms: { clientPublish: number; relay: number; twoRelays: number; plainConsumer: number; inboxConsumer: number }): Omit<BridgeResult, 'error'> {
  const clientPublish = rate(count, ms.clientPublish);
  const relay = rate(count, ms.relay);
  const twoRelays = rate(count, ms.twoRelays);
  const plain = rate(count, ms.plainConsumer);
  const inbox = rate(count, ms.inboxConsumer);
  return {
    messages: count,
    clientPublishPerSecond: clientPublish,
    relayPerSecond: relay,
    relayRatio: relay / clientPublish,
    twoRelaysPerSecond: twoRelays,
    twoRelaysRatio: twoRelays / clientPublish,
    plainConsumerPerSecond: plain,
    inboxConsumerPerSecond: inbox,
    consumerRatio: inbox / plain,
  };
}
