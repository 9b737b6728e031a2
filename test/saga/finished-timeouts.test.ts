import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorker } from '@sagabox/core';
import { addDirectRoute } from '@sagabox/core/admin';
import {
  cancelSaga, createOrchestrator, DEFAULT_SAGA_REPLY_TOPIC, defineSaga, getSaga, participant, retrySaga, SAGA_HEADERS, startSaga, StepResult,
} from '@sagabox/saga';
import { useDatabase } from '../support/test-pool.js';
import { makeOrderSaga } from '../fixtures/saga-order.mjs';
import { createSagaWorld, historyEvents, waitFor, type SagaWorld } from '../fixtures/saga-world.js';

// Step timeouts far longer than the tests: every timeout sent waits in the orchestrator's
// queue (or the outbox) unless the transition that supersedes its step deletes it.
const orderSaga = makeOrderSaga({ timeoutMs: 600_000 });
let world: SagaWorld;

beforeAll(async () => {
  world = await createSagaWorld({ definitions: [orderSaga] });
});
afterAll(() => world?.stop());

/** Timeout messages of saga `id` anywhere in the orchestrator's database: queue and outbox. */
async function timeoutsOf(id: string): Promise<number> {
  const { rows } = await world.pool.query<{ n: number }>(
    `SELECT (SELECT count(*) FROM sagabox.queue_messages WHERE headers->>$2 = $1 AND payload->>'kind' = 'timeout')
          + (SELECT count(*) FROM sagabox.outbox WHERE headers->>$2 = $1 AND payload->>'kind' = 'timeout') AS n`,
    [id, SAGA_HEADERS.sagaId],
  );
  return Number(rows[0]!.n);
}

async function waitForEvent(id: string, event: string, times = 1): Promise<void> {
  await waitFor(`saga ${id}: ${event} x${times}`, async () => {
    const s = await getSaga(world.pool, id);
    return s && historyEvents(s).filter((e) => e === event).length >= times ? true : undefined;
  });
}

describe('timeout messages of finished sagas', () => {
  it('a completed saga leaves no timeout message (three steps sent three)', async () => {
    const id = await world.start(orderSaga, { orderId: `o-${randomUUID()}`, amount: 5 });
    const saga = await world.waitForSaga(id, ['completed', 'compensated', 'failed']);
    expect(saga.status).toBe('completed');
    expect(historyEvents(saga).filter((e) => e.endsWith(':command_sent'))).toHaveLength(3);
    expect(await timeoutsOf(id)).toBe(0);
  });

  it('a saga compensated after a failed step leaves none', async () => {
    const id = await world.start(orderSaga, { orderId: `o-${randomUUID()}`, amount: 5, failAt: 'shipping' });
    const saga = await world.waitForSaga(id, ['completed', 'compensated', 'failed']);
    expect(saga.status).toBe('compensated');
    expect(historyEvents(saga).filter((e) => e.endsWith(':compensation_sent'))).toHaveLength(2);
    expect(await timeoutsOf(id)).toBe(0);
  });

  it('a cancelled saga leaves none', async () => {
    const id = await world.start(orderSaga, { orderId: `o-${randomUUID()}`, amount: 5, slowAt: 'payment', slowMs: 1_500 });
    await waitForEvent(id, 'charge:command_sent');
    await cancelSaga(world.pool, id, { reason: 'test' });
    const saga = await world.waitForSaga(id, ['compensated', 'completed', 'failed']);
    expect(saga.status).toBe('compensated');
    expect(historyEvents(saga)).toContain('$saga:cancelled');
    expect(await timeoutsOf(id)).toBe(0);
  });
});

describe('retrySaga on a running saga', () => {
  it("sends the pending step's command again with a fresh token; the earlier send's reply and timeout change nothing", async () => {
    const id = await world.start(orderSaga, { orderId: `o-${randomUUID()}`, amount: 5, slowAt: 'payment', slowMs: 2_000 });
    await waitForEvent(id, 'charge:command_sent');
    await retrySaga(world.pool, id);
    await waitForEvent(id, 'charge:command_sent', 2);
    // The first send's timeout went with the send it guarded: one timeout, the new send's.
    const running = await getSaga(world.pool, id);
    if (running!.status === 'running') expect(await timeoutsOf(id)).toBe(1);
    const saga = await world.waitForSaga(id, ['completed', 'compensated', 'failed']);
    expect(saga.status).toBe('completed');
    expect(historyEvents(saga).filter((e) => e.startsWith('charge:') || e === '$saga:retried')).toEqual([
      'charge:command_sent', '$saga:retried', 'charge:command_sent', 'charge:reply_ignored', 'charge:completed',
    ]);
    expect(await timeoutsOf(id)).toBe(0);
    // A finished saga cannot be retried.
    await expect(retrySaga(world.pool, id)).rejects.toMatchObject({ code: 'SAGA_CONFLICT' });
  });
});

describe('a timeout the relay has not moved yet', () => {
  it('is deleted from the outbox when the saga finishes', async () => {
    const { pool } = await useDatabase();
    const p = pool(6);
    const quick = defineSaga({
      name: 'quick',
      version: 1,
      initialState: (input: { n: number }) => input,
      steps: (step) => [step.remote({ name: 'only', command: (s) => ({ topic: 'quick.do', payload: s }), onReply: (_r, s) => StepResult.ok(s), timeoutMs: 600_000 })],
    });
    const orchestrator = createOrchestrator({ pool: p, definitions: [quick], listen: false });
    // Commands and replies go by direct routes; the control topic has none and no relay
    // runs, so the step's timeout stays in the outbox.
    await addDirectRoute(p, { topic: 'quick.do', queue: 'quick-participant' });
    await addDirectRoute(p, { topic: DEFAULT_SAGA_REPLY_TOPIC, queue: orchestrator.queue });
    const worker = createWorker({ pool: p, queue: 'quick-participant', listen: false, handler: participant({ handlers: { 'quick.do': async () => ({ type: 'done' }) } }) });
    const { id } = await startSaga(p, quick, { n: 1 });
    expect((await p.query(`SELECT count(*)::int AS n FROM sagabox.outbox WHERE headers->>$2 = $1 AND payload->>'kind' = 'timeout'`, [id, SAGA_HEADERS.sagaId])).rows[0].n).toBe(1);
    await worker.runOnce();
    await orchestrator.runOnce();
    await worker.stop();
    await orchestrator.stop();
    expect((await getSaga(p, id))!.status).toBe('completed');
    expect((await p.query(`SELECT count(*)::int AS n FROM sagabox.outbox WHERE payload->>'kind' = 'timeout'`)).rows[0].n).toBe(0);
  });
});
