import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRelay, publish, SagaboxError, type Destination, type RelayOptions } from '@sagabox/core';
import { listDeadLetters } from '@sagabox/core/admin';
import { useDatabase } from '../support/test-pool.js';
import { stopAfterEach } from '../support/stop-after-each.js';
import { waitFor } from '../support/wait-for.js';

const { pool, count } = await useDatabase();
const p = pool(12);

const { track } = stopAfterEach();

describe('relays with different route sets', () => {
  it('a relay with a subset of the routes, beside one with all of them, dead-letters nothing', async () => {
    // The old version of a rolling deploy (or another service's relay) knows only svc-a.
    const partial = track(createRelay({ pool: p, name: 'partial', routes: [{ topic: 'svc-a.*', queue: 'svc-a' }], pollIntervalMs: 50 }));
    const full = track(createRelay({
      pool: p, name: 'full', pollIntervalMs: 50,
      routes: [{ topic: 'svc-a.*', queue: 'svc-a' }, { topic: 'svc-b.#', queue: 'svc-b' }],
    }));
    const held: string[] = [];
    partial.events.on('unroutable', (e) => held.push(e.topic));
    const messages = Array.from({ length: 60 }, (_, i) => ({
      topic: i % 2 === 0 ? 'svc-a.created' : 'svc-b.x.created', payload: { i },
    }));
    await publish(p, messages);
    // The partial relay sees everything first: it must leave svc-b's messages in the outbox.
    expect(await partial.runOnce()).toBe(60);
    expect(held).toHaveLength(30);
    expect(await count(`SELECT count(*) AS n FROM sagabox.outbox WHERE topic = 'svc-b.x.created' AND attempts = 0 AND last_error LIKE '%no route%partial%'`)).toBe(30);
    await partial.start();
    await full.start();
    await waitFor('every message queued', async () => (await count('SELECT count(*) AS n FROM sagabox.queue_messages')) === 60);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'svc-b'`)).toBe(30);
    expect(await count('SELECT count(*) AS n FROM sagabox.outbox')).toBe(0);
    expect(await listDeadLetters(p)).toEqual([]);
  });

  it('holds a topic no relay routes, reports it, and dead-letters it only when told to', async () => {
    const relay = track(createRelay({ pool: p, routes: [{ topic: 'known.*', queue: 'known' }], pollIntervalMs: 20 }));
    const reported: { topic: string; heldForMs: number }[] = [];
    relay.events.on('unroutable', (e) => reported.push(e));
    await publish(p, { topic: 'nobody.routes', payload: {} });
    await relay.start();
    await waitFor('reported', () => reported.length > 0);
    expect(reported[0]).toMatchObject({ topic: 'nobody.routes', heldForMs: 1_000 });
    expect(await count(`SELECT count(*) AS n FROM sagabox.outbox WHERE topic = 'nobody.routes' AND available_at > now()`)).toBe(1);
    await relay.stop();
    expect(await count(`SELECT count(*) AS n FROM sagabox.dead_letters`)).toBe(0);
    // The operator's decision: a relay told to dead-letter what it cannot route.
    const strict = track(createRelay({ pool: p, routes: [{ topic: 'known.*', queue: 'known' }], onUnroutable: 'dead-letter' }));
    await p.query(`UPDATE sagabox.outbox SET available_at = now()`);
    await strict.runOnce();
    expect((await listDeadLetters(p, { reason: 'unroutable' })).map((d) => d.topic)).toEqual(['nobody.routes']);
    await p.query('DELETE FROM sagabox.dead_letters');
  });

  it('dead-letters a hand-written outbox row whose header is not a string, as invalid', async () => {
    await p.query(`INSERT INTO sagabox.outbox (id, topic, payload, headers) VALUES (gen_random_uuid(), 'hand.x', '{}', '{"n": 1, "ok": "y"}')`);
    const relay = track(createRelay({ pool: p, routes: [{ topic: 'hand.*', queue: 'hand' }] }));
    await relay.runOnce();
    const [dead] = await listDeadLetters(p, { topic: 'hand.x' });
    expect(dead).toMatchObject({ reason: 'invalid' });
    expect(dead!.error).toMatch(/header "n" must be a string, not number/);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'hand'`)).toBe(0);
    await p.query('DELETE FROM sagabox.dead_letters');
  });

  it("keeps the failing destination's stack in the dead letter and the retry record, bounded", async () => {
    const failing: Destination = {
      name: 'failing',
      matches: (t) => t.startsWith('stack.'),
      async deliver(messages) {
        const long = messages.some((m) => (JSON.parse(m.payload) as { long?: boolean }).long);
        throw new Error(long ? 'x'.repeat(50_000) : 'refused by the far side', { cause: new Error('socket closed') });
      },
    };
    const relay = track(createRelay({ pool: p, destinations: [failing], retry: { maxAttempts: 2, baseDelayMs: 0, maxDelayMs: 0 } }));
    await publish(p, [{ topic: 'stack.a', payload: {} }, { topic: 'stack.b', payload: { long: true } }]);
    await relay.runOnce();
    const [retry] = (await p.query<{ last_error: string }>(`SELECT last_error FROM sagabox.outbox WHERE topic = 'stack.a'`)).rows;
    expect(retry!.last_error).toMatch(/^failing: Error: refused by the far side\n\s+at .*relay-routing\.test\.ts/);
    expect(retry!.last_error).toMatch(/\nCaused by: Error: socket closed\n\s+at /);
    await waitFor('both dead', async () => (await relay.runOnce(), (await listDeadLetters(p, { reason: 'failed' })).length === 2));
    const dead = await listDeadLetters(p, { reason: 'failed' });
    const a = dead.find((d) => d.topic === 'stack.a')!;
    expect(a.error).toMatch(/refused by the far side\n\s+at /);
    const b = dead.find((d) => d.topic === 'stack.b')!;
    expect(b.error.length).toBeLessThanOrEqual(4_100);
    await p.query('DELETE FROM sagabox.dead_letters');
  });
});

describe('createRelay options', () => {
  const refusal = (options: unknown): SagaboxError => {
    try {
      createRelay(options as RelayOptions);
    } catch (err) {
      if (err instanceof SagaboxError) return err;
      throw err;
    }
    throw new Error('createRelay accepted the options');
  };

  it('reports bad options as INVALID_OPTIONS, not TypeErrors or failing batches', () => {
    expect(refusal(undefined).code).toBe('INVALID_OPTIONS');
    expect(refusal(null).code).toBe('INVALID_OPTIONS');
    const empty = refusal({ pool: p, destinations: [{}] });
    expect(empty.code).toBe('INVALID_OPTIONS');
    expect(empty.message).toMatch(/destinations\[0\]\.name.*destinations\[0\]\.matches.*destinations\[0\]\.deliver/);
    expect(refusal({ pool: p, routes: 'orders.*' }).message).toMatch(/routes must be an array/);
    expect(refusal({ pool: p, routes: [{ topic: 'a.*', queue: 'q' }], onUnroutable: 'ignore' }).message).toMatch(/onUnroutable/);
    expect(refusal({ pool: p, routes: [{ topic: 'a.*', queue: 'q' }], waitForDatabaseMs: -1 }).message).toMatch(/waitForDatabaseMs/);
    expect(refusal({ pool: p, routes: [{ topic: 'a.*', queue: 'q' }], batchesInFlight: 0 }).message).toMatch(/batchesInFlight/);
    expect(refusal({ pool: p, destinations: [{ name: 'd', matches: () => true, deliver: async () => {}, external: 'yes' }] }).message).toMatch(/external must be a boolean/);
  });

  it('any options: a relay, or INVALID_OPTIONS', () => {
    const anything = fc.anything({ maxDepth: 2, withBigInt: true, withMap: true, withNullPrototype: true });
    const options = fc.oneof(
      anything,
      fc.record({
        pool: fc.oneof(fc.constant(p), anything),
        routes: fc.oneof(fc.constant([{ topic: 'a.*', queue: 'q' }]), fc.array(fc.record({ topic: fc.oneof(fc.string(), anything), queue: fc.oneof(fc.string(), anything) })), anything),
        destinations: fc.oneof(fc.array(anything, { maxLength: 2 }), anything),
        batchSize: fc.oneof(fc.integer(), fc.double(), anything),
        batchesInFlight: fc.oneof(fc.integer(), fc.double(), anything),
        pollIntervalMs: fc.oneof(fc.integer(), anything),
        retry: fc.oneof(fc.record({ maxAttempts: fc.oneof(fc.integer(), anything), baseDelayMs: fc.oneof(fc.double(), anything) }), anything),
        schema: fc.oneof(fc.string(), anything),
        onUnroutable: fc.oneof(fc.constantFrom('hold', 'dead-letter', 'drop'), anything),
        waitForDatabaseMs: fc.oneof(fc.double(), anything),
        checkBackoff: fc.oneof(fc.record({ baseDelayMs: anything, maxDelayMs: anything, jitter: anything }, { requiredKeys: [] }), anything),
        checkers: fc.oneof(fc.dictionary(fc.string(), anything, { maxKeys: 2 }), anything),
        maxChecks: fc.oneof(fc.integer(), anything),
        stopTimeoutMs: fc.oneof(fc.integer(), anything),
        name: anything,
        listen: anything,
      }, { requiredKeys: [] }),
    );
    fc.assert(
      fc.property(options, (o) => {
        try {
          createRelay(o as RelayOptions);
        } catch (err) {
          expect(err).toBeInstanceOf(SagaboxError);
          expect((err as SagaboxError).code).toBe('INVALID_OPTIONS');
        }
      }),
      { numRuns: 500 },
    );
  });
});
