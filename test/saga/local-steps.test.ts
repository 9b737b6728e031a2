import { randomUUID } from 'node:crypto';
import { match, P } from 'ts-pattern';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineSaga, StepResult } from '@sagabox/saga';
import { createSagaWorld, type SagaWorld } from '../fixtures/saga-world.js';

type Input = { orderId: string; amount: number; failLocal?: boolean };
type Reply = { type: 'done'; id: string } | { type: 'rejected'; reason: string };

// A local first step (the start leaves it to the orchestrator), a remote step, and a
// local step that can fail; local steps write in the orchestrator's transaction.
const localSaga = defineSaga({
  name: 'local-steps',
  version: 1,
  initialState: (input: Input) => ({ ...input, reservationId: null as string | null }),
  steps: (step) => [
    step.local({
      name: 'open',
      run: async (s, { client }) => {
        await client.query('INSERT INTO confirmations (order_id) VALUES ($1)', [`open-${s.orderId}`]);
        return StepResult.ok(s);
      },
      compensate: async (s, { db }) => {
        await db.deleteFrom('confirmations').where('order_id', '=', `open-${s.orderId}`).execute();
      },
    }),
    step.remote<Reply>({
      name: 'reserve',
      command: (s) => ({ topic: 'inventory.reserve', payload: s }),
      onReply: (reply, s) =>
        match(reply)
          .with({ type: 'done', id: P.string }, (r) => StepResult.ok({ ...s, reservationId: r.id }))
          .with({ type: 'rejected' }, (r) => StepResult.fail(r.reason))
          .exhaustive(),
      compensate: (s) => ({ topic: 'inventory.release', payload: s }),
    }),
    step.local({ name: 'check', run: (s) => (s.failLocal ? StepResult.fail('local check says no') : StepResult.ok(s)) }),
  ],
});

let world: SagaWorld;
beforeAll(async () => {
  world = await createSagaWorld({ definitions: [localSaga] });
});
afterAll(() => world?.stop());

const confirmations = async (orderId: string) =>
  (await world.pool.query('SELECT order_id FROM confirmations WHERE order_id = $1', [`open-${orderId}`])).rows.length;

describe('local steps', () => {
  it('a saga that starts with a local step runs it in the orchestrator and completes', async () => {
    const orderId = randomUUID();
    const id = await world.start(localSaga, { orderId, amount: 3 });
    const saga = await world.waitForSaga(id, ['completed', 'compensated', 'failed']);
    expect(saga.status).toBe('completed');
    expect(saga.history.map((e) => `${e.step}:${e.event}`)).toEqual([
      '$saga:started',
      'open:completed',
      'reserve:command_sent',
      'reserve:completed',
      'check:completed',
      '$saga:completed',
    ]);
    expect(await confirmations(orderId)).toBe(1);
  });

  it('a failing local step compensates the remote and the local steps before it', async () => {
    const orderId = randomUUID();
    const id = await world.start(localSaga, { orderId, amount: 3, failLocal: true });
    const saga = await world.waitForSaga(id, ['completed', 'compensated', 'failed']);
    expect(saga.status).toBe('compensated');
    expect(saga.history.map((e) => `${e.step}:${e.event}`)).toEqual([
      '$saga:started',
      'open:completed',
      'reserve:command_sent',
      'reserve:completed',
      'check:failed',
      'reserve:compensation_sent',
      'reserve:compensated',
      'open:compensated',
      '$saga:compensated',
    ]);
    expect(await confirmations(orderId)).toBe(0);
    const effects = (await world.effects()).filter((e) => e.saga_id === id).map((e) => `${e.step}:${e.kind}`);
    expect(effects).toEqual(['reserve:do', 'reserve:undo']);
  });
});
