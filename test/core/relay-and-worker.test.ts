import { describe, expect, it } from 'vitest';
import type pg from 'pg';
import {
  createRelay,
  createWorker,
  defineTopics,
  Outcome,
  publish,
  type Destination,
  type OutboxMessage,
} from '@sagabox/core';
import {
  listDeadLetters,
  outboxStats,
  purgeDeadLetters,
  queueStats,
  replayDeadLetters,
} from '@sagabox/core/admin';
import { useDatabase } from '../support/test-pool.js';
import { stopAfterEach } from '../support/stop-after-each.js';
import { waitFor } from '../support/wait-for.js';

const { pool, count } = await useDatabase();
const p = pool(20);
await p.query('CREATE TABLE effects (message_id uuid, consumer text, n int, at timestamptz DEFAULT clock_timestamp())');

const { track } = stopAfterEach();

async function send(messages: OutboxMessage | OutboxMessage[], commit = true): Promise<string[]> {
  const c = await p.connect();
  try {
    await c.query('BEGIN');
    const { ids } = await publish(c, messages);
    await c.query(commit ? 'COMMIT' : 'ROLLBACK');
    return ids;
  } finally {
    c.release();
  }
}

const recordEffect = (consumer: string) => async (m: { id: string; payload: unknown }, { client }: { client: pg.PoolClient }) => {
  await client.query('INSERT INTO effects (message_id, consumer, n) VALUES ($1, $2, $3)', [m.id, consumer, (m.payload as { n?: number })?.n ?? null]);
};

describe('relay and worker', () => {
  it('delivers what committed and nothing that rolled back', async () => {
    const relay = track(createRelay({ pool: p, routes: [{ topic: 'basic.*', queue: 'basic' }], pollIntervalMs: 50 }));
    const worker = track(createWorker({ pool: p, queue: 'basic', handler: recordEffect('basic'), pollIntervalMs: 50 }));
    await relay.start();
    await worker.start();
    const kept = await send([{ topic: 'basic.a', payload: { n: 1 } }, { topic: 'basic.b', payload: { n: 2 } }]);
    const dropped = await send({ topic: 'basic.a', payload: { n: 3 } }, false);
    await waitFor('both effects', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'basic'`)) === 2);
    await new Promise((r) => setTimeout(r, 200));
    expect(await count(`SELECT count(*) AS n FROM effects WHERE message_id = ANY($1)`, [kept])).toBe(2);
    expect(await count(`SELECT count(*) AS n FROM effects WHERE message_id = ANY($1)`, [dropped])).toBe(0);
    expect(await count('SELECT count(*) AS n FROM sagabox.outbox')).toBe(0);
  });

  it('fans out one topic to several queues, and balances one queue across competing workers', async () => {
    const relay = track(createRelay({ pool: p, routes: [{ topic: 'fan.#', queue: 'fan-a' }, { topic: 'fan.*', queue: 'fan-b' }] }));
    const seenBy = new Map<string, string[]>();
    const workers = ['w1', 'w2', 'w3'].map((name) =>
      track(createWorker({
        pool: p, queue: 'fan-a', name, batchSize: 5,
        handler: async (m, ctx) => {
          seenBy.set(m.id, [...(seenBy.get(m.id) ?? []), name]);
          await recordEffect('fan-a')(m, ctx);
          await new Promise((r) => setTimeout(r, 2));
        },
      })),
    );
    const b = track(createWorker({ pool: p, queue: 'fan-b', handler: recordEffect('fan-b') }));
    await relay.start();
    for (const w of [...workers, b]) await w.start();
    const ids = await send(Array.from({ length: 300 }, (_, n) => ({ topic: 'fan.x', payload: { n } })));
    await waitFor('fan-out', async () =>
      (await count(`SELECT count(*) AS n FROM effects WHERE message_id = ANY($1)`, [ids])) === 600);
    expect(await count(`SELECT count(DISTINCT (message_id, consumer)) AS n FROM effects WHERE message_id = ANY($1)`, [ids])).toBe(600);
    expect([...seenBy.values()].every((v) => v.length === 1)).toBe(true);
    expect(new Set([...seenBy.values()].map((v) => v[0])).size).toBeGreaterThan(1);
  });

  it('keeps per-key order with two relays and three workers', async () => {
    const relays = [1, 2].map((i) => track(createRelay({ pool: p, name: `r${i}`, routes: [{ topic: 'ord.*', queue: 'ord' }], batchSize: 7 })));
    const order = new Map<string, number[]>();
    const workers = [1, 2, 3].map((i) =>
      track(createWorker({
        pool: p, queue: 'ord', name: `w${i}`, batchSize: 4, concurrency: 2,
        handler: async (m) => {
          const { k, n } = m.payload as { k: string; n: number };
          order.set(k, [...(order.get(k) ?? []), n]);
        },
      })),
    );
    for (const r of [...relays, ...workers]) await r.start();
    const keys = ['a', 'b', 'c', 'd'];
    for (let n = 0; n < 50; n++) {
      await send(keys.map((k) => ({ topic: 'ord.e', key: k, payload: { k, n } })));
    }
    await waitFor('all keyed messages', () => keys.every((k) => (order.get(k)?.length ?? 0) === 50));
    for (const k of keys) expect(order.get(k)).toEqual(Array.from({ length: 50 }, (_, n) => n));
  });

  it('holds delayed messages until due, and dead-letters expired ones without handling them', async () => {
    const relay = track(createRelay({ pool: p, routes: [{ topic: 'time.*', queue: 'time' }], pollIntervalMs: 50 }));
    const handledAt = new Map<number, number>();
    const worker = track(createWorker({ pool: p, queue: 'time', pollIntervalMs: 50, handler: (m) => void handledAt.set((m.payload as { n: number }).n, Date.now()) }));
    const t0 = Date.now();
    await send([{ topic: 'time.delayed', payload: { n: 1 }, delayMs: 800 }, { topic: 'time.now', payload: { n: 2 } }, { topic: 'time.ttl', payload: { n: 3 }, ttlMs: 1 }]);
    await new Promise((r) => setTimeout(r, 20));
    await relay.start();
    await worker.start();
    await waitFor('delayed message', () => handledAt.has(1), 5_000);
    expect(handledAt.get(1)! - t0).toBeGreaterThanOrEqual(750);
    expect(handledAt.has(2)).toBe(true);
    expect(handledAt.has(3)).toBe(false);
    const dead = await listDeadLetters(p, { topic: 'time.ttl' });
    expect(dead).toHaveLength(1);
    expect(dead[0]!.reason).toBe('expired');
  });

  it('retries a failing handler with backoff, then dead-letters it with its error and attempts, undoing only its own effects', async () => {
    const relay = track(createRelay({ pool: p, routes: [{ topic: 'fail.*', queue: 'fail' }] }));
    const attempts = new Map<number, number>();
    const worker = track(createWorker({
      pool: p, queue: 'fail', batchSize: 10, pollIntervalMs: 20,
      retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 20 },
      handler: async (m, ctx) => {
        const { n } = m.payload as { n: number };
        attempts.set(n, (attempts.get(n) ?? 0) + 1);
        await recordEffect('fail')(m, ctx);
        if (n === 3) throw new Error(`poison ${n}`);
        if (n === 4) return Outcome.deadLetter('not for us');
        if (n === 5 && m.attempts === 1) return Outcome.retry({ delayMs: 10, reason: 'later' });
      },
    }));
    await relay.start();
    await worker.start();
    const ids = await send([1, 2, 3, 4, 5].map((n) => ({ topic: 'fail.x', payload: { n } })));
    await waitFor('poison dead-lettered', async () => (await listDeadLetters(p, { queue: 'fail' })).length === 2);
    const dead = await listDeadLetters(p, { queue: 'fail' });
    const poison = dead.find((d) => d.reason === 'failed')!;
    expect(poison.error).toMatch(/poison 3/);
    expect(poison.attempts).toBe(3);
    expect(dead.find((d) => d.reason === 'non_retryable')!.error).toBe('not for us');
    await waitFor('n=5 handled', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'fail' AND n = 5`)) === 1);
    // Effects of failed attempts were rolled back; successful ones exist once.
    const { rows } = await p.query(`SELECT n, count(*)::int AS c FROM effects WHERE message_id = ANY($1) GROUP BY n ORDER BY n`, [ids]);
    expect(rows).toEqual([{ n: 1, c: 1 }, { n: 2, c: 1 }, { n: 5, c: 1 }]);
    expect(attempts.get(3)).toBeGreaterThanOrEqual(3);
    // Replay puts it back with attempts reset; purge removes the rest.
    expect(await replayDeadLetters(p, { queue: 'fail', reason: 'failed' })).toBe(1);
    await waitFor('replayed poison fails again', async () => (await listDeadLetters(p, { queue: 'fail', reason: 'failed' })).length === 1);
    expect(await purgeDeadLetters(p, { queue: 'fail' })).toBe(2);
  });

  it('acks a redelivered message without a second effect (inbox)', async () => {
    const relay = track(createRelay({ pool: p, routes: [{ topic: 'dup.*', queue: 'dup' }] }));
    const worker = track(createWorker({ pool: p, queue: 'dup', handler: recordEffect('dup') }));
    await relay.start();
    await worker.start();
    const [id] = await send({ topic: 'dup.x', payload: { n: 1 } });
    await waitFor('first effect', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'dup'`)) === 1);
    await send({ id, topic: 'dup.x', payload: { n: 1 } }); // the producer retries after delivery
    await waitFor('redelivery acked', async () => (await count(`SELECT count(*) AS n FROM sagabox.outbox`)) === 0 &&
      (await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'dup'`)) === 0);
    expect(await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'dup'`)).toBe(1);
  });

  it('delivers an id published twice before the relay ran once, and handles it once', async () => {
    const [id] = await send({ topic: 'twice.x', payload: { n: 1 } });
    await send({ id, topic: 'twice.x', payload: { n: 1 } }); // the producer retries before delivery
    expect(await count(`SELECT count(*) AS n FROM sagabox.outbox WHERE id = $1`, [id])).toBe(2);
    const relay = track(createRelay({ pool: p, routes: [{ topic: 'twice.*', queue: 'twice' }], listen: false }));
    // Twice in one batch, then once more in a batch of its own with the first still queued.
    await send({ id, topic: 'twice.x', payload: { n: 1 } }, true);
    expect(await relay.runOnce()).toBeGreaterThanOrEqual(3);
    await send({ id, topic: 'twice.x', payload: { n: 1 } });
    await relay.runOnce();
    expect(await count(`SELECT count(*) AS n FROM sagabox.outbox`)).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'twice'`)).toBe(1);
    const worker = track(createWorker({ pool: p, queue: 'twice', handler: recordEffect('twice') }));
    await worker.runOnce();
    await send({ id, topic: 'twice.x', payload: { n: 1 } }); // and once more after it was handled
    await relay.runOnce();
    await worker.runOnce();
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'twice'`)).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'twice'`)).toBe(1);
  });

  it('in one batch, handles the messages new to the inbox and only acks the one it had', async () => {
    const ids = await send([1, 2, 3].map((n) => ({ topic: 'mixed.x', payload: { n } })));
    const relay = track(createRelay({ pool: p, routes: [{ topic: 'mixed.*', queue: 'mixed' }], listen: false }));
    expect(await relay.runOnce()).toBe(3);
    // The second was handled before (a redelivery after a lost ack, say).
    await p.query(`INSERT INTO sagabox.inbox (consumer, message_id) VALUES ('mixed', $1)`, [ids[1]]);
    const handled: string[] = [];
    const worker = track(createWorker({ pool: p, queue: 'mixed', batchSize: 10, handler: (m) => void handled.push(m.id) }));
    expect(await worker.runOnce()).toBe(3);
    expect(handled).toEqual([ids[0], ids[2]]);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'mixed'`)).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM sagabox.inbox WHERE consumer = 'mixed' AND message_id = ANY($1::uuid[])`, [ids])).toBe(3);
  });

  it('dead-letters outbox rows written by hand that publish would have refused, and relays the rest', async () => {
    const relay = track(createRelay({ pool: p, routes: [{ topic: 'hand.*', queue: 'hand' }], listen: false }));
    const bad = [
      ['hand..x', null, null, '{}', /invalid topic/],
      ['hand.key', '', null, '{}', /key must be 1-255/],
      ['hand.group', null, 'g'.repeat(256), '{}', /group must be 1-255/],
      ['hand.headers', null, null, '[1, 2]', /headers must be a JSON object, not \[1, 2\]/],
    ] as const;
    for (const [topic, key, group, headers] of bad) {
      await p.query(
        `INSERT INTO sagabox.outbox (id, topic, key, group_key, payload, headers) VALUES (gen_random_uuid(), $1, $2, $3, '{}', $4::jsonb)`,
        [topic, key, group, headers],
      );
    }
    const [good] = await send({ topic: 'hand.ok', payload: { n: 1 } });
    await relay.runOnce();
    expect(await count(`SELECT count(*) AS n FROM sagabox.outbox`)).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'hand' AND id = $1`, [good])).toBe(1);
    const dead = await listDeadLetters(p, { reason: 'invalid' });
    for (const [topic, , , , error] of bad) {
      const d = dead.find((x) => x.topic === topic);
      expect(d?.error, topic).toMatch(error);
    }
    await purgeDeadLetters(p, {});
  });

  it('does not hand a message whose handler outlives its lease to another worker', async () => {
    const relay = track(createRelay({ pool: p, routes: [{ topic: 'slow.*', queue: 'slow' }] }));
    let runs = 0;
    const mk = (name: string) => track(createWorker({
      pool: p, queue: 'slow', name, leaseMs: 200, handlerTimeoutMs: 5_000, pollIntervalMs: 50,
      handler: async (m, ctx) => {
        runs++;
        await new Promise((r) => setTimeout(r, 700));
        await recordEffect('slow')(m, ctx);
      },
    }));
    await relay.start();
    await mk('a').start();
    await mk('b').start();
    await send({ topic: 'slow.x', payload: { n: 1 } });
    await waitFor('slow effect', async () => (await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'slow'`)) === 1);
    await new Promise((r) => setTimeout(r, 400));
    expect(runs).toBe(1);
    expect(await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'slow'`)).toBe(1);
  });

  it('a worker whose lease ran out and was taken over before it began handling does nothing with the message (inbox off: the fence alone)', async () => {
    const relay = track(createRelay({ pool: p, routes: [{ topic: 'late.*', queue: 'late' }], listen: false }));
    // Each worker's payload check takes 600 ms, longer than its 150 ms lease: a claims,
    // b claims the same message once a's lease has run out, and a reaches its handling
    // transaction while the message is leased to b, which has not handled it yet.
    let checks = 0;
    const slowTopics = defineTopics({
      'late.x': { '~standard': { version: 1, vendor: 't', validate: async (v: unknown) => {
        checks++;
        await new Promise((r) => setTimeout(r, 600));
        return { value: v };
      } } },
    });
    const handledBy: string[] = [];
    const mk = (name: string) => createWorker({
      pool: p, queue: 'late', name, leaseMs: 150, inbox: false, listen: false, topics: slowTopics,
      handler: async (m, ctx) => {
        handledBy.push(name);
        await recordEffect('late')(m, ctx);
      },
    });
    await send({ topic: 'late.x', payload: { n: 1 } });
    await relay.runOnce();
    const a = mk('a').runOnce();
    await waitFor('a checking the payload', () => checks === 1);
    await new Promise((r) => setTimeout(r, 250)); // a's lease has run out
    const b = mk('b').runOnce();
    expect(await Promise.all([a, b])).toEqual([1, 1]); // both claimed it...
    expect(handledBy).toEqual(['b']); // ...only the lease holder handled it
    expect(await count(`SELECT count(*) AS n FROM effects WHERE consumer = 'late'`)).toBe(1);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'late'`)).toBe(0);
  });

  it("takes over a dead worker's lease once it expires", async () => {
    // A worker that claimed and vanished: its lease is in the row, nobody holds the lock.
    await p.query(`INSERT INTO sagabox.queues (name) VALUES ('orphan') ON CONFLICT DO NOTHING`);
    await p.query(`INSERT INTO sagabox.queue_messages (queue, id, topic, payload, created_at, lease_token, locked_until, locked_by, attempts)
                   VALUES ('orphan', gen_random_uuid(), 'o.x', '{"n":1}', now(), gen_random_uuid(), now() + interval '600 ms', 'dead-worker', 1)`);
    const handled: number[] = [];
    const worker = track(createWorker({ pool: p, queue: 'orphan', pollIntervalMs: 50, handler: (m) => void handled.push(m.attempts) }));
    const t0 = Date.now();
    await worker.start();
    await waitFor('orphan handled', () => handled.length === 1, 5_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
    expect(handled).toEqual([2]);
  });

  it('dead-letters unroutable topics and failing deliveries, and keeps relaying the rest', async () => {
    const flaky: Destination = {
      name: 'flaky',
      matches: (t) => t.startsWith('dest.'),
      async deliver(messages) {
        if (messages.some((m) => JSON.parse(m.payload).bad)) throw new Error('destination refused');
      },
    };
    const relay = track(createRelay({ pool: p, destinations: [flaky], onUnroutable: 'dead-letter', retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 10 }, pollIntervalMs: 30 }));
    const delivered: string[] = [];
    relay.events.on('delivered', (e) => delivered.push(`${e.destination}:${e.count}`));
    await relay.start();
    await send([{ topic: 'dest.a', payload: { n: 1 } }, { topic: 'dest.a', payload: { bad: true } }, { topic: 'nowhere.x', payload: {} }, { topic: 'dest.b', payload: { n: 2 } }]);
    await waitFor('outbox empty', async () => (await outboxStats(p)).ready === 0);
    const dead = await listDeadLetters(p, { reason: 'unroutable' });
    expect(dead.map((d) => d.topic)).toContain('nowhere.x');
    const failed = await listDeadLetters(p, { topic: 'dest.a', reason: 'failed' });
    expect(failed).toHaveLength(1);
    expect(failed[0]!.error).toMatch(/flaky: Error: destination refused/);
    expect(failed[0]!.attempts).toBe(2);
    expect(delivered.length).toBeGreaterThan(0);
    await purgeDeadLetters(p, {});
  });

  it('dead-letters a payload that fails its contract at consume as invalid', async () => {
    const topics = defineTopics({
      'typed.order': { '~standard': { version: 1, vendor: 't', validate: (v: unknown) => (typeof (v as { id?: unknown }).id === 'string' ? { value: v } : { issues: [{ message: 'id must be a string' }] }) } },
    });
    const relay = track(createRelay({ pool: p, routes: [{ topic: 'typed.*', queue: 'typed' }] }));
    const seen: unknown[] = [];
    const worker = track(createWorker({ pool: p, queue: 'typed', topics, handler: (m) => void seen.push(m.payload) }));
    await relay.start();
    await worker.start();
    await send([{ topic: 'typed.order', payload: { id: 'ok' } }, { topic: 'typed.order', payload: { id: 7 } }]); // a producer without contracts
    await waitFor('invalid dead-lettered', async () => (await listDeadLetters(p, { queue: 'typed' })).length === 1);
    const [d] = await listDeadLetters(p, { queue: 'typed' });
    expect(d!.reason).toBe('invalid');
    expect(d!.error).toMatch(/id must be a string/);
    await waitFor('valid one handled', () => seen.length === 1);
  });

  it('reports queue depth and refuses bad options with every problem listed', async () => {
    await send([{ topic: 'stats.x', payload: 1 }, { topic: 'stats.x', payload: 2, delayMs: 60_000 }]);
    const relay = createRelay({ pool: p, routes: [{ topic: 'stats.*', queue: 'stats' }] });
    await relay.start();
    await relay.runOnce();
    await relay.stop();
    const [s] = await queueStats(p, { queues: ['stats'] });
    expect(s).toMatchObject({ queue: 'stats', ready: 1, delayed: 1, inFlight: 0 });
    await expect(queueStats(p, { queues: ['nope'] })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(() => createWorker({ pool: p, queue: 'bad queue!', handler: () => {}, concurrency: 0, batchSize: -1 })).toThrow(
      /queue name.*concurrency.*batchSize/s,
    );
    expect(() => createRelay({ pool: p, routes: [{ topic: 'a..b', queue: 'x' }], schema: 'Robert"); DROP' })).toThrow(/schema name.*routes/s);
  });

  it('purges inbox rows past their retention', async () => {
    await p.query(`INSERT INTO sagabox.inbox (consumer, message_id, processed_at) VALUES ('purge', gen_random_uuid(), now() - interval '2 hours'), ('purge', gen_random_uuid(), now())`);
    const worker = track(createWorker({ pool: p, queue: 'purge', handler: () => {}, inboxRetentionMs: 3_600_000, inboxPurgeIntervalMs: 50 }));
    await worker.start();
    await waitFor('old inbox row purged', async () => (await count(`SELECT count(*) AS n FROM sagabox.inbox WHERE consumer = 'purge'`)) === 1);
  });
});
