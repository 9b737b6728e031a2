import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { SagaboxError, type SagaboxErrorCode } from '@sagabox/core';
import { cancelSaga, defineSaga, getSaga, retrySaga, startSaga, StepResult, type SagaDefinition } from '@sagabox/saga';
import { useDatabase } from '../support/test-pool.js';
import { attemptInRollback, countingClient } from '../support/counting-client.js';

const { pool, count } = await useDatabase();
const p = pool(3);
const raw = await p.connect();
afterAll(() => raw.release());
const counted = countingClient(raw);

interface Input { orderId: unknown; topic?: string }
const saga = defineSaga({
  name: 'validated',
  version: 1,
  initialState: (input: Input) => ({ orderId: input.orderId, topic: input.topic ?? 'inventory.reserve' }),
  steps: (step) => [
    step.remote({
      name: 'reserve',
      command: (s) => ({ topic: s.topic, payload: { orderId: s.orderId } }),
      onReply: (_reply, s) => StepResult.ok(s),
    }),
  ],
});

/** startSaga inside a transaction of its own; on a throw, the statements it ran and whether the transaction still works. */
async function attempt(definition: SagaDefinition, input: unknown, id?: unknown) {
  const outcome = await attemptInRollback(raw, async (db) => {
    const r = await startSaga(db, definition, input, id === undefined ? {} : { id: id as string });
    const [row] = (await raw.query<{ state: unknown }>('SELECT state FROM sagabox.sagas WHERE id = $1', [r.id])).rows;
    return row?.state;
  });
  return outcome.ok ? { ok: true as const, state: outcome.value } : outcome;
}

function expectRefused(outcome: Awaited<ReturnType<typeof attempt>>, codes: SagaboxErrorCode[]): void {
  if (outcome.ok) throw new Error(`expected one of ${codes.join(', ')}, but the saga started`);
  if (!(outcome.error instanceof SagaboxError)) throw new Error(`expected a SagaboxError, got ${String(outcome.error)}`);
  expect(codes).toContain(outcome.error.code);
  expect(outcome.queries).toBe(0);
}

describe('startSaga checks everything before it writes anything', () => {
  it('refuses a definition not made by defineSaga, a bad id, a BigInt or a NUL in the input', async () => {
    expectRefused(await attempt({ ...saga } as SagaDefinition, { orderId: 'o1' }), ['INVALID_OPTIONS']);
    expectRefused(await attempt(undefined as unknown as SagaDefinition, { orderId: 'o1' }), ['INVALID_OPTIONS']);
    expectRefused(await attempt(saga, { orderId: 'o1' }, 42), ['INVALID_OPTIONS']);
    expectRefused(await attempt(saga, { orderId: 'o1' }, 'order-1'), ['INVALID_OPTIONS']);
    expectRefused(await attempt(saga, { orderId: 10n }), ['INVALID_PAYLOAD']);
    expectRefused(await attempt(saga, { orderId: 'a\u0000b' }), ['INVALID_PAYLOAD']);
    expectRefused(await attempt(saga, { orderId: 'a\ud800' }), ['INVALID_PAYLOAD']);
  });

  it('on a pool, a first command that cannot be sent leaves no running saga behind', async () => {
    const id = randomUUID();
    await expect(startSaga(p, saga, { orderId: 'o1', topic: 'not a topic!' }, { id })).rejects.toMatchObject({ code: 'INVALID_TOPIC' });
    expect(await count('SELECT count(*) AS n FROM sagabox.sagas WHERE id = $1', [id])).toBe(0);
    expect(await count('SELECT count(*) AS n FROM sagabox.saga_steps WHERE saga_id = $1', [id])).toBe(0);
  });

  it('any input and id: a saga whose state round-trips, or a typed error before any SQL', async () => {
    const input = fc.record({ orderId: fc.anything({ withBigInt: true, withMap: true, maxDepth: 2 }) });
    const id = fc.option(fc.oneof(fc.uuid(), fc.string(), fc.anything()), { nil: undefined });
    await fc.assert(
      fc.asyncProperty(input, id, async (i, sagaId) => {
        const outcome = await attempt(saga, i, sagaId);
        if (outcome.ok) expect(outcome.state).toEqual(JSON.parse(JSON.stringify({ orderId: i.orderId, topic: 'inventory.reserve' })));
        else expectRefused(outcome, ['INVALID_OPTIONS', 'INVALID_PAYLOAD', 'PAYLOAD_TOO_LARGE']);
      }),
      { numRuns: 200 },
    );
  });
});

describe('saga look-ups with an id that is not a UUID', () => {
  it('getSaga, cancelSaga and retrySaga throw INVALID_OPTIONS before any SQL', async () => {
    for (const bad of ['x', "1' or '1'='1", 42, undefined, 10n]) {
      counted.reset();
      await expect(getSaga(counted.client, bad as string)).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
      await expect(cancelSaga(counted.client, bad as string)).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
      await expect(retrySaga(counted.client, bad as string)).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
      expect(counted.queries).toBe(0);
    }
    expect(await getSaga(p, randomUUID())).toBeUndefined();
    await expect(cancelSaga(p, randomUUID(), { reason: 'a\u0000' })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
  });
});
