import type pg from 'pg';
import { createRelay, createWorker, Outcome, prepare, publish } from '@sagabox/core';
import { startSaga } from '@sagabox/saga';
import { makeOrderSaga } from '../fixtures/saga-order.mjs';

/** What {@link seedDashboard} created. */
export interface DashboardSeed {
  runningSagaIds: string[];
  compensatedSagaId: string;
}

const orderSaga = makeOrderSaga();

/**
 * A database with something in every panel of the dashboard: queue `orders` with ready
 * and delayed messages, queue `billing` with two dead letters, two half messages
 * awaiting check, two running sagas (their first commands wait in the outbox) and a
 * compensated one with a full step history.
 */
export async function seedDashboard(pool: pg.Pool): Promise<DashboardSeed> {
  await publish(pool, [1, 2, 3].map((n) => ({ topic: 'shop.order', key: `k${n}`, payload: { n } })));
  await publish(pool, { topic: 'shop.order', payload: { n: 4 }, delayMs: 3_600_000 });
  await publish(pool, [{ topic: 'shop.invoice', payload: { n: 5 } }, { topic: 'shop.invoice', payload: { n: 6 } }]);
  const relay = createRelay({ pool, routes: [{ topic: 'shop.order', queue: 'orders' }, { topic: 'shop.invoice', queue: 'billing' }], listen: false });
  await relay.start(); // registers the queues
  while ((await relay.runOnce()) > 0);
  await relay.stop();
  const worker = createWorker({
    pool, queue: 'billing', listen: false, batchSize: 1,
    handler: (m) => Outcome.deadLetter(`card declined for invoice ${(m.payload as { n: number }).n}`),
  });
  await worker.start();
  while ((await worker.runOnce()) > 0);
  await worker.stop();

  await prepare(pool, { topic: 'payments.captured', payload: { amount: 10 } }, { checkAfterMs: 3_600_000 });
  await prepare(pool, { topic: 'payments.captured', payload: { amount: 20 } }, { checkAfterMs: 3_600_000 });

  const runningSagaIds: string[] = [];
  for (const orderId of ['o-1', 'o-2']) runningSagaIds.push((await startSaga(pool, orderSaga, { orderId, amount: 5 })).id);
  // A finished saga, written as the orchestrator would have left it (no participants here).
  const { id: compensatedSagaId } = await startSaga(pool, orderSaga, { orderId: 'o-3', amount: 5, failAt: 'payment' });
  await pool.query(`DELETE FROM sagabox.outbox WHERE headers->>'saga-id' = $1`, [compensatedSagaId]);
  await pool.query(`UPDATE sagabox.sagas SET status = 'compensated', error = 'payment says no', current_step = 0, step_token = NULL, updated_at = now() + interval '2 seconds' WHERE id = $1`, [compensatedSagaId]);
  const events = [['reserve', 'completed'], ['charge', 'command_sent'], ['charge', 'failed'], ['reserve', 'compensation_sent'], ['reserve', 'compensated'], ['$saga', 'compensated']];
  for (const [i, [step, event]] of events.entries()) {
    await pool.query(`INSERT INTO sagabox.saga_steps (saga_id, step, event, at) VALUES ($1, $2, $3, now() + $4 * interval '300 milliseconds')`, [compensatedSagaId, step, event, i + 1]);
  }
  return { runningSagaIds, compensatedSagaId };
}
