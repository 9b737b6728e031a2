import fc from 'fast-check';
import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { SagaboxError, type SagaboxErrorCode } from '@sagabox/core';
import { listDeadLetters, purgeDeadLetters, queueStats, replayDeadLetters, type DeadLetterFilter } from '@sagabox/core/admin';
import { useDatabase } from '../support/test-pool.js';
import { attemptInRollback } from '../support/counting-client.js';
import { schemaOption } from '../support/schema-option.js';

const { pool } = await useDatabase();
const p = pool(2);
const raw = await p.connect();
afterAll(() => raw.release());

const NAME_CODES: SagaboxErrorCode[] = ['INVALID_OPTIONS', 'INVALID_SCHEMA_NAME', 'INVALID_QUEUE_NAME', 'INVALID_TOPIC'];

/** Runs an admin call in a transaction of its own: its result, or its error with the statements it ran. */
const attempt = <T>(call: (db: pg.PoolClient) => Promise<T>) => attemptInRollback(raw, call);

function expectRefused(outcome: Awaited<ReturnType<typeof attempt>>, codes: SagaboxErrorCode[], message?: RegExp): void {
  if (outcome.ok) throw new Error('expected a typed refusal, but the call went through');
  if (!(outcome.error instanceof SagaboxError)) throw new Error(`expected a SagaboxError, got ${String(outcome.error)}`);
  expect(codes).toContain(outcome.error.code);
  if (message) expect(outcome.error.message).toMatch(message);
  expect(outcome.queries).toBe(0);
}

describe('dead-letter admin calls check their filter before any SQL', () => {
  it('refuses a negative limit and ids beyond bigint with INVALID_OPTIONS', async () => {
    expectRefused(await attempt((db) => listDeadLetters(db, { limit: -1 })), ['INVALID_OPTIONS'], /limit/);
    expectRefused(await attempt((db) => listDeadLetters(db, { limit: 1.5 })), ['INVALID_OPTIONS'], /limit/);
    expectRefused(await attempt((db) => listDeadLetters(db, { before: '12a' })), ['INVALID_OPTIONS'], /before/);
    expectRefused(await attempt((db) => listDeadLetters(db, { before: '9223372036854775808' })), ['INVALID_OPTIONS'], /before/);
    expectRefused(await attempt((db) => replayDeadLetters(db, { deadIds: ['9223372036854775808'] })), ['INVALID_OPTIONS'], /deadIds/);
    expectRefused(await attempt((db) => replayDeadLetters(db, { deadIds: ['99999999999999999999'] })), ['INVALID_OPTIONS'], /deadIds/);
    expectRefused(await attempt((db) => purgeDeadLetters(db, { olderThanMs: Number.NaN })), ['INVALID_OPTIONS'], /olderThanMs/);
    // An age beyond PostgreSQL's timestamp range (found by the property below).
    expectRefused(await attempt((db) => purgeDeadLetters(db, { olderThanMs: 2.1e14 })), ['INVALID_OPTIONS'], /olderThanMs/);
    expectRefused(await attempt((db) => purgeDeadLetters(db, { reason: 'a\u0000' })), ['INVALID_OPTIONS'], /reason/);
    expectRefused(await attempt((db) => queueStats(db, { queues: 'billing' as unknown as string[] })), ['INVALID_OPTIONS'], /queues/);
    const edge = await attempt((db) => replayDeadLetters(db, { deadIds: ['9223372036854775807'] }));
    expect(edge).toMatchObject({ ok: true, value: 0 });
  });

  it('any filter: a result, or a typed error before any SQL', async () => {
    const anything = fc.anything({ maxDepth: 1, withBigInt: true, withNullPrototype: true });
    const filter = fc.record({
      schema: schemaOption(anything),
      queue: fc.oneof(fc.constantFrom('billing', 'bad queue'), fc.string(), anything),
      topic: fc.oneof(fc.constantFrom('orders.created', 'a..b'), fc.string(), anything),
      reason: fc.oneof(fc.constantFrom('failed', 'unroutable'), fc.string({ unit: 'binary' }), anything),
      olderThanMs: fc.oneof(fc.double(), fc.nat(), anything),
      deadIds: fc.oneof(fc.array(fc.oneof(fc.bigInt({ min: -5n, max: 2n ** 64n }).map(String), fc.string()), { maxLength: 3 }), anything),
      limit: fc.oneof(fc.integer({ min: -5, max: 20_000 }), fc.double(), anything),
    }, { requiredKeys: [] }) as fc.Arbitrary<DeadLetterFilter>;
    const calls = [listDeadLetters, replayDeadLetters, purgeDeadLetters] as const;
    await fc.assert(
      fc.asyncProperty(filter, fc.constantFrom(0, 1, 2), async (f, which) => {
        const outcome = await attempt((db) => calls[which](db, f) as Promise<unknown>);
        if (!outcome.ok) expectRefused(outcome, NAME_CODES);
      }),
      { numRuns: 300 },
    );
  });
});
