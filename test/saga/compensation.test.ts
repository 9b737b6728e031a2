import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSagaboxError } from '@sagabox/core';
import { cancelSaga, getSaga, retrySaga } from '@sagabox/saga';
import { makeOrderSaga } from '../fixtures/saga-order.mjs';
import { createSagaWorld, historyEvents, type SagaWorld } from '../fixtures/saga-world.js';

const orderSaga = makeOrderSaga({ compensationRetry: { maxAttempts: 2, delayMs: 50 } });
let world: SagaWorld;

beforeAll(async () => {
  world = await createSagaWorld({ definitions: [orderSaga] });
});
afterAll(() => world?.stop());

const events = historyEvents;
const effectsOf = async (id: string) => (await world.effects()).filter((e) => e.saga_id === id).map((e) => `${e.step}:${e.kind}`);

describe('saga compensation', () => {
  it('a failure in step 3 compensates step 2, then step 1, and the saga ends compensated', async () => {
    const id = await world.start(orderSaga, { orderId: `o-${randomUUID()}`, amount: 5, failAt: 'shipping' });
    const saga = await world.waitForSaga(id, ['compensated', 'completed', 'failed']);
    expect(saga.status).toBe('compensated');
    expect(saga.error).toBe('shipping says no');
    expect(events(saga)).toEqual([
      '$saga:started',
      'reserve:command_sent',
      'reserve:completed',
      'charge:command_sent',
      'charge:completed',
      'ship:command_sent',
      'ship:failed',
      'charge:compensation_sent',
      'charge:compensated',
      'reserve:compensation_sent',
      'reserve:compensated',
      '$saga:compensated',
    ]);
    // In each participant's own order: done, then undone; shipping never did anything.
    expect(await effectsOf(id)).toEqual(['reserve:do', 'reserve:undo', 'charge:do', 'charge:undo']);
    const undoOrder = (await world.effects()).filter((e) => e.saga_id === id && e.kind === 'undo');
    expect(undoOrder).toHaveLength(2);
    const { rows } = await world.pool.query('SELECT 1 FROM confirmations WHERE order_id = $1', [saga.state && (saga.state as { orderId: string }).orderId]);
    expect(rows).toHaveLength(0);
  });

  it('a failure in step 1 needs no compensation', async () => {
    const id = await world.start(orderSaga, { orderId: `o-${randomUUID()}`, amount: 5, failAt: 'inventory' });
    const saga = await world.waitForSaga(id, ['compensated', 'completed', 'failed']);
    expect(saga.status).toBe('compensated');
    expect(events(saga)).toEqual(['$saga:started', 'reserve:command_sent', 'reserve:failed', '$saga:compensated']);
    expect(await effectsOf(id)).toEqual([]);
  });

  it('a compensation that keeps failing is retried, then the saga is failed; retrySaga resumes it', async () => {
    const id = randomUUID();
    const payment = world.services.find((s) => s.name === 'payment')!;
    await payment.pool.query('INSERT INTO blocked_undo (saga_id) VALUES ($1)', [id]);
    await world.start(orderSaga, { orderId: `o-${id}`, amount: 5, failAt: 'shipping' }, id);
    const failed = await world.waitForSaga(id, ['failed', 'compensated', 'completed']);
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/^COMPENSATION_FAILED: compensation of step "charge" failed after 2 attempt/);
    expect(events(failed).filter((e) => e.startsWith('charge:compensation'))).toEqual([
      'charge:compensation_sent',
      'charge:compensation_failed',
      'charge:compensation_sent',
      'charge:compensation_failed',
    ]);
    // Step 1 was not compensated before step 2's compensation succeeded.
    expect(await effectsOf(id)).toEqual(['reserve:do', 'charge:do']);

    await expect(cancelSaga(world.pool, id)).rejects.toSatisfy((e) => isSagaboxError(e, 'SAGA_CONFLICT'));
    await payment.pool.query('DELETE FROM blocked_undo WHERE saga_id = $1', [id]);
    await retrySaga(world.pool, id);
    const saga = await world.waitForSaga(id, ['compensated']);
    expect(events(saga).slice(-6)).toEqual([
      '$saga:retried',
      'charge:compensation_sent',
      'charge:compensated',
      'reserve:compensation_sent',
      'reserve:compensated',
      '$saga:compensated',
    ]);
    expect(await effectsOf(id)).toEqual(['reserve:do', 'reserve:undo', 'charge:do', 'charge:undo']);
    await expect(retrySaga(world.pool, id)).rejects.toSatisfy((e) => isSagaboxError(e, 'SAGA_CONFLICT'));
    await expect(retrySaga(world.pool, randomUUID())).rejects.toSatisfy((e) => isSagaboxError(e, 'NOT_FOUND'));
  });

  it('cancelSaga compensates the step in flight and the completed ones, in reverse order', async () => {
    const id = await world.start(orderSaga, { orderId: `o-${randomUUID()}`, amount: 5, slowAt: 'payment', slowMs: 1_500 });
    await world.waitForSaga(id, ['running']).then(async () => {
      // Wait until the charge command is in flight.
      for (;;) {
        const s = await getSaga(world.pool, id);
        if (s?.history.some((e) => e.step === 'charge' && e.event === 'command_sent')) break;
        await new Promise((r) => setTimeout(r, 20));
      }
    });
    await cancelSaga(world.pool, id, { reason: 'customer changed their mind' });
    const saga = await world.waitForSaga(id, ['compensated', 'completed', 'failed']);
    expect(saga.status).toBe('compensated');
    expect(saga.error).toBe('cancelled: customer changed their mind');
    const e = events(saga);
    expect(e.slice(e.indexOf('$saga:cancelled'))).toEqual([
      '$saga:cancelled',
      'charge:compensation_sent',
      // The charge's own reply arrives after the cancel: ignored.
      'charge:reply_ignored',
      'charge:compensated',
      'reserve:compensation_sent',
      'reserve:compensated',
      '$saga:compensated',
    ]);
    // The participant handled the charge before its compensation (same key, in order).
    expect(await effectsOf(id)).toEqual(['reserve:do', 'reserve:undo', 'charge:do', 'charge:undo']);
  });
});
