import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { defineTopics, publish, SagaboxError, DEFAULT_MAX_PAYLOAD_BYTES, type StandardSchemaV1 } from '@sagabox/core';
import { addDirectRoute, removeDirectRoute } from '@sagabox/core/admin';
import { Kysely, PostgresDialect } from 'kysely';
import { useDatabase } from '../support/test-pool.js';
import { inTransaction, publishOverlapping } from '../support/in-transaction.js';

const { pool, count } = await useDatabase();
const p = pool();

const inTx = <T>(fn: (c: pg.PoolClient) => Promise<T>, commit = true): Promise<T> => inTransaction(p, fn, commit);

async function expectCode(promise: Promise<unknown>, code: string, text?: RegExp): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SagaboxError);
  expect((err as SagaboxError).code).toBe(code);
  if (text) expect((err as Error).message).toMatch(text);
}

describe('publish', () => {
  it('commits with the caller and leaves nothing behind on rollback', async () => {
    await inTx((c) => publish(c, { topic: 'orders.created', payload: { n: 1 } }), false);
    expect(await count('SELECT count(*) AS n FROM sagabox.outbox')).toBe(0);
    const r = await inTx((c) => publish(c, [{ topic: 'orders.created', payload: { n: 2 } }, { topic: 'orders.paid', key: 'o1', payload: { n: 3 } }]));
    expect(r.inserted).toHaveLength(2);
    expect(await count('SELECT count(*) AS n FROM sagabox.outbox WHERE id = ANY($1)', [r.ids])).toBe(2);
  });

  it('stores a repeated id again in the outbox (delivery removes the repeat) without touching the caller\'s transaction', async () => {
    const id = '0190a0a0-0000-7000-8000-000000000001';
    const first = await inTx((c) => publish(c, { id, topic: 't.a', payload: 1 }));
    const again = await inTx(async (c) => {
      const r = await publish(c, { id, topic: 't.a', payload: 2 });
      // The caller's transaction is still usable: no unique violation aborted it.
      await c.query('SELECT 1');
      return r;
    });
    expect(first.inserted).toEqual([id]);
    expect(again.inserted).toEqual([id]);
    expect(await count('SELECT count(*) AS n FROM sagabox.outbox WHERE id = $1', [id])).toBe(2);
  });

  it('works with a kysely transaction, into the outbox and on a direct route', async () => {
    const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: p }) });
    const viaKysely = (topic: string, id?: string) => db.transaction().execute((trx) => publish(trx, { id, topic, payload: { via: 'kysely' } }));
    const outboxed = await viaKysely('k.y');
    expect(outboxed.inserted).toEqual(outboxed.ids);
    expect(await count('SELECT count(*) AS n FROM sagabox.outbox WHERE id = $1', outboxed.ids)).toBe(1);
    await addDirectRoute(p, { topic: 'k.routed', queue: 'k-q' });
    // The first publish of a topic finds its route, the second goes straight to the queue's slot.
    for (let n = 0; n < 2; n++) {
      const routed = await viaKysely('k.routed');
      expect(routed.inserted).toEqual(routed.ids);
      expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'k-q' AND id = $1`, routed.ids)).toBe(1);
      expect((await viaKysely('k.routed', routed.ids[0])).inserted).toEqual([]);
    }
  });

  it('wakes relays on the outbox channel at commit, not on rollback, not with notify: false, and not for a message a direct route takes', async () => {
    await addDirectRoute(p, { topic: 'nfy.routed', queue: 'nfy-q' });
    await addDirectRoute(p, { topic: 'nfy.elsewhere', queue: 'nfy-other' });
    const listener = await p.connect();
    const heard: string[] = [];
    listener.on('notification', (n) => heard.push(`${n.channel}:${n.payload ?? ''}`));
    await listener.query('LISTEN "sagabox.outbox"; LISTEN "sagabox.queue"');
    // A round trip on the listener after the producer's statement delivers what it has.
    const heardAfter = async (fn: (c: pg.PoolClient) => Promise<unknown>, commit = true): Promise<string[]> => {
      heard.length = 0;
      await inTx(fn, commit);
      await new Promise((r) => setTimeout(r, 50));
      await listener.query('SELECT 1');
      return [...heard];
    };
    try {
      expect(await heardAfter((c) => publish(c, { topic: 'nfy.outbox', payload: 1 }, { notify: 'always' }))).toEqual(['sagabox.outbox:']);
      expect(await heardAfter((c) => publish(c, { topic: 'nfy.outbox', payload: 2 }, { notify: 'always' }), false)).toEqual([]);
      expect(await heardAfter((c) => publish(c, { topic: 'nfy.outbox', key: 'k', payload: 3 }, { notify: false }))).toEqual([]);
      expect(await heardAfter((c) => publish(c, { topic: 'nfy.routed', payload: 4 }, { notify: 'always' }))).toEqual(['sagabox.queue:nfy-q']);
      // Again, now that publish remembers the topic as routed, and back through the outbox once the route is gone.
      expect(await heardAfter((c) => publish(c, { topic: 'nfy.routed', payload: 5 }, { notify: 'always' }))).toEqual(['sagabox.queue:nfy-q']);
      await removeDirectRoute(p, { topic: 'nfy.routed', queue: 'nfy-q' });
      expect(await heardAfter((c) => publish(c, { topic: 'nfy.routed', payload: 6 }, { notify: 'always' }))).toEqual(['sagabox.outbox:']);
      expect(await count(`SELECT count(*) AS n FROM sagabox.outbox WHERE topic LIKE 'nfy.%'`)).toBe(3);
    } finally {
      listener.release(true);
    }
  });

  it('orders rows of one key by commit, even when transactions overlap', async () => {
    // T2 publishes K while T1, which published K first, is still open: T2 waits for T1
    // (advisory lock), so T2's seq is larger although it started its insert while T1 was open.
    expect(await publishOverlapping(p, 'k.order', 'K')).toBe(true);
    const { rows } = await p.query(`SELECT payload FROM sagabox.outbox WHERE key = 'K' ORDER BY seq`);
    expect(rows.map((r) => r.payload)).toEqual(['first', 'second']);
  });

  it('refuses bad input with typed errors before any SQL', async () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expectCode(publish(p, { topic: 'bad topic', payload: 1 }), 'INVALID_TOPIC');
    await expectCode(publish(p, { topic: '', payload: 1 }), 'INVALID_TOPIC');
    await expectCode(publish(p, { topic: 'a..b', payload: 1 }), 'INVALID_TOPIC');
    await expectCode(publish(p, { topic: 'x'.repeat(256), payload: 1 }), 'INVALID_TOPIC');
    await expectCode(publish(p, { topic: 't', payload: { n: 10n } }), 'INVALID_PAYLOAD', /bigint/);
    await expectCode(publish(p, { topic: 't', payload: cyclic }), 'INVALID_PAYLOAD', /circular/i);
    await expectCode(publish(p, { topic: 't', payload: () => 1 }), 'INVALID_PAYLOAD', /function/);
    await expectCode(publish(p, { topic: 't', payload: { f() {} } }), 'INVALID_PAYLOAD', /function/);
    await expectCode(publish(p, { topic: 't', payload: undefined }), 'INVALID_PAYLOAD', /undefined/);
    await expectCode(publish(p, { topic: 't', payload: { n: Number.NaN } }), 'INVALID_PAYLOAD');
    await expectCode(publish(p, { topic: 't', payload: 'nul\u0000' }), 'INVALID_PAYLOAD', /NUL/);
    await expectCode(publish(p, { topic: 't', payload: 'x'.repeat(DEFAULT_MAX_PAYLOAD_BYTES) }), 'PAYLOAD_TOO_LARGE');
    await expectCode(publish(p, { topic: 't', payload: 'x'.repeat(200) }, { maxPayloadBytes: 100 }), 'PAYLOAD_TOO_LARGE', /100 bytes/);
    await expectCode(publish(p, { topic: 't', payload: 1, headers: { n: 1 as unknown as string } }), 'INVALID_HEADERS');
    await expectCode(publish(p, { topic: 't', payload: 1, headers: [] as unknown as Record<string, string> }), 'INVALID_HEADERS');
    await expectCode(publish(p, { topic: 't', payload: 1, id: 'not-a-uuid' }), 'INVALID_MESSAGE');
    await expectCode(publish(p, { topic: 't', payload: 1, delayMs: -5 }), 'INVALID_MESSAGE');
    await expectCode(publish(p, { topic: 't', payload: 1 }, { schema: 'bad-schema"; drop' }), 'INVALID_SCHEMA_NAME');
    await expectCode(publish({} as never, { topic: 't', payload: 1 }), 'UNSUPPORTED_EXECUTOR');
    // A batch with one bad message inserts nothing.
    await expectCode(publish(p, [{ topic: 'ok.one', payload: 1 }, { topic: 'bad topic', payload: 2 }]), 'INVALID_TOPIC');
    expect(await count(`SELECT count(*) AS n FROM sagabox.outbox WHERE topic = 'ok.one'`)).toBe(0);
  });

  it('validates payloads against topic contracts (Standard Schema)', async () => {
    const positive: StandardSchemaV1<unknown, { n: number }> = {
      '~standard': {
        version: 1,
        vendor: 'test',
        validate: (v: unknown) =>
          typeof (v as { n?: unknown })?.n === 'number' && (v as { n: number }).n > 0
            ? { value: v as { n: number } }
            : { issues: [{ message: 'n must be a positive number', path: ['n'] }] },
      },
    };
    const topics = defineTopics({ 'typed.ok': positive, 'typed.free': null });
    await publish(p, topics.message('typed.ok', { n: 1 }), { topics });
    await publish(p, topics.message('typed.free', { anything: true } as never), { topics });
    await expectCode(publish(p, { topic: 'typed.ok', payload: { n: -1 } }, { topics }), 'VALIDATION_FAILED', /n: n must be a positive/);
    await expectCode(publish(p, { topic: 'typed.unknown', payload: {} }, { topics }), 'INVALID_TOPIC', /not declared/);
  });
  // The outbox has no CHECK (see migrations/0001_baseline.sql): the relay dead-letters such rows instead,
  // see "dead-letters outbox rows written by hand" in relay-and-worker.test.ts.
  it('keeps the queue row invariants in the database, for writes that bypass sagabox', async () => {
    const bad: [string, unknown[]][] = [
      [`INSERT INTO sagabox.queue_messages (queue, id, topic, payload, created_at, lease_token) VALUES ('q', gen_random_uuid(), 't', '1', now(), gen_random_uuid())`, []],
      [`INSERT INTO sagabox.queue_messages (queue, id, topic, payload, created_at, attempts) VALUES ('q', gen_random_uuid(), 't', '1', now(), -1)`, []],
    ];
    for (const [sql, values] of bad) {
      const err = await p.query(sql, values).catch((e: { code?: string; constraint?: string }) => e);
      expect(err).toMatchObject({ code: '23514' });
      expect((err as { constraint: string }).constraint).toBe('queue_messages_row_check');
    }
  });
});
