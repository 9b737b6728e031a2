import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createWorker, prepare, publish, SagaboxError, commitHalfMessage } from '@sagabox/core';
import {
  addDirectRoute,
  cancelMessages,
  countDeadLetters,
  decideHalfMessage,
  deleteMessages,
  halfMessageHistory,
  listDeadLetters,
  listMessages,
  purgeDeadLetters,
  replayDeadLetters,
  needsAttention,
  retryMessages,
  type AttentionOptions,
  type MessageActionFilter,
  type OperatorDecisionOptions,
} from '@sagabox/core/admin';
import { useDatabase } from '../support/test-pool.js';
import { attemptInRollback } from '../support/counting-client.js';
import { schemaOption } from '../support/schema-option.js';

const { pool, count } = await useDatabase();
const p = pool(4);
await addDirectRoute(p, { topic: 'act.#', queue: 'act' });

/** A ready, a leased (live lease), a retrying and a scheduled message of queue `act`, with topic `topic`. */
async function seed(topic = 'act.mail'): Promise<{ ready: string; leased: string; retrying: string; scheduled: string; token: string }> {
  const [ready, leased, retrying, scheduled] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
  await publish(p, [
    { id: ready, topic, payload: { n: 1 } },
    { id: leased, topic, payload: { n: 2 } },
    { id: retrying, topic, payload: { n: 3 } },
    { id: scheduled, topic, payload: { n: 4 }, delayMs: 3_600_000 },
  ]);
  const token = randomUUID();
  await p.query(`UPDATE sagabox.queue_messages SET lease_token = $2, locked_until = now() + interval '5 minutes', locked_by = 'worker-1' WHERE id = $1`, [leased, token]);
  await p.query(`UPDATE sagabox.queue_messages SET attempts = 4, run_at = now() + interval '10 minutes', last_error = 'SMTP 451' WHERE id = $1`, [retrying]);
  return { ready, leased, retrying, scheduled, token };
}

const clear = (): Promise<unknown> => p.query(`DELETE FROM sagabox.queue_messages; DELETE FROM sagabox.outbox; DELETE FROM sagabox.dead_letters`);

describe('retryMessages, cancelMessages, deleteMessages', () => {
  it('retry now: the preview counts what the action then changes; a leased message is left alone', async () => {
    const s = await seed();
    const preview = await retryMessages(p, { queue: 'act' }, { dryRun: true });
    expect(preview).toMatchObject({ action: 'retry', dryRun: true, affected: 2, inFlight: 1, unchanged: 1, more: false });
    expect(preview.ids.sort()).toEqual([s.retrying, s.scheduled].sort());
    expect(preview.inFlightIds).toEqual([s.leased]);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE run_at > now()`)).toBe(2);

    const done = await retryMessages(p, { queue: 'act' });
    expect(done).toMatchObject({ action: 'retry', dryRun: false, affected: preview.affected, inFlight: 1, unchanged: 1 });
    expect(done.ids.sort()).toEqual(preview.ids.sort());
    const states = Object.fromEntries((await listMessages(p, { queue: 'act' })).messages.map((m) => [m.id, m.state]));
    expect(states).toEqual({ [s.ready]: 'ready', [s.leased]: 'in_flight', [s.retrying]: 'ready', [s.scheduled]: 'ready' });
    // Attempts and last error are kept; the lease is untouched.
    const [r] = (await p.query(`SELECT attempts, last_error FROM sagabox.queue_messages WHERE id = $1`, [s.retrying])).rows;
    expect(r).toEqual({ attempts: 4, last_error: 'SMTP 451' });
    expect((await p.query(`SELECT lease_token FROM sagabox.queue_messages WHERE id = $1`, [s.leased])).rows[0].lease_token).toBe(s.token);
    // Nothing left to retry.
    expect(await retryMessages(p, { queue: 'act', state: 'retrying' })).toMatchObject({ affected: 0, inFlight: 0, unchanged: 0 });
    await clear();
  });

  it('retry now in the outbox: a delivery waiting after a failure is made due now', async () => {
    const { ids: [id] } = await publish(p, { topic: 'elsewhere.x', payload: {} });
    await p.query(`UPDATE sagabox.outbox SET attempts = 2, available_at = now() + interval '1 hour', last_error = 'broker down' WHERE id = $1`, [id]);
    expect((await listMessages(p, { id: id! })).messages[0]!.state).toBe('retrying');
    expect(await retryMessages(p, { id: id! })).toMatchObject({ affected: 1, ids: [id] });
    expect((await listMessages(p, { id: id! })).messages[0]!.state).toBe('ready');
    await clear();
  });

  it('cancel: the message goes to the dead letters with the operator and reason, is replayed, and is handled once', async () => {
    const { ids: [id] } = await publish(p, { topic: 'act.cancel', payload: { to: 'x@example.com' } });
    const r = await cancelMessages(p, { queue: 'act', id: id! }, { reason: 'customer asked to wait', by: 'alice' });
    expect(r).toMatchObject({ action: 'cancel', affected: 1, ids: [id], inFlight: 0 });
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE id = $1`, [id])).toBe(0);
    const [dead] = await listDeadLetters(p, { queue: 'act', reason: 'cancelled' });
    expect(dead).toMatchObject({ id, reason: 'cancelled', error: 'cancelled by alice: customer asked to wait', payload: { to: 'x@example.com' } });
    // Cancelling it again finds nothing.
    expect(await cancelMessages(p, { queue: 'act', id: id! }, { reason: 'again' })).toMatchObject({ affected: 0, inFlight: 0, unchanged: 0 });

    expect(await countDeadLetters(p, { deadIds: [dead!.deadId] })).toBe(1);
    expect(await replayDeadLetters(p, { deadIds: [dead!.deadId] })).toBe(1);
    const handled: string[] = [];
    const worker = createWorker({ pool: p, queue: 'act', listen: false, handler: async (m) => void handled.push(m.id) });
    while ((await worker.runOnce()) > 0);
    // Replaying the same dead letter again finds nothing: it is not in the dead letters any more.
    expect(await replayDeadLetters(p, { deadIds: [dead!.deadId] })).toBe(0);
    while ((await worker.runOnce()) > 0);
    await worker.stop();
    expect(handled).toEqual([id]);
    expect(await count(`SELECT count(*) AS n FROM sagabox.inbox WHERE message_id = $1`, [id])).toBe(1);
    await clear();
  });

  it('cancel and delete by id never touch a message under a live lease, and say so', async () => {
    const s = await seed();
    expect(await cancelMessages(p, { queue: 'act', id: s.leased }, { reason: 'stop' })).toMatchObject({ affected: 0, inFlight: 1, inFlightIds: [s.leased] });
    expect(await deleteMessages(p, { queue: 'act', id: s.leased })).toMatchObject({ affected: 0, inFlight: 1 });
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE id = $1 AND lease_token = $2`, [s.leased, s.token])).toBe(1);
    expect(await count(`SELECT count(*) AS n FROM sagabox.dead_letters`)).toBe(0);
    // Once its lease ran out (its worker died), it can be taken out.
    await p.query(`UPDATE sagabox.queue_messages SET locked_until = now() - interval '1 second' WHERE id = $1`, [s.leased]);
    expect(await deleteMessages(p, { queue: 'act', id: s.leased })).toMatchObject({ affected: 1, inFlight: 0 });
    await clear();
  });

  it('a row a worker is locking right now is skipped and counted in flight, without waiting', async () => {
    const s = await seed();
    const holder = await p.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM sagabox.queue_messages WHERE id = $1 FOR UPDATE`, [s.ready]);
      const r = await deleteMessages(p, { queue: 'act', id: s.ready });
      expect(r).toMatchObject({ affected: 0, inFlight: 1, inFlightIds: [s.ready] });
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    await clear();
  });

  it('bulk delete by filter: preview count equals affected count, limit pages through, prepared half messages are not deleted', async () => {
    for (let i = 0; i < 5; i++) await seed(i % 2 ? 'act.bulk.odd' : 'act.bulk.even');
    const filter: MessageActionFilter = { queue: 'act', topic: 'act.bulk.even' };
    const preview = await deleteMessages(p, filter, { dryRun: true });
    expect(preview).toMatchObject({ affected: 9, inFlight: 3, unchanged: 0, more: false });
    const done = await deleteMessages(p, filter);
    expect(done.affected).toBe(preview.affected);
    expect(done.ids.sort()).toEqual(preview.ids.sort());
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE topic = 'act.bulk.even'`)).toBe(3);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE topic = 'act.bulk.odd'`)).toBe(8);

    // `limit` at a time, oldest first, `more` until the last call.
    const first = await deleteMessages(p, { queue: 'act', topic: 'act.bulk.odd', limit: 5 });
    expect(first).toMatchObject({ more: true });
    expect(first.affected + first.inFlight).toBe(5);
    const second = await deleteMessages(p, { queue: 'act', topic: 'act.bulk.odd', limit: 5 });
    expect(second.more).toBe(false);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE topic = 'act.bulk.odd'`)).toBe(2);

    // The outbox: a prepared half message is left to decideHalfMessage.
    const half = await prepare(p, { topic: 'elsewhere.half', payload: {} }, { checkAfterMs: 60_000 });
    await publish(p, { topic: 'elsewhere.plain', payload: {} });
    expect(await deleteMessages(p, {}, { dryRun: true })).toMatchObject({ affected: 1, unchanged: 1 });
    expect(await deleteMessages(p, {})).toMatchObject({ affected: 1, unchanged: 1 });
    expect((await listMessages(p, {})).messages.map((m) => m.id)).toEqual([half.id]);
    await clear();
  });

  it('works inside the caller transaction: rolled back with it', async () => {
    const s = await seed();
    const c = await p.connect();
    try {
      await c.query('BEGIN');
      expect(await deleteMessages(c, { queue: 'act', id: s.ready })).toMatchObject({ affected: 1 });
      await c.query('ROLLBACK');
    } finally {
      c.release();
    }
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE id = $1`, [s.ready])).toBe(1);
    await clear();
  });
});

describe('countDeadLetters', () => {
  it('previews replay and purge: the count equals what they then move', async () => {
    for (let i = 0; i < 3; i++) {
      const { ids } = await publish(p, { topic: 'act.dead', payload: { i } });
      await cancelMessages(p, { queue: 'act', id: ids[0]! }, { reason: 'test' });
    }
    expect(await countDeadLetters(p, { queue: 'act', reason: 'cancelled' })).toBe(3);
    expect(await countDeadLetters(p, { queue: 'act', reason: 'failed' })).toBe(0);
    const n = await countDeadLetters(p, { topic: 'act.dead', limit: 1 });
    expect(n).toBe(3);
    expect(await purgeDeadLetters(p, { topic: 'act.dead' })).toBe(n);
  });
});

describe('decideHalfMessage', () => {
  it('commits or rolls back a prepared half message as an operator decision, and refuses one already decided', async () => {
    const a = await prepare(p, { topic: 'elsewhere.pay', payload: { n: 1 } }, { checkAfterMs: 60_000 });
    const b = await prepare(p, { topic: 'elsewhere.pay', payload: { n: 2 } }, { checkAfterMs: 60_000 });
    const c = await prepare(p, { topic: 'elsewhere.pay', payload: { n: 3 } }, { checkAfterMs: 60_000 });

    const decided = await decideHalfMessage(p, a.id, { decision: 'commit', by: 'alice', reason: 'PSP shows the capture' });
    expect(decided).toMatchObject({ messageId: a.id, decision: 'commit', source: 'operator', detail: 'alice: PSP shows the capture' });
    expect((await listMessages(p, { id: a.id })).messages[0]!.state).toBe('ready');
    expect((await halfMessageHistory(p, a.id)).map((d) => [d.decision, d.source, d.detail])).toEqual([
      ['prepared', 'producer', null], ['commit', 'operator', 'alice: PSP shows the capture'],
    ]);

    await decideHalfMessage(p, b.id, { decision: 'rollback', by: 'bob', reason: 'no capture' });
    expect(await count(`SELECT count(*) AS n FROM sagabox.outbox WHERE id = $1`, [b.id])).toBe(0);

    // Refused when decided already, even the same way, and by the producer.
    for (const [id, decision] of [[a.id, 'commit'], [a.id, 'rollback'], [b.id, 'rollback']] as const) {
      const err = await decideHalfMessage(p, id, { decision, by: 'carol', reason: 'late' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SagaboxError);
      expect(err).toMatchObject({ code: 'HALF_MESSAGE_ALREADY_DECIDED' });
    }
    await commitHalfMessage(p, c.id);
    await expect(decideHalfMessage(p, c.id, { decision: 'rollback', by: 'carol', reason: 'x' })).rejects.toMatchObject({ code: 'HALF_MESSAGE_ALREADY_DECIDED' });
    await expect(decideHalfMessage(p, randomUUID(), { decision: 'commit', by: 'carol', reason: 'x' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await halfMessageHistory(p, a.id)).length).toBe(2);
    await clear();
  });
});

const raw = await p.connect();
afterAll(() => raw.release());

describe('bad input: a typed error before any SQL, the caller transaction still usable', () => {
  const attempt = (call: (db: pg.PoolClient) => Promise<unknown>): Promise<{ ok: boolean; error?: unknown; queries: number }> =>
    attemptInRollback(raw, call);

  it('refuses named bad values', async () => {
    const cases: [string, (db: pg.PoolClient) => Promise<unknown>][] = [
      ['limit', (db) => retryMessages(db, { queue: 'act', limit: 0 })],
      ['limit', (db) => deleteMessages(db, { queue: 'act', limit: 10_001 })],
      ['in_flight', (db) => deleteMessages(db, { queue: 'act', state: 'in_flight' })],
      ['prepared', (db) => cancelMessages(db, { state: 'prepared' }, { reason: 'x' })],
      ['reason', (db) => cancelMessages(db, { queue: 'act' }, {} as { reason: string })],
      ['reason', (db) => cancelMessages(db, { queue: 'act' }, { reason: 'a\u0000' })],
      ['dryRun', (db) => deleteMessages(db, { queue: 'act' }, { dryRun: 'yes' as unknown as boolean })],
      ['after', (db) => deleteMessages(db, { queue: 'act', after: '5' } as MessageActionFilter)],
      ['id', (db) => retryMessages(db, { queue: 'act', id: 'not-a-uuid' })],
      ['UUID', (db) => decideHalfMessage(db, 'nope', { decision: 'commit', by: 'a', reason: 'b' })],
      ['decision', (db) => decideHalfMessage(db, randomUUID(), { decision: 'maybe' as 'commit', by: 'a', reason: 'b' })],
      ['by', (db) => decideHalfMessage(db, randomUUID(), { decision: 'commit', by: '', reason: 'b' })],
    ];
    for (const [word, call] of cases) {
      const r = await attempt(call);
      expect(r.ok, word).toBe(false);
      expect(r.error, word).toBeInstanceOf(SagaboxError);
      expect((r.error as SagaboxError).code).toBe('INVALID_OPTIONS');
      expect((r.error as Error).message).toMatch(word);
      expect(r.queries).toBe(0);
    }
  });

  it('any filter and options: a result, or a typed error before any SQL (NOT_FOUND for an unknown queue after its lookup)', async () => {
    const anything = fc.anything({ maxDepth: 1, withBigInt: true, withNullPrototype: true });
    const filter = fc.record({
      schema: schemaOption(anything),
      queue: fc.oneof(fc.constantFrom('act', 'nope', 'bad queue'), fc.string(), anything),
      state: fc.oneof(fc.constantFrom('ready', 'retrying', 'scheduled', 'in_flight', 'prepared', 'dead'), anything),
      topic: fc.oneof(fc.constantFrom('act.mail', 'a..b'), fc.string(), anything),
      key: fc.oneof(fc.string({ maxLength: 300 }), anything),
      group: fc.oneof(fc.string({ maxLength: 300 }), anything),
      id: fc.oneof(fc.uuid(), fc.string(), anything),
      errorContains: fc.oneof(fc.string({ unit: 'binary', maxLength: 250 }), anything),
      now: fc.oneof(fc.date({ noInvalidDate: false }), anything),
      limit: fc.oneof(fc.integer({ min: -5, max: 20_000 }), fc.double(), anything),
    }, { requiredKeys: [] }) as fc.Arbitrary<MessageActionFilter>;
    const options = fc.record({
      dryRun: fc.oneof(fc.boolean(), anything),
      reason: fc.oneof(fc.string({ unit: 'binary', maxLength: 50 }), anything),
      by: fc.oneof(fc.string({ maxLength: 50 }), anything),
    }, { requiredKeys: [] }) as fc.Arbitrary<{ dryRun?: boolean; reason: string; by?: string }>;
    const calls = [retryMessages, deleteMessages, cancelMessages] as const;
    await fc.assert(
      fc.asyncProperty(filter, options, fc.constantFrom(0, 1, 2), async (f, o, which) => {
        const r = await attempt((db) => (calls[which] as typeof cancelMessages)(db, f, o));
        if (r.ok) return;
        expect(r.error).toBeInstanceOf(SagaboxError);
        const code = (r.error as SagaboxError).code;
        if (code === 'NOT_FOUND') expect(r.queries).toBe(1);
        else {
          expect(['INVALID_OPTIONS', 'INVALID_SCHEMA_NAME', 'INVALID_QUEUE_NAME', 'INVALID_TOPIC']).toContain(code);
          expect(r.queries).toBe(0);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('decideHalfMessage and needsAttention: any input, a result or a typed error before any SQL', async () => {
    const anything = fc.anything({ maxDepth: 1, withBigInt: true, withNullPrototype: true });
    const decision = fc.record({
      decision: fc.oneof(fc.constantFrom('commit', 'rollback', 'maybe'), anything),
      by: fc.oneof(fc.string({ unit: 'binary', maxLength: 300 }), anything),
      reason: fc.oneof(fc.string({ unit: 'binary', maxLength: 50 }), fc.string({ minLength: 1990, maxLength: 2010 }), anything),
      schema: schemaOption(anything),
    }, { requiredKeys: [] }) as fc.Arbitrary<OperatorDecisionOptions>;
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.uuid(), fc.string(), anything), decision, async (id, o) => {
        const r = await attempt((db) => decideHalfMessage(db, id as string, o));
        expect(r.ok).toBe(false); // no half message exists in this transaction
        const code = (r.error as SagaboxError).code;
        expect(r.error).toBeInstanceOf(SagaboxError);
        if (code === 'NOT_FOUND') expect(r.queries).toBe(2);
        else {
          expect(['INVALID_OPTIONS', 'INVALID_SCHEMA_NAME']).toContain(code);
          expect(r.queries).toBe(0);
        }
      }),
      { numRuns: 200 },
    );
    const attention = fc.record({
      maxAttempts: fc.oneof(fc.integer({ min: -2, max: 2_000_000 }), fc.double(), anything),
      attemptsLeft: fc.oneof(fc.integer({ min: -2, max: 2_000 }), anything),
      limit: fc.oneof(fc.integer({ min: -2, max: 2_000 }), anything),
      vacuumBlockedAfterMs: fc.oneof(fc.nat(), fc.double(), anything),
      now: fc.oneof(fc.date({ noInvalidDate: false }), anything),
      schema: schemaOption(anything),
    }, { requiredKeys: [] }) as fc.Arbitrary<AttentionOptions>;
    await fc.assert(
      fc.asyncProperty(attention, async (o) => {
        const r = await attempt((db) => needsAttention(db, o));
        if (r.ok) return;
        expect(r.error).toBeInstanceOf(SagaboxError);
        expect(['INVALID_OPTIONS', 'INVALID_SCHEMA_NAME']).toContain((r.error as SagaboxError).code);
        expect(r.queries).toBe(0);
      }),
      { numRuns: 200 },
    );
  });
});
