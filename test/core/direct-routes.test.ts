import { afterEach, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { addDirectRoute, listDirectRoutes, removeDirectRoute } from '@sagabox/core/admin';
import fc from 'fast-check';
import { idSlot, publishSql } from '../../packages/core/src/publish/publish-sql.js';
import { topicMatcher, topicPatternRegex } from '../../packages/core/src/publish/topic-name.js';
import {
  createWorker,
  publish,
  SagaboxError,
  type Worker,
} from '@sagabox/core';
import { useDatabase } from '../support/test-pool.js';
import { inTransaction, publishOverlapping } from '../support/in-transaction.js';
import { waitFor } from '../support/wait-for.js';

const { pool, count } = await useDatabase();
const p = pool();
const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});

const inTx = <T>(fn: (c: pg.PoolClient) => Promise<T>, commit = true): Promise<T> => inTransaction(p, fn, commit);

const queued = (queue: string, ids: string[]) =>
  count('SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = $1 AND id = ANY($2)', [queue, ids]);
const inOutbox = (ids: string[]) => count('SELECT count(*) AS n FROM sagabox.outbox WHERE id = ANY($1)', [ids]);

describe('direct routes', () => {
  it('match topics in Postgres exactly as the relay routes match them', async () => {
    const patterns = ['orders', 'orders.created', 'orders.*', 'orders.#', '#', '*', '*.created', '#.created', 'a.#.z', 'a.*.z', 'a-b:c.*'];
    const topics = ['orders', 'orders.created', 'orders.paid', 'orders.created.v2', 'ordersXcreated', 'x.created', 'a.z', 'a.b.z', 'a.b.c.z', 'a-b:c.d', 'a-b:c'];
    const { rows } = await p.query<{ pattern: string; topic: string; hit: boolean }>(
      `SELECT p.pattern, t.topic, ('.' || t.topic) ~ p.regex AS hit
       FROM unnest($1::text[], $2::text[]) AS p(pattern, regex), unnest($3::text[]) AS t(topic)`,
      [patterns, patterns.map(topicPatternRegex), topics],
    );
    expect(rows).toHaveLength(patterns.length * topics.length);
    for (const r of rows) expect({ ...r, hit: r.hit }).toEqual({ ...r, hit: topicMatcher(r.pattern)(r.topic) });
    expect(rows.filter((r) => r.hit).length).toBeGreaterThan(10);
  });

  it('writes routed topics into their queues at commit, skipping the outbox, and nothing on rollback', async () => {
    await addDirectRoute(p, { topic: 'shop.order.*', queue: 'd-billing' });
    await addDirectRoute(p, { topic: 'shop.order.created', queue: 'd-shipping' });
    await addDirectRoute(p, { topic: 'shop.order.created', queue: 'd-shipping' }); // no-op
    const rolledBack = await inTx((c) => publish(c, { topic: 'shop.order.created', payload: { n: 0 } }), false);
    expect(await queued('d-billing', rolledBack.ids)).toBe(0);

    const r = await inTx((c) =>
      publish(c, [
        { topic: 'shop.order.created', payload: { n: 1 }, key: 'o1', group: 'merchant-1', priority: 3 },
        { topic: 'shop.order.paid', payload: { n: 2 } },
        { topic: 'shop.refund.created', payload: { n: 3 } }, // no direct route: outbox
      ]),
    );
    const [created, paid, refund] = r.ids as [string, string, string];
    expect(r.inserted).toEqual(r.ids);
    expect(await queued('d-billing', [created, paid])).toBe(2);
    expect(await queued('d-shipping', [created])).toBe(1);
    expect(await queued('d-shipping', [paid])).toBe(0);
    expect(await inOutbox([created, paid])).toBe(0);
    expect(await inOutbox([refund])).toBe(1);
    const { rows } = await p.query(
      `SELECT key, group_key, priority, payload FROM sagabox.queue_messages WHERE queue = 'd-shipping' AND id = $1`,
      [created],
    );
    expect(rows[0]).toEqual({ key: 'o1', group_key: 'merchant-1', priority: 3, payload: { n: 1 } });
    expect(await listDirectRoutes(p)).toEqual([
      expect.objectContaining({ topic: 'shop.order.*', queue: 'd-billing' }),
      expect.objectContaining({ topic: 'shop.order.created', queue: 'd-shipping' }),
    ]);
  });

  it('is a no-op for an id still queued, and goes back to the outbox once the route is removed', async () => {
    await addDirectRoute(p, { topic: 'idem.*', queue: 'd-idem' });
    const id = '0190a0a0-0000-7000-8000-0000000000d1';
    const first = await inTx((c) => publish(c, { id, topic: 'idem.x', payload: 1 }));
    const again = await inTx((c) => publish(c, { id, topic: 'idem.x', payload: 2 }));
    expect(first.inserted).toEqual([id]);
    expect(again.inserted).toEqual([]);
    expect(await queued('d-idem', [id])).toBe(1);
    expect(await removeDirectRoute(p, { topic: 'idem.*', queue: 'd-idem' })).toBe(true);
    expect(await removeDirectRoute(p, { topic: 'idem.*', queue: 'd-idem' })).toBe(false);
    const later = await inTx((c) => publish(c, { topic: 'idem.x', payload: 3 }));
    expect(await inOutbox(later.ids)).toBe(1);
  });

  it('writes a routed message into the ring slot its id names, once per queue of the topic\'s routes', async () => {
    await addDirectRoute(p, { topic: 'slot.*', queue: 'd-slot-a' });
    await addDirectRoute(p, { topic: 'slot.#', queue: 'd-slot-b' });
    // The first publish learns the topic is routed; the rest take the slot-only statement.
    const results = [];
    for (let n = 0; n < 12; n++) results.push(await inTx((c) => publish(c, { topic: 'slot.x', payload: { n } })));
    const ids = results.flatMap((r) => r.ids);
    expect(results.flatMap((r) => r.inserted)).toEqual(ids);
    const { rows } = await p.query<{ queue: string; id: string; part: number; slot: number }>(
      'SELECT queue, id, part, sagabox.queue_part(id) AS slot FROM sagabox.queue_messages WHERE id = ANY($1) ORDER BY seq', [ids]);
    expect(rows.map((r) => r.id).sort()).toEqual([...ids, ...ids].sort());
    for (const r of rows) expect(r.part).toBe(r.slot);
    expect(await inOutbox(ids)).toBe(0);
    // A repeat is dropped in both queues.
    expect((await inTx((c) => publish(c, { id: ids[3]!, topic: 'slot.x', payload: 'again' }))).inserted).toEqual([]);
    expect(await queued('d-slot-a', ids)).toBe(12);
    expect(await queued('d-slot-b', ids)).toBe(12);
  });

  it('orders a key\'s queue rows by commit on the remembered path too, even when transactions overlap', async () => {
    await addDirectRoute(p, { topic: 'kord.*', queue: 'd-kord' });
    // The first publish learns the topic is routed; the two overlapping ones take the slot statement.
    await inTx((c) => publish(c, { topic: 'kord.x', key: 'K', payload: 'learn' }));
    expect(await publishOverlapping(p, 'kord.x', 'K')).toBe(true);
    const { rows } = await p.query(`SELECT payload FROM sagabox.queue_messages WHERE queue = 'd-kord' ORDER BY seq`);
    expect(rows.map((r) => r.payload)).toEqual(['learn', 'first', 'second']);
  });

  it('names the identity sequence of queue_messages as the migrations made it (the slot statement calls its nextval)', async () => {
    const { rows } = await p.query<{ seq: string }>(`SELECT pg_get_serial_sequence('sagabox.queue_messages', 'seq') AS seq`);
    expect(rows[0]!.seq).toBe('sagabox.queue_messages_seq_seq');
    const texts = publishSql('sagabox').routeQueued.flat();
    expect(texts).toHaveLength(32);
    expect(texts.every((text) => text.includes(`nextval('"sagabox".queue_messages_seq_seq'::regclass)`))).toBe(true);
  });

  it('computes in JavaScript the same ring slot as queue_part in SQL, for any UUID', async () => {
    const uuids = fc.sample(fc.uuid(), 500);
    const { rows } = await p.query<{ slot: number }>('SELECT sagabox.queue_part(u) AS slot FROM unnest($1::uuid[]) WITH ORDINALITY AS t(u, n) ORDER BY n', [uuids]);
    expect(rows.map((r) => r.slot)).toEqual(uuids.map((u) => idSlot(u.toLowerCase())));
  });

  it('follows routes added and removed while a process keeps publishing the same topic', async () => {
    const before = await inTx((c) => publish(c, { topic: 'flip.t', payload: 1 }));
    expect(await inOutbox(before.ids)).toBe(1);
    await addDirectRoute(p, { topic: 'flip.t', queue: 'd-flip' });
    const routed = await inTx((c) => publish(c, { topic: 'flip.t', payload: 2 }));
    const routedAgain = await inTx((c) => publish(c, { topic: 'flip.t', payload: 3 }));
    expect(await queued('d-flip', [...routed.ids, ...routedAgain.ids])).toBe(2);
    // A route added inside the producer's own transaction counts for that transaction.
    const own = await inTx(async (c) => {
      await removeDirectRoute(c, { topic: 'flip.t', queue: 'd-flip' });
      return publish(c, { topic: 'flip.t', payload: 4 });
    });
    expect(await inOutbox(own.ids)).toBe(1);
    expect(await queued('d-flip', own.ids)).toBe(0);
  });

  it('wakes an idle worker with the producer NOTIFY alone (no relay, no polling)', async () => {
    await addDirectRoute(p, { topic: 'wake.#', queue: 'd-wake' });
    const seen: { id: string; at: number }[] = [];
    const worker = createWorker({
      pool: p, queue: 'd-wake', pollIntervalMs: 3_600_000,
      handler: async (m) => void seen.push({ id: m.id, at: Date.now() }),
    });
    workers.push(worker);
    await worker.start();
    await new Promise((r) => setTimeout(r, 300)); // past the start-up drain and its lingering
    const sent: { id: string; at: number }[] = [];
    for (let n = 0; n < 5; n++) {
      const { ids } = await inTx((c) => publish(c, { topic: 'wake.up', payload: { n } }, { notify: 'always' }));
      sent.push({ id: ids[0]!, at: Date.now() });
      await waitFor(`message ${n}`, () => seen.length === n + 1, 5_000, 5);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen.map((s) => s.id)).toEqual(sent.map((s) => s.id));
    expect(Math.max(...seen.map((s, i) => s.at - sent[i]!.at))).toBeLessThan(2_000);
  });

  it("wakes an idle worker even when the process's outbox publish has just taken the NOTIFY window", async () => {
    await addDirectRoute(p, { topic: 'wake2.#', queue: 'd-wake2' });
    // Published before the worker starts: its start-up drain takes it, and publish now
    // knows the topic as routed.
    await inTx((c) => publish(c, { topic: 'wake2.up', payload: { n: 0 } }));
    const seen: number[] = [];
    const worker = createWorker({
      pool: p, queue: 'd-wake2', pollIntervalMs: 3_600_000,
      handler: async (m) => void seen.push((m.payload as { n: number }).n),
    });
    workers.push(worker);
    await worker.start();
    await waitFor('the first message', () => seen.length === 1, 5_000, 5);
    await new Promise((r) => setTimeout(r, 300)); // past its lingering: asleep until a NOTIFY
    const window = { notifyThrottleMs: 60_000 };
    await inTx(async (c) => {
      await publish(c, { topic: 'nowhere.x', payload: {} }, window); // the outbox's NOTIFY
      await publish(c, { topic: 'wake2.up', payload: { n: 1 } }, window); // the queue's own
    });
    await waitFor('the second message', () => seen.length === 2, 5_000, 5);
    expect(seen).toEqual([0, 1]);
  });

  it('keeps per-key commit order across concurrent producers, and each message is handled once', async () => {
    await addDirectRoute(p, { topic: 'ord.#', queue: 'd-ord' });
    await p.query('CREATE TABLE d_effects (seq bigserial, key text, n int, message_id uuid UNIQUE)');
    const worker = createWorker({
      pool: p, queue: 'd-ord', concurrency: 4, batchSize: 5,
      handler: async (m, { client }) => {
        const { n } = m.payload as { n: number };
        await client.query('INSERT INTO d_effects (key, n, message_id) VALUES ($1, $2, $3)', [m.key, n, m.id]);
      },
    });
    workers.push(worker);
    await worker.start();
    // Each producer takes the next number for a key inside its transaction (a row lock
    // on a counter), so commit order per key is the numbers' order.
    await p.query('CREATE TABLE d_counter (key text PRIMARY KEY, n int NOT NULL)');
    await p.query(`INSERT INTO d_counter SELECT 'k' || g, 0 FROM generate_series(0, 4) g`);
    const producer = async (i: number) => {
      for (let j = 0; j < 60; j++) {
        const key = `k${(i + j) % 5}`;
        await inTx(async (c) => {
          const { rows } = await c.query<{ n: number }>('UPDATE d_counter SET n = n + 1 WHERE key = $1 RETURNING n', [key]);
          await publish(c, { topic: 'ord.placed', key, payload: { n: rows[0]!.n } });
        });
      }
    };
    await Promise.all([0, 1, 2, 3].map(producer));
    await waitFor('240 effects', async () => (await count('SELECT count(*) AS n FROM d_effects')) === 240);
    const { rows } = await p.query<{ key: string; ns: number[] }>(
      `SELECT key, array_agg(n ORDER BY seq) AS ns FROM d_effects GROUP BY key ORDER BY key`,
    );
    for (const r of rows) expect(r.ns).toEqual(Array.from({ length: r.ns.length }, (_, i) => i + 1));
    expect(rows.reduce((a, r) => a + r.ns.length, 0)).toBe(240);
  });

  it('rejects bad patterns and queue names with typed errors', async () => {
    for (const topic of ['', 'a..b', 'a.*x', 'a b', 'x'.repeat(256), 42 as unknown as string]) {
      const err = await addDirectRoute(p, { topic, queue: 'q' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SagaboxError);
      expect((err as SagaboxError).code).toBe('INVALID_TOPIC');
    }
    const err = await addDirectRoute(p, { topic: 'a.b', queue: "q'; DROP TABLE x; --" }).catch((e: unknown) => e);
    expect((err as SagaboxError).code).toBe('INVALID_QUEUE_NAME');
    expect(await count(`SELECT count(*) AS n FROM sagabox.direct_routes WHERE pattern = 'a.b'`)).toBe(0);
  });
});
