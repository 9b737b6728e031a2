/**
 * Saga throughput: completed three-step sagas per second with the participants in the
 * same process and database (through the relay, or on direct routes), and the p50/p99 time from start to completion. Times are
 * the database's own (sagas.created_at and updated_at), so nothing is instrumented.
 * Sagabox only: the peers have no sagas.
 */
import pg from 'pg';
import { addDirectRoute } from '@sagabox/core/admin';
import { createRelay, createWorker } from '@sagabox/core';
import { migrateUp } from '@sagabox/core/migrate';
import { createOrchestrator, defineSaga, participant, startSaga, StepResult } from '@sagabox/saga';

import type { SagaResult } from '../report/results.js';

export type SagaReport = Omit<SagaResult, 'error'>;

type Reply = { type: 'done' };
const steps = ['reserve', 'charge', 'ship'] as const;

const benchSaga = defineSaga({
  name: 'bench-order',
  version: 1,
  initialState: (input: { n: number }) => ({ n: input.n, done: [] as string[] }),
  steps: (step) =>
    steps.map((name) =>
      step.remote<Reply>({
        name,
        command: (s) => ({ topic: `bench.${name}`, payload: { n: s.n } }),
        onReply: (_reply, s) => StepResult.ok({ ...s, done: [...s.done, name] }),
        compensate: (s) => ({ topic: `bench.undo-${name}`, payload: { n: s.n } }),
        timeoutMs: 120_000,
      }),
    ),
});

/**
 * Starts `count` sagas (100 per transaction) and waits for them all to complete. With
 * `direct`, the orchestrator's routes and the commands' are direct routes (publish
 * writes the queue row, no relay runs); otherwise a relay carries them.
 */
export async function runSagaThroughput(url: string, count: number, timeoutMs: number, direct = false): Promise<SagaReport> {
  await migrateUp({ connectionString: url });
  const pool = new pg.Pool({ connectionString: url, max: 16 });
  pool.on('error', () => {});
  const handlers = Object.fromEntries(
    steps.flatMap((name) => [
      [`bench.${name}`, async () => ({ type: 'done' as const })],
      [`bench.undo-${name}`, async () => ({ type: 'done' as const })],
    ]),
  );
  const orchestrator = createOrchestrator({ pool, definitions: [benchSaga], concurrency: 2, batchSize: 50 });
  const participants = createWorker({ pool, queue: 'bench-participants', handler: participant({ handlers }), concurrency: 2, batchSize: 50 });
  const routes = [...orchestrator.routes, { topic: 'bench.#', queue: 'bench-participants' }];
  if (direct) for (const route of routes) await addDirectRoute(pool, route);
  const relay = direct ? undefined : createRelay({ pool, routes });
  await Promise.all([relay?.start(), participants.start(), orchestrator.start()]);
  const began = performance.now();
  try {
    for (let i = 0; i < count; i += 100) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        for (let n = i; n < Math.min(count, i + 100); n++) await startSaga(client, benchSaga, { n });
        await client.query('COMMIT');
      } finally {
        client.release();
      }
    }
    const deadline = Date.now() + timeoutMs;
    let timedOut = false;
    for (;;) {
      const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM sagabox.sagas WHERE status IN ('running', 'compensating')`);
      if (rows[0]!.n === 0) break;
      if (Date.now() > deadline) {
        timedOut = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const elapsedMs = performance.now() - began;
    const { rows } = await pool.query<{ completed: number; p50: number | null; p99: number | null }>(
      `SELECT count(*)::int AS completed,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM updated_at - created_at) * 1000) AS p50,
              percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM updated_at - created_at) * 1000) AS p99
       FROM sagabox.sagas WHERE status = 'completed'`,
    );
    const r = rows[0]!;
    return {
      sagas: count,
      completed: r.completed,
      elapsedMs,
      sagasPerSecond: (r.completed / elapsedMs) * 1000,
      p50Ms: r.p50 ?? Number.NaN,
      p99Ms: r.p99 ?? Number.NaN,
      timedOut,
    };
  } finally {
    await Promise.all([orchestrator.stop(), participants.stop(), relay?.stop()]);
    await pool.end();
  }
}
