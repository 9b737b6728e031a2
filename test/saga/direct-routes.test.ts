import { afterAll, describe, expect, it } from 'vitest';
import { addDirectRoute } from '@sagabox/core/admin';
import { createWorker, Outcome } from '@sagabox/core';
import { createOrchestrator, defineSaga, getSaga, participant, startSaga, StepResult } from '@sagabox/saga';
import { inTransaction } from '../support/in-transaction.js';
import { useDatabase } from '../support/test-pool.js';
import { waitFor } from '../support/wait-for.js';

// Orchestrator and participant in one database: direct routes carry the commands, the
// replies and the step timeouts, and no relay runs at all.
const { pool, count } = await useDatabase();
const p = pool(12);

type Reply = { type: 'done' };
const steps = ['reserve', 'charge', 'ship'] as const;
// The same saga twice: one whose steps a loaded machine answers in time whatever the
// queue ahead of them (20 sagas on a worker of 2 slots), one whose silent step times out.
const defineOrder = (name: string, timeoutMs: number) => defineSaga({
  name,
  version: 1,
  initialState: (input: { n: number; stall?: 'charge' }) => ({ ...input, done: [] as string[] }),
  steps: (step) =>
    steps.map((name) =>
      step.remote<Reply>({
        name,
        command: (s) => ({ topic: `direct.${name}`, payload: { n: s.n, stall: s.stall } }),
        onReply: (_reply, s) => StepResult.ok({ ...s, done: [...s.done, name] }),
        compensate: (s) => ({ topic: `direct.undo-${name}`, payload: { n: s.n } }),
        timeoutMs,
      }),
    ),
});
const saga = defineOrder('same-db-order', 60_000);
const stallingSaga = defineOrder('same-db-stalling-order', 2_000);

const handled: string[] = [];
const handlers = Object.fromEntries(
  steps.flatMap((name) => [
    [`direct.${name}`, async (m: { payload: { stall?: string } }) => {
      handled.push(name);
      // A participant that never answers: the step must time out.
      return m.payload.stall === name ? Outcome.deadLetter('stalled on purpose') : { type: 'done' as const };
    }],
    [`direct.undo-${name}`, async () => (handled.push(`undo-${name}`), { type: 'done' as const })],
  ]),
);

const orchestrator = createOrchestrator({ pool: p, definitions: [saga, stallingSaga], concurrency: 2, batchSize: 10, pollIntervalMs: 50 });
for (const route of orchestrator.routes) await addDirectRoute(p, route);
await addDirectRoute(p, { topic: 'direct.#', queue: 'same-db-participant' });
const worker = createWorker({ pool: p, queue: 'same-db-participant', handler: participant({ handlers }), concurrency: 2, pollIntervalMs: 50 });
await Promise.all([orchestrator.start(), worker.start()]);
afterAll(() => Promise.all([orchestrator.stop(), worker.stop()]));

const start = async (input: { n: number; stall?: 'charge' }, definition = saga): Promise<string> =>
  (await inTransaction(p, (c) => startSaga(c, definition, input))).id;
const finished = (id: string) =>
  waitFor(`saga ${id} finished`, async () => {
    const s = await getSaga(p, id);
    return s && ['completed', 'compensated', 'failed'].includes(s.status) ? s : undefined;
  }, 60_000, 25);

describe('sagas in one database, on direct routes', () => {
  it('complete with no relay, and nothing passes through the outbox', async () => {
    const ids = await Promise.all(Array.from({ length: 20 }, (_, n) => start({ n })));
    for (const id of ids) expect((await finished(id)).status).toBe('completed');
    expect(await count('SELECT count(*) AS n FROM sagabox.outbox')).toBe(0);
  });

  it('time a silent step out through a delayed message on the direct route, and compensate', async () => {
    const id = await start({ n: 99, stall: 'charge' }, stallingSaga);
    const s = await finished(id);
    expect(s.status).toBe('compensated');
    expect(s.history.map((e) => `${e.step}:${e.event}`)).toEqual(expect.arrayContaining(['charge:timed_out', 'reserve:compensated']));
    expect(await count('SELECT count(*) AS n FROM sagabox.outbox')).toBe(0);
  });
});
