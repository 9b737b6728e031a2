import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getSaga } from '@sagabox/saga';
import { makeOrderSaga } from '../fixtures/saga-order.mjs';
import { createSagaWorld, historyEvents, waitFor, type SagaWorld } from '../fixtures/saga-world.js';

// Version 2 sends a command again when it times out, up to 3 sends. Its timeout leaves
// a send time to be answered on a loaded machine: the test holds the first send until
// it timed out (at 600 ms, the second send often timed out too).
const retryingSaga = makeOrderSaga({ version: 2, timeoutMs: 10_000, compensationTimeoutMs: 15_000, retry: { maxAttempts: 3 } });
// Version 3's steps are answered within their timeout on a loaded machine (at 600 ms the
// reply of a step that was not held came too late: the wrong step timed out); a step that
// must time out is held at its participant until it did. Compensations wait longer: one
// queues behind the held command at the participant (both are keyed by the saga id).
const answeredSaga = makeOrderSaga({ version: 3, timeoutMs: 10_000, compensationTimeoutMs: 15_000 });
let world: SagaWorld;

beforeAll(async () => {
  world = await createSagaWorld({ definitions: [answeredSaga, retryingSaga] });
});
afterAll(() => world?.stop());

const events = historyEvents;

describe('saga step timeouts', () => {
  it('a step that times out is compensated with the steps before it; its late reply changes nothing', async () => {
    // The charge is held at the participant until it timed out, then answered (late).
    const id = randomUUID();
    const payment = world.services.find((s) => s.name === 'payment')!;
    await payment.pool.query('INSERT INTO held (saga_id) VALUES ($1)', [id]);
    await world.start(answeredSaga, { orderId: `o-${id}`, amount: 5, holdAt: 'payment' }, id);
    await waitFor('the charge timed out', async () => ((await getSaga(world.pool, id))?.history.some((e) =>
      e.step === 'charge' && e.event === 'timed_out') ? true : undefined), 40_000);
    await payment.pool.query('DELETE FROM held WHERE saga_id = $1', [id]);
    const saga = await world.waitForSaga(id, ['compensated', 'completed', 'failed'], 40_000);
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
    const id = await world.start(answeredSaga, { orderId: `o-${randomUUID()}`, amount: 5 });
    const saga = await world.waitForSaga(id, ['completed', 'compensated', 'failed']);
    expect(saga.status).toBe('completed');
    // Let every step's timeout (10 s after its send, before the saga completed) fire, then
    // check that nothing changed.
    await new Promise((r) => setTimeout(r, 10_600));
    const after = await getSaga(world.pool, id);
    expect(after?.revision).toBe(saga.revision);
    expect(after?.history).toHaveLength(saga.history.length);
    await waitFor('the due messages of the orchestrator queue to drain', async () => {
      const { rows } = await world.pool.query('SELECT count(*)::int AS n FROM sagabox.queue_messages WHERE queue = $1 AND run_at <= now()', [world.orchestrator!.queue]);
      return rows[0].n === 0 ? true : undefined;
    });
  });

  it('a step with retry is sent again on timeout; the reply to the latest send is applied', async () => {
    // The first send is held at the participant until it timed out and the command was
    // sent again; then both are handled (the second queues behind the first: same key).
    const id = randomUUID();
    const payment = world.services.find((s) => s.name === 'payment')!;
    await payment.pool.query('INSERT INTO held (saga_id) VALUES ($1)', [id]);
    await world.start(retryingSaga, { orderId: `o-${id}`, amount: 5, holdAt: 'payment' }, id);
    await waitFor('the charge sent again', async () => ((await getSaga(world.pool, id))?.history.some((e) =>
      e.step === 'charge' && e.event === 'command_sent' && (e.detail as { attempt?: number } | null)?.attempt === 2) ? true : undefined), 40_000);
    await payment.pool.query('DELETE FROM held WHERE saga_id = $1', [id]);
    const saga = await world.waitForSaga(id, ['completed', 'compensated', 'failed'], 40_000);
    expect(saga.status).toBe('completed');
    const charge = saga.history.filter((e) => e.step === 'charge').map((e) => `${e.event}:${(e.detail as { attempt?: number } | null)?.attempt ?? ''}`);
    expect(charge).toEqual(['command_sent:1', 'timed_out:1', 'command_sent:2', 'reply_ignored:', 'completed:2']);
    // The participant saw both sends (a real one deduplicates by saga id and step).
    const sends = (await world.effects()).filter((e) => e.saga_id === id && e.step === 'charge').map((e) => e.attempt);
    expect(sends).toEqual([1, 2]);
  });
});
