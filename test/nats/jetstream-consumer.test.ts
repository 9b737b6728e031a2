import { afterAll, describe, expect, it } from 'vitest';
import { headers } from '@nats-io/transport-node';
import { createRelay, Outcome } from '@sagabox/core';
import { createJetStreamConsumer, createJetStreamDestination, type JetStreamConsumer, type JetStreamMessage } from '@sagabox/nats';
import { publishCommitted, stuckInFailedTransaction } from '../support/in-transaction.js';
import { useDatabase } from '../support/test-pool.js';
import { useJetStream } from '../support/nats-server.js';
import { waitFor } from '../support/wait-for.js';
import { countingPool } from '../support/counting-client.js';

const { pool, count } = await useDatabase();
const p = pool(10);
await p.query('CREATE TABLE effects (message_id uuid NOT NULL, consumer text NOT NULL, topic text, payload jsonb, headers jsonb)');
const { server, nc, jsm, js } = await useJetStream();

const running: JetStreamConsumer[] = [];
afterAll(async () => {
  await Promise.all(running.map((c) => c.stop()));
});

const recordEffect = (consumer: string) => async (m: JetStreamMessage, { client }: { client: import('pg').PoolClient }) => {
  await client.query('INSERT INTO effects (message_id, consumer, topic, payload, headers) VALUES ($1, $2, $3, $4, $5)', [m.id, consumer, m.topic, JSON.stringify(m.payload), JSON.stringify(m.headers)]);
};

/** A consumer's connection, stream and durable, with three quick attempts and no jitter. */
const fastRetry = (stream: string, durable: string) => ({
  servers: server.url,
  stream,
  durable,
  pool: p,
  retry: { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 100, jitter: false },
});

describe('createJetStreamConsumer', () => {
  it('rejects bad options at once, listing every problem', () => {
    expect(() => createJetStreamConsumer({ servers: server.url, stream: 'a.b', durable: '', pool: p, handler: 'x', maxAckPending: 0 } as never)).toThrowError(
      expect.objectContaining({ code: 'INVALID_OPTIONS', problems: expect.arrayContaining([expect.stringMatching(/stream/), expect.stringMatching(/durable/), expect.stringMatching(/handler/), expect.stringMatching(/maxAckPending/)]) }),
    );
  });

  it('leaves storage maintenance to a worker unless asked for: no inbox partitions made at start or after handling', async () => {
    const partitions = `SELECT count(*) AS n FROM pg_inherits WHERE inhparent = 'sagabox.inbox'::regclass`;
    const before = await count(partitions);
    await jsm.streams.add({ name: 'QUIET', subjects: ['quiet.>'] });
    for (let n = 0; n < 5; n++) await js.publish('quiet.x', JSON.stringify({ n }));
    const consumer = createJetStreamConsumer({ servers: server.url, stream: 'QUIET', durable: 'quiet', pool: p, handler: recordEffect('quiet') });
    running.push(consumer);
    await consumer.start();
    await waitFor('all handled', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'quiet'`)) >= 5);
    await consumer.stop();
    expect(await count(partitions)).toBe(before);
  });

  it('outbox -> relay -> JetStream -> consumer: each effect once, in a transaction with the inbox row, headers carried', async () => {
    await jsm.streams.add({ name: 'SHOP', subjects: ['shop.>'] });
    const relay = createRelay({ pool: p, destinations: [createJetStreamDestination({ servers: server.url, routes: [{ topic: 'shop.#' }] })], pollIntervalMs: 50 });
    const consumer = createJetStreamConsumer({ servers: server.url, stream: 'SHOP', durable: 'billing', pool: p, handler: recordEffect('billing'), batchSize: 7, inboxMaintenanceIntervalMs: 600_000 });
    running.push(consumer);
    await consumer.start();
    await relay.start();
    const ids = await publishCommitted(p, Array.from({ length: 40 }, (_, n) => ({ topic: 'shop.order.placed', key: `k${n % 4}`, payload: { n }, headers: { 'correlation-id': `c${n}` } })));
    try {
      await waitFor('all handled', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'billing'`)) >= 40);
    } finally {
      await relay.stop();
    }
    const { rows } = await p.query<{ message_id: string; n: number; corr: string }>(`SELECT message_id, (payload->>'n')::int AS n, headers->>'correlation-id' AS corr FROM effects WHERE consumer = 'billing'`);
    expect(rows.map((r) => r.message_id).sort()).toEqual([...ids].sort());
    for (const r of rows) expect(r.corr).toBe(`c${r.n}`);
    expect(await count(`SELECT count(*) AS n FROM sagabox.inbox WHERE consumer = 'billing'`)).toBe(40);
    await waitFor('all acked', async () => (await jsm.consumers.info('SHOP', 'billing')).num_ack_pending === 0);
    // Asked to, like a worker, the consumer keeps the inbox's time partitions (made ahead, dropped past retention).
    await waitFor('inbox partitions made ahead', async () => (await count(`SELECT count(*) AS n FROM pg_inherits WHERE inhparent = 'sagabox.inbox'::regclass`)) > 1);
    // The durable was created with the consumer's settings.
    const info = await jsm.consumers.info('SHOP', 'billing');
    expect(info.config.ack_policy).toBe('explicit');
    expect(info.config.max_deliver).toBe(10);
    expect(info.config.max_ack_pending).toBe(1000);
    await consumer.stop();
  });

  it('a failing message is retried in its key\'s lane: the key\'s later messages wait for it, other keys flow, and the stream does not redeliver it meanwhile', async () => {
    await jsm.streams.add({ name: 'LANE', subjects: ['lane.>'] });
    const order: string[] = [];
    let failures = 0;
    const consumer = createJetStreamConsumer({
      servers: server.url,
      stream: 'LANE',
      durable: 'lane',
      pool: p,
      concurrency: 2,
      batchSize: 3,
      retry: { maxAttempts: 5, baseDelayMs: 200, maxDelayMs: 200, jitter: false },
      handler: async (m: JetStreamMessage<{ n: number }>, ctx) => {
        if (m.key === 'a' && m.payload.n === 0 && failures < 2) {
          failures++;
          throw new Error('not yet');
        }
        await recordEffect('lane')(m, ctx);
        order.push(`${m.key}:${m.payload.n}:${m.attempts}`);
      },
    });
    running.push(consumer);
    await consumer.start();
    const ids = await publishCommitted(p, [
      ...Array.from({ length: 4 }, (_, n) => ({ topic: 'lane.x', key: 'a', payload: { n } })),
      ...Array.from({ length: 4 }, (_, n) => ({ topic: 'lane.x', key: 'b', payload: { n } })),
    ]);
    const relay = createRelay({ pool: p, destinations: [createJetStreamDestination({ servers: server.url, routes: [{ topic: 'lane.#' }] })], pollIntervalMs: 50 });
    await relay.start();
    try {
      await waitFor('all eight handled', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'lane'`)) === 8, 20_000);
    } finally {
      await relay.stop();
    }
    expect(failures).toBe(2);
    // Key a in stream order, its first message on its third attempt, after two failures here.
    expect(order.filter((e) => e.startsWith('a:'))).toEqual(['a:0:3', 'a:1:1', 'a:2:1', 'a:3:1']);
    expect(order.filter((e) => e.startsWith('b:')).map((e) => e.split(':')[1])).toEqual(['0', '1', '2', '3']);
    // Key b did not wait for key a's retries.
    expect(order.indexOf('b:3:1')).toBeLessThan(order.indexOf('a:0:3'));
    expect((await p.query(`SELECT message_id FROM effects WHERE consumer = 'lane'`)).rows.map((r) => r.message_id).sort()).toEqual([...ids].sort());
    // Retried here, not redelivered: one delivery each.
    await waitFor('all acked', async () => (await jsm.consumers.info('LANE', 'lane')).num_ack_pending === 0);
    expect((await jsm.consumers.info('LANE', 'lane')).num_redelivered).toBe(0);
    await consumer.stop();
  });

  it('a delayed message waits in the consumer, holding back its key\'s later messages (other keys flow); a keyless one goes back to the stream for its delay', async () => {
    await jsm.streams.add({ name: 'LATER', subjects: ['later.>'] });
    const handled: { name: string; at: number; attempts: number }[] = [];
    const consumer = createJetStreamConsumer({
      servers: server.url,
      stream: 'LATER',
      durable: 'later',
      pool: p,
      concurrency: 2,
      handler: async (m: JetStreamMessage<{ name: string }>, ctx) => {
        await recordEffect('later')(m, ctx);
        handled.push({ name: m.payload.name, at: Date.now(), attempts: m.attempts });
      },
    });
    running.push(consumer);
    await consumer.start();
    const publishedAt = Date.now();
    await publishCommitted(p, [
      { topic: 'later.x', key: 'd', payload: { name: 'd0' }, delayMs: 1_500 },
      { topic: 'later.x', key: 'd', payload: { name: 'd1' } },
      { topic: 'later.x', payload: { name: 'keyless' }, delayMs: 1_500 },
      { topic: 'later.x', key: 'f', payload: { name: 'f0' } },
    ]);
    const relay = createRelay({ pool: p, destinations: [createJetStreamDestination({ servers: server.url, routes: [{ topic: 'later.#' }] })], pollIntervalMs: 50 });
    await relay.start();
    try {
      await waitFor('all four handled', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'later'`)) === 4, 20_000);
    } finally {
      await relay.stop();
    }
    const at = (name: string) => handled.find((h) => h.name === name)!;
    // Key d in publish order: d1 waited behind d0's delay although it was delivered first.
    expect(handled.filter((h) => h.name.startsWith('d')).map((h) => h.name)).toEqual(['d0', 'd1']);
    expect(at('d0').at).toBeGreaterThanOrEqual(publishedAt + 1_500);
    expect(handled.findIndex((h) => h.name === 'f0')).toBeLessThan(handled.findIndex((h) => h.name === 'd0'));
    // d0 waited here on its first delivery; the keyless one was nak'ed for its delay.
    expect(at('d0').attempts).toBe(1);
    expect(at('keyless').at).toBeGreaterThanOrEqual(publishedAt + 1_500);
    expect(at('keyless').attempts).toBe(2);
    await waitFor('all acked', async () => (await jsm.consumers.info('LATER', 'later')).num_ack_pending === 0);
    await consumer.stop();
  });

  it('a handler that fails is retried with backoff; after maxAttempts the message is terminated (advisory) and republished to deadLetterSubject with the reason; others keep flowing', async () => {
    await jsm.streams.add({ name: 'PAY', subjects: ['pay.>'] });
    await jsm.streams.add({ name: 'DLQ', subjects: ['dlq.>'] });
    const advisories: string[] = [];
    const sub = nc.subscribe('$JS.EVENT.ADVISORY.CONSUMER.*.PAY.>', { callback: (_e, m) => { advisories.push(m.subject); } });
    const tries = new Map<number, number>();
    const consumer = createJetStreamConsumer({
      ...fastRetry('PAY', 'charger'),
      deadLetterSubject: 'dlq.pay',
      handler: async (m: JetStreamMessage<{ n: number; mode: string }>, ctx) => {
        tries.set(m.payload.n, (tries.get(m.payload.n) ?? 0) + 1);
        await recordEffect('charger')(m, ctx);
        if (m.payload.mode === 'always') throw new Error('card declined');
        if (m.payload.mode === 'once' && m.attempts === 1) throw new Error('flaky');
        if (m.payload.mode === 'refuse') return Outcome.deadLetter('unsupported currency');
      },
    });
    running.push(consumer);
    const dead: string[] = [];
    consumer.events.on('deadLettered', (e) => dead.push(`${e.reason}:${e.error}`));
    await consumer.start();
    for (const [n, mode] of [[1, 'ok'], [2, 'always'], [3, 'once'], [4, 'refuse'], [5, 'ok']] as const) {
      await js.publish('pay.x', JSON.stringify({ n, mode }), { msgID: `0190d6a4-7c3b-7000-8000-00000000010${n}` });
    }
    await waitFor('two dead letters', () => dead.length === 2, 20_000);
    await waitFor('three effects', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'charger'`)) === 3);
    expect(tries.get(2)).toBe(3);
    expect(tries.get(3)).toBe(2);
    expect(dead).toEqual(expect.arrayContaining(['failed:Error: card declined', 'non_retryable:unsupported currency']));
    // Only the effects of the successful handlings committed.
    const { rows } = await p.query<{ n: number }>(`SELECT (payload->>'n')::int AS n FROM effects WHERE consumer = 'charger' ORDER BY 1`);
    expect(rows.map((r) => r.n)).toEqual([1, 3, 5]);
    const copies = await Promise.all([1, 2].map((seq) => jsm.streams.getMessage('DLQ', { seq })));
    const byReason = new Map(copies.map((c) => [c!.header.get('Sagabox-Dead-Reason'), c!]));
    expect(byReason.get('failed')!.header.get('Sagabox-Dead-Error')).toBe('Error: card declined');
    expect(byReason.get('failed')!.header.get('Sagabox-Dead-Stream')).toBe('PAY');
    expect(byReason.get('failed')!.json()).toEqual({ n: 2, mode: 'always' });
    expect(byReason.get('non_retryable')!.header.get('Sagabox-Dead-Error')).toBe('unsupported currency');
    await waitFor('terminated advisories', () => advisories.filter((s) => s.includes('MSG_TERMINATED')).length === 2, 10_000);
    sub.unsubscribe();
    await consumer.stop();
  });

  it('a handler that catches a failed statement and returns is not acked: its transaction was rolled back at COMMIT; it alone is retried, and each effect happens once', async () => {
    await jsm.streams.add({ name: 'SWALLOW', subjects: ['swallow.>'] });
    const consumer = createJetStreamConsumer({
      ...fastRetry('SWALLOW', 'swallow'),
      handler: async (m: JetStreamMessage<{ n: number }>, ctx) => {
        await recordEffect('swallow')(m, ctx);
        // 1 in the middle of the batch (the next handler meets the aborted transaction), 4 last (COMMIT answers ROLLBACK).
        if ((m.payload.n === 1 || m.payload.n === 4) && m.attempts === 1) await ctx.client.query('SELECT 1/0').catch(() => undefined);
      },
    });
    running.push(consumer);
    const failed: number[] = [];
    consumer.events.on('failed', (e) => failed.push(Number(e.id.slice(-1))));
    for (let n = 0; n < 5; n++) await js.publish('swallow.x', JSON.stringify({ n }), { msgID: `0190d6a4-7c3b-7000-8000-00000000030${n}` });
    await consumer.start();
    await waitFor('five effects', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'swallow'`)) === 5, 15_000);
    await waitFor('all acked', async () => (await jsm.consumers.info('SWALLOW', 'swallow')).num_ack_pending === 0);
    const { rows } = await p.query<{ n: number }>(`SELECT (payload->>'n')::int AS n FROM effects WHERE consumer = 'swallow' ORDER BY 1`);
    expect(rows.map((r) => r.n)).toEqual([0, 1, 2, 3, 4]);
    expect(failed.sort()).toEqual([1, 4]);
    expect(await count(`SELECT count(*) AS n FROM sagabox.inbox WHERE consumer = 'swallow'`)).toBe(5);
    await consumer.stop();
  });

  it('a message alone in its batch whose handler swallowed a failed statement fails at once: its handler runs once per attempt', async () => {
    await jsm.streams.add({ name: 'SWALLOW1', subjects: ['swallow1.>'] });
    let calls = 0;
    const consumer = createJetStreamConsumer({
      ...fastRetry('SWALLOW1', 'swallow1'),
      handler: async (m: JetStreamMessage<{ n: number }>, ctx) => {
        calls++;
        await recordEffect('swallow1')(m, ctx);
        if (m.attempts === 1) await ctx.client.query('SELECT 1/0').catch(() => undefined);
      },
    });
    running.push(consumer);
    const failed: string[] = [];
    consumer.events.on('failed', (e) => failed.push(e.id));
    await js.publish('swallow1.x', JSON.stringify({ n: 7 }), { msgID: '0190d6a4-7c3b-7000-8000-000000000501' });
    await consumer.start();
    await waitFor('the effect', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'swallow1'`)) === 1, 15_000);
    await waitFor('acked', async () => (await jsm.consumers.info('SWALLOW1', 'swallow1')).num_ack_pending === 0);
    expect(failed).toEqual(['0190d6a4-7c3b-7000-8000-000000000501']);
    expect(calls).toBe(2);
    await consumer.stop();
  });

  it('a failed message costs the rest of its batch one more transaction, not one each', async () => {
    await jsm.streams.add({ name: 'REBATCH', subjects: ['rebatch.>'] });
    for (let n = 0; n < 12; n++) await js.publish('rebatch.x', JSON.stringify({ n }), { msgID: `0190d6a4-7c3b-7000-8000-0000000004${String(n).padStart(2, '0')}` });
    const last = new Map<number, string>();
    const consumer = createJetStreamConsumer({
      servers: server.url, stream: 'REBATCH', durable: 'rebatch', pool: p,
      retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 20, jitter: false },
      handler: async (m: JetStreamMessage<{ n: number }>, ctx) => {
        await recordEffect('rebatch')(m, ctx);
        const { rows } = await ctx.client.query<{ x: string }>('SELECT txid_current()::text AS x');
        last.set(m.payload.n, rows[0]!.x);
        if (m.payload.n === 5 && m.attempts === 1) throw new Error('first attempt of 5 fails');
      },
    });
    running.push(consumer);
    await consumer.start();
    await waitFor('all handled', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'rebatch'`)) === 12, 20_000);
    await consumer.stop();
    // Eleven messages committed with 5's failure in their batch: a transaction or two (the
    // first pull may split them), where each on its own would take eleven.
    last.delete(5);
    expect(new Set(last.values()).size).toBeLessThanOrEqual(3);
    expect(await count(`SELECT count(*) AS n FROM sagabox.inbox WHERE consumer = 'rebatch'`)).toBe(12);
  });

  it('messages from foreign producers: no or non-UUID Nats-Msg-Id, odd headers, a body that is not JSON -> handled once by a derived id, or dead-lettered as invalid; the consumer keeps serving', async () => {
    await jsm.streams.add({ name: 'EXT', subjects: ['ext.>'] });
    const seen: JetStreamMessage[] = [];
    const dead: string[] = [];
    const consumer = createJetStreamConsumer({
      servers: server.url,
      stream: 'EXT',
      durable: 'ext',
      pool: p,
      handler: async (m, ctx) => {
        seen.push(m);
        await recordEffect('ext')(m, ctx);
      },
    });
    running.push(consumer);
    consumer.events.on('deadLettered', (e) => dead.push(`${e.reason}:${e.error}`));
    await consumer.start();
    const h = headers();
    h.append('Sagabox-Created-At', 'yesterday');
    h.append('Sagabox-Priority', 'high');
    h.append('X-Team', 'a');
    h.append('X-Team', 'b');
    await js.publish('ext.a', JSON.stringify({ n: 1 }), { headers: h });
    await js.publish('ext.b', JSON.stringify({ n: 2 }), { msgID: 'order-77' });
    await js.publish('ext.b', JSON.stringify({ n: 2 }), { msgID: 'order-77' }); // dropped by the stream
    await js.publish('ext.c', 'not json {');
    await js.publish('ext.d', JSON.stringify({ n: 4 }));
    await waitFor('three handled', () => seen.length === 3);
    await waitFor('one dead', () => dead.length === 1);
    expect(dead[0]).toMatch(/^invalid:payload is not JSON/);
    const a = seen.find((m) => m.subject === 'ext.a')!;
    expect(a.topic).toBe('ext.a');
    expect(a.priority).toBe(0);
    expect(a.headers['X-Team']).toBe('a');
    expect(a.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(seen.map((m) => m.id)).size).toBe(3);
    await consumer.stop();
  });

  it('flow control: never more than maxAckPending messages delivered and not acked', async () => {
    await jsm.streams.add({ name: 'FLOW', subjects: ['flow.>'] });
    for (let n = 0; n < 60; n++) await js.publish('flow.x', JSON.stringify({ n }));
    let inFlight = 0;
    let most = 0;
    const consumer = createJetStreamConsumer({
      servers: server.url,
      stream: 'FLOW',
      durable: 'flow',
      pool: p,
      maxAckPending: 5,
      batchSize: 50,
      handler: async () => {
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((r) => setTimeout(r, 2));
      },
    });
    running.push(consumer);
    consumer.events.on('committed', (e) => (inFlight -= e.ids.length));
    await consumer.start();
    await waitFor('all acked', async () => {
      const i = await jsm.consumers.info('FLOW', 'flow');
      return i.num_pending === 0 && i.num_ack_pending === 0;
    });
    expect(most).toBeLessThanOrEqual(5);
    expect(most).toBeGreaterThan(0);
    await consumer.stop();
  });
  it('an inbox insert that fails (sent with BEGIN) commits nothing and leaves no connection in a transaction; the batch is handled once it succeeds', async () => {
    await p.query(`CREATE FUNCTION refuse_inbox() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'inbox refused'; END $$`);
    await p.query(`CREATE TRIGGER refuse_inbox BEFORE INSERT ON sagabox.inbox FOR EACH ROW WHEN (NEW.consumer = 'refused') EXECUTE FUNCTION refuse_inbox()`);
    try {
      await jsm.streams.add({ name: 'REFUSED', subjects: ['refused.>'] });
      for (let n = 0; n < 3; n++) await js.publish('refused.x', JSON.stringify({ n }));
      const consumer = createJetStreamConsumer({ servers: server.url, stream: 'REFUSED', durable: 'refused', pool: p, handler: recordEffect('refused') });
      running.push(consumer);
      const errors: unknown[] = [];
      consumer.events.on('error', (e) => errors.push(e.error));
      await consumer.start();
      await waitFor('the refused inbox insert reported', () => errors.some((e) => /inbox refused/.test(String(e))));
      expect(await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'refused'`)).toBe(0);
      expect(await count(`SELECT count(*) AS n FROM sagabox.inbox WHERE consumer = 'refused'`)).toBe(0);
      expect(await stuckInFailedTransaction(p)).toEqual([]);

      // The trigger lets inserts through from now on. Dropping it here would lock the inbox
      // and each of its partitions exclusively while the consumer retries: CI saw it deadlock.
      await p.query(`CREATE OR REPLACE FUNCTION refuse_inbox() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`);
      await waitFor('all handled', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'refused'`)) === 3, 30_000);
      expect(await count(`SELECT count(*) AS n FROM sagabox.inbox WHERE consumer = 'refused'`)).toBe(3);
      await consumer.stop();
    } finally {
      await p.query('DROP TRIGGER IF EXISTS refuse_inbox ON sagabox.inbox');
      await p.query('DROP FUNCTION refuse_inbox()');
    }
  });

  it('after a handler failed in a batch, the rest are taken again as a batch, every BEGIN sent together with its inbox record', async () => {
    await jsm.streams.add({ name: 'ALONE', subjects: ['alone.>'] });
    for (let n = 0; n < 3; n++) await js.publish('alone.x', JSON.stringify({ n }));
    const { pool: counted, clients } = countingPool(pool(3));
    const handled: number[] = [];
    const consumer = createJetStreamConsumer({
      servers: server.url, stream: 'ALONE', durable: 'alone', pool: counted,
      retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 20, jitter: false },
      handler: async (m: JetStreamMessage<{ n: number }>, ctx) => {
        if (m.payload.n === 1 && m.attempts === 1) throw new Error('first attempt of 1 fails');
        await recordEffect('alone')(m, ctx);
        handled.push(m.payload.n);
      },
    });
    running.push(consumer);
    await consumer.start();
    await waitFor('all handled', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'alone'`)) === 3, 20_000);
    await consumer.stop();
    const begins = clients.flatMap((c) => c.sent).filter((s) => s.text === 'BEGIN');
    // The batch, then the rest of it again, then the retry of 1.
    expect(begins.length).toBeGreaterThanOrEqual(3);
    for (const { sent } of clients) {
      for (const [i, s] of sent.entries()) {
        if (s.text !== 'BEGIN') continue;
        expect(s.pipelined).toBe(true);
        expect(sent[i + 1]?.pipelined).toBe(true);
      }
    }
  });
});
