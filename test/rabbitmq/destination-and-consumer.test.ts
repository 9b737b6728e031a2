import { afterEach, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { createRelay, isSagaboxError, Outcome, type Relay, type RelayEvents } from '@sagabox/core';
import { createRabbitMqConsumer, createRabbitMqDestination, DEAD_LETTER_HEADERS, inboxId, type RabbitMqConsumer } from '@sagabox/rabbitmq';
import { publishCommitted, stuckInFailedTransaction } from '../support/in-transaction.js';
import { useDatabase } from '../support/test-pool.js';
import { waitFor } from '../support/wait-for.js';
import { RABBITMQ_URL, useRabbitMq } from '../support/rabbitmq.js';

const { pool, count } = await useDatabase();
const p = pool(20);
await p.query('CREATE TABLE effects (message_id uuid, consumer text, k text, seq int, headers jsonb, at timestamptz DEFAULT clock_timestamp())');
const { rabbit, name, drain, depth } = useRabbitMq();

const running: (Relay | RabbitMqConsumer)[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});
function track<T extends Relay | RabbitMqConsumer>(r: T): T {
  running.push(r);
  return r;
}

const recordEffect = (consumer: string) => async (m: { id: string; key: string | null; payload: unknown; headers: Record<string, string> }, { client }: { client: pg.PoolClient }) => {
  await client.query('INSERT INTO effects (message_id, consumer, k, seq, headers) VALUES ($1, $2, $3, $4, $5)', [
    m.id, consumer, m.key, (m.payload as { seq?: number })?.seq ?? null, JSON.stringify(m.headers),
  ]);
};

function deadLettered(relay: Relay): RelayEvents['deadLettered'][0][] {
  const seen: RelayEvents['deadLettered'][0][] = [];
  relay.events.on('deadLettered', (e) => seen.push(e));
  return seen;
}

describe('RabbitMQ destination and consumer', () => {
  it('carries messages outbox -> relay -> RabbitMQ -> consumer with id, headers and persistence; the outbox empties only once confirmed', async () => {
    const exchange = name('basic');
    const queue = name('basic-q');
    const consumer = track(createRabbitMqConsumer({
      url: RABBITMQ_URL, pool: p, queue, bindings: [{ exchange, routingKey: 'basic.#' }], handler: recordEffect('basic'),
    }));
    await consumer.start();
    const relay = track(createRelay({ pool: p, destinations: [createRabbitMqDestination({ url: RABBITMQ_URL, routes: [{ topic: 'basic.#', exchange }] })], pollIntervalMs: 50 }));
    await relay.start();
    const ids = await publishCommitted(p, [
      { topic: 'basic.created', key: 'k1', payload: { seq: 1 }, headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'correlation-id': 'c-1', 'causation-id': 'x-0', 'reply-to': 'basic.replies', 'saga-id': 's-1' } },
      { topic: 'basic.updated.twice', key: null, payload: { seq: 2 } },
    ]);
    await waitFor('both effects', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'basic'`)) === 2);
    const { rows } = await p.query<{ message_id: string; headers: Record<string, string>; k: string | null }>(`SELECT message_id, headers, k FROM effects WHERE consumer = 'basic' ORDER BY seq`);
    expect(rows.map((r) => r.message_id)).toEqual(ids);
    expect(rows[0]!.k).toBe('k1');
    expect(rows[0]!.headers).toMatchObject({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'correlation-id': 'c-1', 'causation-id': 'x-0', 'reply-to': 'basic.replies', 'saga-id': 's-1' });
    expect(await count('SELECT count(*) AS n FROM sagabox.outbox')).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM sagabox.inbox WHERE consumer = $1`, [queue])).toBe(2);

    // What reaches the broker: persistent, message_id = the sagabox id, JSON body.
    await consumer.stop();
    const [id] = await publishCommitted(p, { topic: 'basic.created', key: 'k2', payload: { seq: 3 } });
    await waitFor('the message in the queue', async () => (await depth(queue)) === 1);
    const [m] = await drain(queue);
    expect(m).toMatchObject({ messageId: id, durable: true, contentType: 'application/json', body: { seq: 3 }, exchange, routingKey: 'basic.created' });
    expect(m!.headers).toMatchObject({ 'sagabox-topic': 'basic.created', 'sagabox-key': 'k2' });
  });

  it('a message the broker returns (no queue bound) or cannot take (no such exchange, too large) is retried, then dead-lettered with the reason', async () => {
    const unbound = name('unbound');
    const missing = name('missing');
    const relay = track(createRelay({
      pool: p,
      destinations: [
        createRabbitMqDestination({ url: RABBITMQ_URL, name: 'declared', routes: [{ topic: 'bad.unbound', exchange: unbound }, { topic: 'bad.large', exchange: unbound }], maxMessageBytes: 1_000 }),
        createRabbitMqDestination({ url: RABBITMQ_URL, name: 'undeclared', declareExchanges: false, routes: [{ topic: 'bad.missing', exchange: missing }] }),
      ],
      retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 20 },
      pollIntervalMs: 50,
    }));
    const dead = deadLettered(relay);
    const retries: string[] = [];
    relay.events.on('retry', (e) => retries.push(e.id));
    await relay.start();
    const [unroutable, absent, large] = await publishCommitted(p, [
      { topic: 'bad.unbound', payload: {} },
      { topic: 'bad.missing', payload: {} },
      { topic: 'bad.large', payload: { blob: 'x'.repeat(2_000) } },
    ]);
    await waitFor('three dead letters', () => dead.length === 3);
    const byId = new Map(dead.map((d) => [d.id, d]));
    expect(byId.get(unroutable!)!.error).toMatch(/returned .*312 NO_ROUTE/);
    expect(byId.get(absent!)!.error).toMatch(/NOT_FOUND/);
    expect(byId.get(absent!)!.error).toContain(missing);
    expect(byId.get(large!)!.error).toMatch(/2\d{3} bytes, more than the 1000/);
    expect(new Set(retries)).toEqual(new Set([unroutable, absent, large]));
    expect(await count(`SELECT count(*) AS n FROM sagabox.dead_letters WHERE source = 'outbox' AND reason = 'failed' AND id = ANY($1)`, [[unroutable, absent, large]])).toBe(3);

    // The bridge keeps serving: a good message after the bad ones goes through.
    const good = name('good');
    await rabbit.exchangeDeclare({ exchange: unbound, type: 'topic', durable: true });
    await rabbit.queueDeclare({ queue: good, durable: true });
    await rabbit.queueBind({ queue: good, exchange: unbound, routingKey: 'bad.#' });
    await publishCommitted(p, { topic: 'bad.unbound', payload: { ok: true } });
    await waitFor('the good message in its queue', async () => (await depth(good)) === 1);
  });

  it('the destination refuses bad options before connecting', () => {
    let err: unknown;
    try {
      createRabbitMqDestination({ url: RABBITMQ_URL, routes: [{ topic: 'a..b', exchange: 'x' }], maxMessageBytes: -1 });
    } catch (e) {
      err = e;
    }
    expect(isSagaboxError(err, 'INVALID_OPTIONS')).toBe(true);
    expect((err as { problems: string[] }).problems).toHaveLength(2);
  });

  it('a failing handler is retried with backoff, holding back only its key; after maxAttempts it goes to the dead-letter queue with the reason', async () => {
    const queue = name('retry-q');
    let failuresLeft = 100;
    const consumer = track(createRabbitMqConsumer({
      url: RABBITMQ_URL, pool: p, queue, retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 50 },
      handler: async (m, ctx) => {
        const seq = (m.payload as { seq: number }).seq;
        if (m.key === 'poison') throw new Error(`cannot handle ${seq}`);
        if (m.key === 'flaky' && seq === 1 && failuresLeft-- > 98) return Outcome.retry({ reason: 'not yet' });
        if (m.key === 'refused') return Outcome.deadLetter('refused on purpose');
        await recordEffect('retry')(m, ctx);
      },
    }));
    const failed: number[] = [];
    consumer.events.on('failed', (e) => failed.push(e.attempts));
    await consumer.start();
    const pub = rabbit.createPublisher({ confirm: true });
    const publishTo = (id: string, key: string, seq: number) =>
      pub.send({ routingKey: queue, messageId: id, durable: true, headers: { 'sagabox-key': key, 'sagabox-topic': 'retry.test' } }, { seq });
    const poisonId = '0190a1a0-0000-7000-8000-000000000001';
    await publishTo(poisonId, 'poison', 1);
    await publishTo('0190a1a0-0000-7000-8000-000000000002', 'poison', 2);
    await publishTo('0190a1a0-0000-7000-8000-000000000003', 'flaky', 1);
    await publishTo('0190a1a0-0000-7000-8000-000000000004', 'flaky', 2);
    await publishTo('0190a1a0-0000-7000-8000-000000000005', 'other', 1);
    await publishTo('0190a1a0-0000-7000-8000-000000000006', 'refused', 1);
    await pub.close();
    // Both poison messages die (the second after the first: same key), the others are handled, flaky in order.
    await waitFor('three effects', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'retry'`)) === 3);
    await waitFor('three dead letters', async () => (await depth(`${queue}.dead`)) === 3);
    const { rows } = await p.query<{ k: string; seq: number }>(`SELECT k, seq FROM effects WHERE consumer = 'retry' ORDER BY at`);
    expect(rows.filter((r) => r.k === 'flaky').map((r) => r.seq)).toEqual([1, 2]);
    const dead = await drain(`${queue}.dead`);
    const first = dead.find((d) => d.messageId === poisonId)!;
    expect(first.headers).toMatchObject({ [DEAD_LETTER_HEADERS.reason]: 'failed', [DEAD_LETTER_HEADERS.attempts]: 3, [DEAD_LETTER_HEADERS.error]: 'Error: cannot handle 1', [DEAD_LETTER_HEADERS.queue]: queue });
    expect(first.body).toEqual({ seq: 1 });
    expect(dead.find((d) => d.headers?.['sagabox-key'] === 'refused')!.headers).toMatchObject({ [DEAD_LETTER_HEADERS.reason]: 'non_retryable', [DEAD_LETTER_HEADERS.error]: 'refused on purpose' });
    expect(dead.map((d) => (d.body as { seq: number }).seq).sort()).toEqual([1, 1, 2]);
    expect(failed.length).toBeGreaterThanOrEqual(2 + 2 + 2);
    expect(await depth(queue)).toBe(0);
  });

  it('a handler that catches a failed statement and returns is not acked: its transaction was rolled back; it alone is retried, and each effect happens once', async () => {
    const queue = name('swallow-q');
    const failed: number[] = [];
    const open = () => {
      const consumer = track(createRabbitMqConsumer({
        url: RABBITMQ_URL, pool: p, queue, retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 50 },
        handler: async (m, ctx) => {
          await recordEffect('swallow')(m, ctx);
          const seq = (m.payload as { seq: number }).seq;
          // In a batch, 1 leaves the transaction aborted for the handlers after it; 4 comes last, and COMMIT answers ROLLBACK.
          if ((seq === 1 || seq === 4) && m.attempts === 1) await ctx.client.query('SELECT 1/0').catch(() => undefined);
        },
      }));
      consumer.events.on('failed', (e) => failed.push(Number(e.id.slice(-1))));
      return consumer;
    };
    // The first consumer declares the queue; the five messages then wait for the second, which takes them in one batch.
    const declaring = open();
    await declaring.start();
    await declaring.stop();
    const pub = rabbit.createPublisher({ confirm: true });
    for (let seq = 0; seq < 5; seq++) {
      await pub.send({ routingKey: queue, messageId: `0190a1a0-0000-7000-8000-00000000010${seq}`, durable: true, headers: { 'sagabox-topic': 'swallow.test' } }, { seq });
    }
    await pub.close();
    await open().start();
    await waitFor('five effects', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'swallow'`)) === 5);
    await waitFor('all acked', async () => (await depth(queue)) === 0);
    const { rows } = await p.query<{ seq: number }>(`SELECT seq FROM effects WHERE consumer = 'swallow' ORDER BY seq`);
    expect(rows.map((r) => r.seq)).toEqual([0, 1, 2, 3, 4]);
    expect(failed.sort()).toEqual([1, 4]);
  });

  it('a handler that hangs times out: its signal is aborted, its connection closed, the message retried then dead-lettered, the others handled', async () => {
    const queue = name('hang-q');
    const aborted: unknown[] = [];
    const consumer = track(createRabbitMqConsumer({
      url: RABBITMQ_URL, pool: p, queue, handlerTimeoutMs: 300, retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 20 },
      handler: async (m, ctx) => {
        if (m.key === 'hang') {
          ctx.signal.addEventListener('abort', () => aborted.push(ctx.signal.reason));
          await ctx.client.query('SELECT pg_sleep(30)');
        }
        await recordEffect('hang')(m, ctx);
      },
    }));
    await consumer.start();
    const pub = rabbit.createPublisher({ confirm: true });
    await pub.send({ routingKey: queue, messageId: crypto.randomUUID(), headers: { 'sagabox-key': 'hang' } }, { seq: 1 });
    await pub.send({ routingKey: queue, messageId: crypto.randomUUID(), headers: { 'sagabox-key': 'fine' } }, { seq: 2 });
    await pub.close();
    await waitFor('the dead letter', async () => (await depth(`${queue}.dead`)) === 1);
    await waitFor('the other message handled', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'hang'`)) === 1);
    const [dead] = await drain(`${queue}.dead`);
    expect(dead!.headers).toMatchObject({ [DEAD_LETTER_HEADERS.reason]: 'failed', [DEAD_LETTER_HEADERS.attempts]: 2 });
    expect(String(dead!.headers![DEAD_LETTER_HEADERS.error])).toMatch(/HANDLER_TIMEOUT/);
    expect(aborted).toHaveLength(2);
    expect(isSagaboxError(aborted[0], 'HANDLER_TIMEOUT')).toBe(true);
    // The abandoned connections were closed, not returned to the pool.
    await waitFor('no client left checked out', () => p.totalCount - p.idleCount === 0);
  });

  it('deliveries from other producers that cannot be read are dead-lettered as invalid, and the consumer keeps serving', async () => {
    const queue = name('foreign-q');
    const consumer = track(createRabbitMqConsumer({ url: RABBITMQ_URL, pool: p, queue, handler: recordEffect('foreign') }));
    await consumer.start();
    const pub = rabbit.createPublisher({ confirm: true });
    await pub.send({ routingKey: queue }, { no: 'message id' });
    await pub.send({ routingKey: queue, messageId: 'not-json', contentType: 'application/json' }, Buffer.from('{oops'));
    await pub.send({ routingKey: queue, messageId: 'nested-header', headers: { nested: { a: 1 } } }, { seq: 1 });
    // A foreign id that is no UUID still deduplicates: it is hashed into one.
    await pub.send({ routingKey: queue, messageId: 'order-17', headers: { 'tenant': 't1', 'x-first-death-queue': 'elsewhere', attempt: 2 } }, { seq: 17 });
    await pub.send({ routingKey: queue, messageId: 'order-17' }, { seq: 17 });
    await pub.close();
    await waitFor('three invalid dead letters', async () => (await depth(`${queue}.dead`)) === 3);
    await waitFor('the readable message handled', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'foreign'`)) === 1);
    await waitFor('the queue drained', async () => (await depth(queue)) === 0);
    expect(await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'foreign'`)).toBe(1);
    const { rows } = await p.query<{ message_id: string; headers: Record<string, string> }>(`SELECT message_id, headers FROM effects WHERE consumer = 'foreign'`);
    expect(rows[0]).toEqual({ message_id: inboxId('order-17'), headers: { tenant: 't1', attempt: '2' } });
    const reasons = (await drain(`${queue}.dead`)).map((d) => [d.messageId ?? null, d.headers?.[DEAD_LETTER_HEADERS.reason], d.headers?.[DEAD_LETTER_HEADERS.error]]);
    expect(reasons).toEqual([
      [null, 'invalid', 'no message_id property'],
      ['not-json', 'invalid', 'body is not JSON (content type application/json)'],
      ['nested-header', 'invalid', 'header "nested" is not a string, number or boolean'],
    ]);
  });

  it('consumes a queue declared elsewhere, with its own arguments, as it is (declareQueue: false); a missing one is an error event, not a crash', async () => {
    const queue = name('theirs-q');
    await rabbit.queueDeclare({ queue, durable: true, arguments: { 'x-single-active-consumer': true, 'x-max-length': 1_000 } });
    const consumer = track(createRabbitMqConsumer({ url: RABBITMQ_URL, pool: p, queue, declareQueue: false, handler: recordEffect('theirs') }));
    await consumer.start();
    const pub = rabbit.createPublisher({ confirm: true });
    await pub.send({ routingKey: queue, messageId: crypto.randomUUID() }, { seq: 1 });
    await pub.close();
    await waitFor('the message handled', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'theirs'`)) === 1);

    const missing = track(createRabbitMqConsumer({ url: RABBITMQ_URL, pool: p, queue: name('missing-q'), declareQueue: false, handler: recordEffect('missing') }));
    const errors: unknown[] = [];
    missing.events.on('error', ({ error }) => errors.push(error));
    await missing.start();
    await waitFor('an error event', () => errors.length > 0);
    expect(String((errors[0] as Error).message)).toMatch(/NOT_FOUND/);
  });

  it('keeps per-key commit order end to end with three relays and one queue', async () => {
    const exchange = name('order');
    const queue = name('order-q');
    const consumer = track(createRabbitMqConsumer({ url: RABBITMQ_URL, pool: p, queue, bindings: [{ exchange, routingKey: 'order.#' }], handler: recordEffect('order') }));
    await consumer.start();
    for (let i = 0; i < 3; i++) {
      const relay = track(createRelay({ pool: p, name: `r${i}`, batchSize: 7, destinations: [createRabbitMqDestination({ url: RABBITMQ_URL, routes: [{ topic: 'order.#', exchange }] })], pollIntervalMs: 20 }));
      await relay.start();
    }
    const keys = 12;
    const perKey = 25;
    for (let seq = 1; seq <= perKey; seq++) {
      await publishCommitted(p, Array.from({ length: keys }, (_, k) => ({ topic: 'order.placed', key: `key-${k}`, payload: { seq } })));
    }
    await waitFor('every effect', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'order'`)) === keys * perKey, 60_000);
    const { rows } = await p.query<{ k: string; seqs: number[] }>(`SELECT k, array_agg(seq ORDER BY at) AS seqs FROM effects WHERE consumer = 'order' GROUP BY k`);
    expect(rows).toHaveLength(keys);
    for (const r of rows) expect(r.seqs).toEqual(Array.from({ length: perKey }, (_, i) => i + 1));
  });
  it('an inbox insert that fails (sent with BEGIN) commits nothing and leaves no connection in a transaction; the message is handled once it succeeds', async () => {
    const exchange = name('refused');
    const queue = name('refused-q');
    await p.query(`CREATE FUNCTION refuse_inbox() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'inbox refused'; END $$`);
    await p.query(`CREATE TRIGGER refuse_inbox BEFORE INSERT ON sagabox.inbox FOR EACH ROW WHEN (NEW.consumer = '${queue}') EXECUTE FUNCTION refuse_inbox()`);
    try {
      const consumer = track(createRabbitMqConsumer({
        url: RABBITMQ_URL, pool: p, queue, bindings: [{ exchange, routingKey: 'refused.#' }], handler: recordEffect('refused'),
        retry: { baseDelayMs: 50, maxDelayMs: 200 },
      }));
      const errors: unknown[] = [];
      consumer.events.on('error', (e) => errors.push(e.error));
      await consumer.start();
      const relay = track(createRelay({ pool: p, destinations: [createRabbitMqDestination({ url: RABBITMQ_URL, routes: [{ topic: 'refused.#', exchange }] })], pollIntervalMs: 50 }));
      await relay.start();
      const ids = await publishCommitted(p, [{ topic: 'refused.x', key: 'k', payload: { seq: 1 } }, { topic: 'refused.x', payload: { seq: 2 } }]);
      await waitFor('the refused inbox insert reported', () => errors.some((e) => /inbox refused/.test(String(e))));
      expect(await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'refused'`)).toBe(0);
      expect(await count('SELECT count(*) AS n FROM sagabox.inbox WHERE consumer = $1', [queue])).toBe(0);
      expect(await stuckInFailedTransaction(p)).toEqual([]);

      // The trigger lets inserts through from now on. Dropping it here would lock the inbox
      // and each of its partitions exclusively while the consumer retries: CI saw it deadlock.
      await p.query(`CREATE OR REPLACE FUNCTION refuse_inbox() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`);
      await waitFor('both effects', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'refused'`)) === 2, 30_000);
      expect(await count('SELECT count(*) AS n FROM sagabox.inbox WHERE consumer = $1 AND message_id = ANY($2)', [queue, ids])).toBe(2);
      // Stopped before the trigger is dropped below, for the same reason.
      await consumer.stop();
    } finally {
      await p.query('DROP TRIGGER IF EXISTS refuse_inbox ON sagabox.inbox');
      await p.query('DROP FUNCTION refuse_inbox()');
    }
  });
});
