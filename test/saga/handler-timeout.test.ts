import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSagaboxError } from '@sagabox/core';
import { createOrchestrator, defineSaga, StepResult, type Orchestrator } from '@sagabox/saga';
import { createSagaWorld, historyEvents, type SagaWorld } from '../fixtures/saga-world.js';

type Input = { orderId: string };

// A local step that hangs on its first run, ignoring its signal, after a write that
// must not commit; on its second run it finishes.
const runs: { attempt: number; aborted: unknown }[] = [];
const hangingSaga = defineSaga({
  name: 'hanging-local-step',
  version: 1,
  initialState: (input: Input) => input,
  steps: (step) => [
    step.local({
      name: 'open',
      run: async (s, { client, signal }) => {
        const run = { attempt: runs.length + 1, aborted: undefined as unknown };
        runs.push(run);
        signal.addEventListener('abort', () => (run.aborted = signal.reason));
        await client.query('INSERT INTO confirmations (order_id) VALUES ($1)', [`open-${s.orderId}`]);
        if (run.attempt === 1) await new Promise(() => {});
        return StepResult.ok(s);
      },
    }),
  ],
});

let world: SagaWorld;
let orchestrator: Orchestrator;
beforeAll(async () => {
  world = await createSagaWorld({ definitions: [hangingSaga], orchestrator: false });
  orchestrator = createOrchestrator({
    pool: world.pool, definitions: [hangingSaga], pollIntervalMs: 50, handlerTimeoutMs: 400, retry: { baseDelayMs: 20, maxDelayMs: 50 },
  });
  await orchestrator.start();
});
afterAll(async () => {
  await orchestrator?.stop();
  await world?.stop();
});

describe('orchestrator handler timeout', () => {
  it('times out a hung local step, rolls its transition back, and completes the saga on the retry', async () => {
    const failures: unknown[] = [];
    orchestrator.events.on('failed', (e) => failures.push(e.error));
    const orderId = randomUUID();
    const id = await world.start(hangingSaga, { orderId });
    const saga = await world.waitForSaga(id, ['completed', 'compensated', 'failed']);
    expect(saga.status).toBe('completed');
    expect(historyEvents(saga)).toEqual(['$saga:started', 'open:completed', '$saga:completed']);
    expect(runs.map((r) => r.attempt)).toEqual([1, 2]);
    expect(isSagaboxError(runs[0]!.aborted, 'HANDLER_TIMEOUT')).toBe(true);
    expect(runs[1]!.aborted).toBeUndefined();
    expect(failures.some((e) => /HANDLER_TIMEOUT/.test(String(e)))).toBe(true);
    // The hung run's write went with its transaction: one confirmation, the second run's.
    const { rows } = await world.pool.query('SELECT count(*)::int AS n FROM confirmations WHERE order_id = $1', [`open-${orderId}`]);
    expect(rows[0].n).toBe(1);
  });
});
