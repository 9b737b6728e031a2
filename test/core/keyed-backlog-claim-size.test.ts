import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createRelay, createWorker } from '@sagabox/core';
import { useDatabase } from '../support/test-pool.js';
import { stopAfterEach } from '../support/stop-after-each.js';
import { waitFor } from '../support/wait-for.js';
import { keyOrderSink } from '../support/key-order-sink.js';
import { settledRowsRead } from '../support/rows-read.js';

const { db, pool } = await useDatabase();
const p = pool(3);
const { track } = stopAfterEach();

// A keyed backlog has one claimable message per key: its head. Ten slots claiming up to
// 400 each ask for more heads than 1,000 keys have, and a claim that cannot fill its LIMIT
// reads the whole backlog. After such a short claim the worker keeps its slots' batches
// to what the backlog can give, and its claims read near the front.
/**
 * Drains `messages` already queued over `keys` keys with a worker of 10 slots (defaults
 * otherwise), checking key order and that each is handled once; returns the rows of
 * queue_messages read per message.
 */
async function drainKeyed(queue: string, messages: number, keys: number): Promise<number> {
  await p.query(`INSERT INTO sagabox.queues (name) VALUES ($1)`, [queue]);
  await p.query(
    `INSERT INTO sagabox.queue_messages (queue, id, topic, key, payload, created_at)
     SELECT $3, gen_random_uuid(), 'job', 'k-' || (g % $2), jsonb_build_object('n', g), now()
     FROM generate_series(1, $1::int) g ORDER BY g`,
    [messages, keys, queue],
  );
  await p.query('ANALYZE sagabox.queue_messages');
  const before = await settledRowsRead(p);

  // Its own pool, ended after the drain: a backend flushes its statistics as it exits.
  const wp = new pg.Pool({ connectionString: db.url, max: 12 });
  wp.on('error', () => {});
  const last = new Map<string, number>();
  let handled = 0;
  let outOfOrder = 0;
  const worker = track(
    createWorker({
      pool: wp, queue, concurrency: 10,
      handler: async (m) => {
        const n = (m.payload as { n: number }).n;
        if ((last.get(m.key!) ?? 0) >= n) outOfOrder++;
        last.set(m.key!, n);
        handled++;
      },
    }),
  );
  try {
    await worker.start();
    await waitFor('the backlog to drain', () => handled >= messages, 120_000);
    await worker.stop();
  } finally {
    await wp.end();
  }

  expect(handled).toBe(messages);
  expect(outOfOrder).toBe(0);
  expect(await p.query(`SELECT 1 FROM sagabox.queue_messages WHERE queue = $1`, [queue]).then((r) => r.rowCount)).toBe(0);
  return ((await settledRowsRead(p)) - before) / messages;
}

// A keyed backlog has one claimable message per key: its head. Ten slots claiming up to
// 400 each ask for more heads than 1,000 keys have, and a claim that cannot fill its LIMIT
// reads the whole backlog. After such a short claim the worker keeps its slots' batches
// to what the backlog can give, and its claims read near the front.
describe('a keyed backlog with fewer keys than the slots could take', () => {
  it('is drained in key order, each message once, by claims that do not read the backlog over and over', async () => {
    // Without the cap, a short claim at every fill reads what is left of the backlog.
    expect(await drainKeyed('keyed', 20_000, 1_000)).toBeLessThan(30);
  });

  // Ten slots of the smallest batch (10) together ask for every one of 100 keys: a claim
  // for all slots finds only the keys of the batches just handled.
  it('is drained so also with fewer keys than the slots take at their smallest', async () => {
    // A claim for all slots that asks for more keys than are free, or claims ahead of
    // the batches that free them, reads the backlog to its end: several times this.
    expect(await drainKeyed('few-keys', 10_000, 100)).toBeLessThan(60);
  });
});

// The relay's claims take one row per key (the next leaves only after its head has), so
// a claim of 200 from a backlog of 100 keys comes back short having read the whole
// outbox. The next claims ask for what the keys can give and stop near the front.
describe('an outbox backlog of fewer keys than a relay batch', () => {
  it('is relayed in key order, each message once, by claims sized to the keys after the first short one', async () => {
    const MESSAGES = 2_000;
    const KEYS = 100;
    await p.query(
      `INSERT INTO sagabox.outbox (id, topic, key, payload)
       SELECT gen_random_uuid(), 'keyed.placed', 'k-' || (g % $2), jsonb_build_object('n', g)
       FROM generate_series(1, $1::int) g ORDER BY g`,
      [MESSAGES, KEYS],
    );
    const { sink, outOfOrder } = keyOrderSink();
    // Defaults: batches of 200, two in flight.
    const relay = track(createRelay({ pool: p, destinations: [sink], listen: false }));
    const batches: number[] = [];
    for (let n = await relay.runOnce(); n > 0; n = await relay.runOnce()) batches.push(n);

    expect(batches.reduce((a, b) => a + b, 0)).toBe(MESSAGES);
    expect(outOfOrder()).toBe(0);
    // 100 heads, then claims of a quarter of them (two batches in flight keep to half).
    expect(batches[0]).toBe(KEYS);
    expect(Math.max(...batches.slice(1))).toBe(KEYS / 4);
    expect(batches.length).toBeLessThanOrEqual(1 + (MESSAGES - KEYS) / (KEYS / 4) + 4);
  });
});
