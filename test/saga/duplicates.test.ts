import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publish } from '@sagabox/core';
import { getSaga, SAGA_HEADERS, DEFAULT_SAGA_REPLY_TOPIC } from '@sagabox/saga';
import { makeOrderSaga } from '../fixtures/saga-order.mjs';
import { createSagaWorld, waitFor, type SagaWorld } from '../fixtures/saga-world.js';

const orderSaga = makeOrderSaga();
// Known to startSaga but not to the orchestrator.
const orderSagaV9 = makeOrderSaga({ version: 9 });
let world: SagaWorld;
// Each retry of a message of an unknown version is an attempt: tried every 100 ms, a
// reply used up the default 10 on a loaded machine before the orchestrator that knows
// its version came, and was dead-lettered. Both orchestrators here allow more.
const manyAttempts = { maxAttempts: 10_000 };

beforeAll(async () => {
  world = await createSagaWorld({ definitions: [orderSaga] });
  // Short retry for messages of unknown versions, so the test sees several attempts.
  await world.orchestrator!.stop();
  const { createOrchestrator } = await import('@sagabox/saga');
  world.orchestrator = createOrchestrator({
    pool: world.pool, definitions: [orderSaga], pollIntervalMs: 100, unknownVersionRetryDelayMs: 100, retry: manyAttempts,
  });
  await world.orchestrator.start();
});
afterAll(() => world?.stop());

/** Publishes `count` copies of a message to the orchestrator's queue (through the outbox and relay). */
async function inject(headers: Record<string, string>, payload: unknown, options: { id?: string; count?: number } = {}) {
  const ids = [];
  for (let i = 0; i < (options.count ?? 1); i++) {
    const { ids: [id] } = await publish(world.pool, { ...(options.id ? { id: options.id } : {}), topic: DEFAULT_SAGA_REPLY_TOPIC, payload, headers });
    ids.push(id!);
  }
  return ids;
}

async function queueDrained() {
  await waitFor('the orchestrator queue and the outbox to drain', async () => {
    const { rows } = await world.pool.query(
      `SELECT (SELECT count(*) FROM sagabox.outbox) + (SELECT count(*) FROM sagabox.queue_messages WHERE queue = $1 AND run_at <= now()) AS n`,
      [world.orchestrator!.queue],
    );
    return Number(rows[0].n) === 0 ? true : undefined;
  });
}

async function deadLetters() {
  const { rows } = await world.pool.query('SELECT id, reason, error FROM sagabox.dead_letters');
  return rows;
}

describe('duplicate, late and unknown replies', () => {
  it('replaying every reply of a finished saga (new ids, and the same ids) changes nothing', async () => {
    const id = await world.start(orderSaga, { orderId: `o-${randomUUID()}`, amount: 1 });
    const done = await world.waitForSaga(id, ['completed']);
    // Replay each step's reply with the very token it carried (a participant that
    // replied twice), twice each, as new messages.
    const sent = done.history.filter((e) => e.event === 'command_sent');
    expect(sent).toHaveLength(3);
    for (const e of sent) {
      const { token } = e.detail as { token: string };
      await inject({ [SAGA_HEADERS.sagaId]: id, [SAGA_HEADERS.stepToken]: token, [SAGA_HEADERS.step]: e.step }, { type: 'done', id: 'dup' }, { count: 2 });
    }
    const sameId = randomUUID();
    await inject({ [SAGA_HEADERS.sagaId]: id, [SAGA_HEADERS.step]: 'ship' }, { type: 'rejected', reason: 'late' }, { id: sameId });
    await queueDrained();
    await inject({ [SAGA_HEADERS.sagaId]: id, [SAGA_HEADERS.step]: 'ship' }, { type: 'rejected', reason: 'late' }, { id: sameId });
    await queueDrained();
    const after = await getSaga(world.pool, id);
    expect(after?.status).toBe('completed');
    expect(after?.revision).toBe(done.revision);
    expect(after?.state).toEqual(done.state);
    // Each forged reply is in the history as ignored; the re-delivered id was deduplicated by the inbox.
    expect(after!.history.filter((e) => e.event === 'reply_ignored')).toHaveLength(7);
    expect(await deadLetters()).toEqual([]);
  });

  it('a stale reply in the middle of a saga is ignored and the saga goes on', async () => {
    const id = await world.start(orderSaga, { orderId: `o-${randomUUID()}`, amount: 1, slowAt: 'payment', slowMs: 800 });
    await waitFor('the charge command', async () =>
      (await getSaga(world.pool, id))?.history.some((e) => e.step === 'charge' && e.event === 'command_sent') || undefined,
    );
    // A "success" for the step in flight, without its token, and a failure for the step before.
    await inject({ [SAGA_HEADERS.sagaId]: id, [SAGA_HEADERS.step]: 'charge' }, { type: 'done', id: 'forged' });
    await inject({ [SAGA_HEADERS.sagaId]: id, [SAGA_HEADERS.stepToken]: randomUUID(), [SAGA_HEADERS.step]: 'reserve' }, { type: 'rejected', reason: 'x' });
    const saga = await world.waitForSaga(id, ['completed', 'compensated', 'failed']);
    expect(saga.status).toBe('completed');
    expect((saga.state as { paymentId: string }).paymentId).not.toBe('forged');
    expect(saga.history.filter((e) => e.event === 'reply_ignored').map((e) => e.step).sort()).toEqual(['charge', 'reserve']);
  });

  it('replies for unknown sagas and messages without a saga id are acked and ignored', async () => {
    const ghost = randomUUID();
    await inject({ [SAGA_HEADERS.sagaId]: ghost, [SAGA_HEADERS.stepToken]: randomUUID() }, { type: 'done', id: 'x' }, { count: 3 });
    await inject({}, { type: 'done', id: 'x' });
    await inject({ [SAGA_HEADERS.sagaId]: 'not-a-uuid' }, { type: 'done', id: 'x' });
    await queueDrained();
    expect(await getSaga(world.pool, ghost)).toBeUndefined();
    expect(await deadLetters()).toEqual([]);
    // The orchestrator still works.
    const id = await world.start(orderSaga, { orderId: `o-${randomUUID()}`, amount: 1 });
    expect((await world.waitForSaga(id, ['completed'])).status).toBe('completed');
  });

  it('a saga of a version the orchestrator lacks is left untouched (UNKNOWN_SAGA_VERSION) while others go on', async () => {
    const id = await world.start(orderSagaV9, { orderId: `o-${randomUUID()}`, amount: 1 });
    const failures: string[] = [];
    world.orchestrator!.events.on('failed', (e) => failures.push(String(e.error)));
    await waitFor('the reply to be retried', async () => (failures.length >= 2 ? true : undefined));
    expect(failures[0]).toMatch(/^UNKNOWN_SAGA_VERSION: saga .* runs version 9 of "order"/);
    const saga = await getSaga(world.pool, id);
    expect(saga?.status).toBe('running');
    expect(saga?.revision).toBe(0);
    expect(saga?.history.map((e) => `${e.step}:${e.event}`)).toEqual(['$saga:started', 'reserve:command_sent']);
    const other = await world.start(orderSaga, { orderId: `o-${randomUUID()}`, amount: 1 });
    expect((await world.waitForSaga(other, ['completed'])).status).toBe('completed');
    // Once an orchestrator that knows version 9 runs, the saga finishes on version 9.
    await world.orchestrator!.stop();
    const { createOrchestrator } = await import('@sagabox/saga');
    world.orchestrator = createOrchestrator({ pool: world.pool, definitions: [orderSaga, orderSagaV9], pollIntervalMs: 100, retry: manyAttempts });
    await world.orchestrator.start();
    const finished = await world.waitForSaga(id, ['completed']);
    expect(finished.version).toBe(9);
  });
});
