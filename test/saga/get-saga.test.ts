import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SagaboxError } from '@sagabox/core';
import { getSaga } from '@sagabox/saga';
import { makeOrderSaga } from '../fixtures/saga-order.mjs';
import { createSagaWorld, waitFor, type SagaWorld } from '../fixtures/saga-world.js';

// A long step timeout: every step has a deadline, and none passes during the test.
const orderSaga = makeOrderSaga({ timeoutMs: 600_000 });
let world: SagaWorld;

beforeAll(async () => {
  world = await createSagaWorld({ definitions: [orderSaga] });
});
afterAll(() => world?.stop());

describe('getSaga: waitingOn and lastFailure', () => {
  it('a running saga waits on its pending step: the command sent, when, how long, and its deadline', async () => {
    const id = randomUUID();
    const shipping = world.services.find((s) => s.name === 'shipping')!;
    await shipping.pool.query('INSERT INTO held (saga_id) VALUES ($1)', [id]);
    await world.start(orderSaga, { orderId: `o-${id}`, amount: 5, holdAt: 'shipping' }, id);
    const running = await waitFor('the ship command sent', async () => {
      const s = await getSaga(world.pool, id);
      return s?.waitingOn?.step === 'ship' ? s : undefined;
    });
    const sent = [...running.history].reverse().find((e) => e.event === 'command_sent')!;
    expect(running.status).toBe('running');
    expect(running.lastFailure).toBeNull();
    expect(running.deadline).toBeInstanceOf(Date);

    const later = new Date(sent.at.getTime() + 1_234);
    const atLater = (await getSaga(world.pool, id, { now: later }))!;
    expect(atLater.waitingOn).toEqual({
      step: 'ship',
      kind: 'command',
      topic: 'shipping.ship',
      attempt: 1,
      sentAt: sent.at,
      waitedMs: 1_234,
      deadline: running.deadline,
      overdueMs: 0,
    });
    const pastDeadline = new Date(running.deadline!.getTime() + 5_000);
    expect((await getSaga(world.pool, id, { now: pastDeadline }))!.waitingOn).toMatchObject({ overdueMs: 5_000, waitedMs: pastDeadline.getTime() - sent.at.getTime() });

    await shipping.pool.query('DELETE FROM held WHERE saga_id = $1', [id]);
    const done = await world.waitForSaga(id, ['completed', 'compensated', 'failed']);
    expect(done.status).toBe('completed');
    const completed = (await getSaga(world.pool, id))!;
    expect(completed.waitingOn).toBeNull();
    expect(completed.lastFailure).toBeNull();
  });

  it("a failed step's reason is the saga's last failure, kept once it is compensated", async () => {
    const id = await world.start(orderSaga, { orderId: `o-${randomUUID()}`, amount: 5, failAt: 'payment' });
    await world.waitForSaga(id, ['compensated', 'completed', 'failed']);
    const saga = (await getSaga(world.pool, id))!;
    expect(saga.status).toBe('compensated');
    expect(saga.waitingOn).toBeNull();
    const failed = saga.history.find((e) => e.step === 'charge' && e.event === 'failed')!;
    expect(saga.lastFailure).toEqual({ step: 'charge', event: 'failed', at: failed.at, reason: 'payment says no' });
  });

  it('rejects a `now` that is not a valid Date with INVALID_OPTIONS', async () => {
    const id = randomUUID();
    const bad = fc.oneof(
      fc.constant(new Date(Number.NaN)),
      fc.string(),
      fc.integer(),
      fc.constant(null),
    );
    await fc.assert(
      fc.asyncProperty(bad, async (now) => {
        const err = await getSaga(world.pool, id, { now: now as unknown as Date }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(SagaboxError);
        expect((err as SagaboxError).code).toBe('INVALID_OPTIONS');
      }),
      { numRuns: 50 },
    );
  });
});
