import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getSaga } from '@sagabox/saga';
import { makeOrderSaga } from '../fixtures/saga-order.mjs';
import { createSagaWorld, historyEvents, waitFor, type SagaWorld } from '../fixtures/saga-world.js';

// Short step timeouts; compensations wait longer, since a compensation queues behind
// the slow command at the participant (both are keyed by the saga id).
const orderSaga = makeOrderSaga({ timeoutMs: 600, compensationTimeoutMs: 15_000 });
// Version 2 sends a command again when it times out, up to 3 sends.
const retryingSaga = makeOrderSaga({ version: 2, timeoutMs: 600, compensationTimeoutMs: 15_000, retry: { maxAttempts: 3 } });
let world: SagaWorld;

beforeAll(async () => {
  world = await createSagaWorld({ definitions: [orderSaga, retryingSaga] });
});
afterAll(() => world?.stop());

const events = historyEvents;

describe('saga step timeouts', () => {
  it('a step that times out is compensated with the steps before it; its late reply changes nothing', async () => {
    const id = await world.start(orderSaga, { orderId: `o-${randomUUID()}`, amount: 5, slowAt: 'payment', slowMs: 1_800 });
    const saga = await world.waitForSaga(id, ['compensated', 'completed', 'failed']);
    expect(saga.status).toBe('compensated');
    expect(saga.error).toBe('step "charge" timed out after 1 attempt(s)');
    expect(events(saga)).toEqual([
      '$saga:started',
      'reserve:command_sent',
      'reserve:completed',
      'charge:command_sent',
      'charge:timed_out',
      // The charge may have happened (it did, late): its compensation is sent too.
      'charge:compensation_sent',
      'charge:reply_ignored',
      'charge:compensated',
      'reserve:compensation_sent',
      'reserve:compensated',
      '$saga:compensated',
    ]);
    // The late reply did not advance the saga: shipping never ran.
    const effects = (await world.effects()).filter((e) => e.saga_id === id).map((e) => `${e.step}:${e.kind}`);
    expect(effects).toEqual(['reserve:do', 'reserve:undo', 'charge:do', 'charge:undo']);
    expect((saga.state as { paymentId: unknown }).paymentId).toBeNull();
  });

  it('timeouts of steps that replied in time are ignored', async () => {
    const id = await world.start(orderSaga, { orderId: `o-${randomUUID()}`, amount: 5 });
    const saga = await world.waitForSaga(id, ['completed', 'compensated', 'failed']);
    expect(saga.status).toBe('completed');
    // Let every step's timeout (600 ms) fire, then check that nothing changed.
    await new Promise((r) => setTimeout(r, 1_200));
    const after = await getSaga(world.pool, id);
    expect(after?.revision).toBe(saga.revision);
    expect(after?.history).toHaveLength(saga.history.length);
    await waitFor('the due messages of the orchestrator queue to drain', async () => {
      const { rows } = await world.pool.query('SELECT count(*)::int AS n FROM sagabox.queue_messages WHERE queue = $1 AND run_at <= now()', [world.orchestrator!.queue]);
      return rows[0].n === 0 ? true : undefined;
    });
  });

  it('a step with retry is sent again on timeout; the reply to the latest send is applied', async () => {
    // The first send is slow (times out); the second is handled at once.
    const id = await world.start(retryingSaga, { orderId: `o-${randomUUID()}`, amount: 5, slowAt: 'payment', slowMs: 1_000, slowAttempts: 1 });
    const saga = await world.waitForSaga(id, ['completed', 'compensated', 'failed']);
    expect(saga.status).toBe('completed');
    const charge = saga.history.filter((e) => e.step === 'charge').map((e) => `${e.event}:${(e.detail as { attempt?: number } | null)?.attempt ?? ''}`);
    expect(charge).toEqual(['command_sent:1', 'timed_out:1', 'command_sent:2', 'reply_ignored:', 'completed:2']);
    // The participant saw both sends (a real one deduplicates by saga id and step).
    const sends = (await world.effects()).filter((e) => e.saga_id === id && e.step === 'charge').map((e) => e.attempt);
    expect(sends).toEqual([1, 2]);
  });
});
