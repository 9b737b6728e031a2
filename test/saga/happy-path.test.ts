import { randomUUID } from 'node:crypto';
import { Kysely, PostgresDialect } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getSaga, listSagas, startSaga } from '@sagabox/saga';
import { makeOrderSaga } from '../fixtures/saga-order.mjs';
import { createSagaWorld, type SagaWorld } from '../fixtures/saga-world.js';

const orderSaga = makeOrderSaga();
let world: SagaWorld;

beforeAll(async () => {
  world = await createSagaWorld({ definitions: [orderSaga] });
});
afterAll(() => world?.stop());

describe('startSaga + orchestrator: happy path across three services on three databases', () => {
  it('runs reserve, charge, ship and the local confirm, and ends completed', async () => {
    const orderId = `order-${randomUUID()}`;
    const client = await world.pool.connect();
    let id: string;
    try {
      // The business row and the saga start commit together.
      await client.query('BEGIN');
      ({ id } = await startSaga(client, orderSaga, { orderId, amount: 42 }));
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const saga = await world.waitForSaga(id, ['completed', 'compensated', 'failed']);
    expect(saga.status).toBe('completed');
    expect(saga.state).toMatchObject({ orderId, reservationId: expect.stringMatching(/^inventory-/), paymentId: expect.stringMatching(/^payment-/), shipmentId: expect.stringMatching(/^shipping-/) });
    expect(saga.history.map((e) => `${e.step}:${e.event}`)).toEqual([
      '$saga:started',
      'reserve:command_sent',
      'reserve:completed',
      'charge:command_sent',
      'charge:completed',
      'ship:command_sent',
      'ship:completed',
      'confirm:completed',
      '$saga:completed',
    ]);
    const effects = (await world.effects()).filter((e) => e.saga_id === id);
    expect(effects.map((e) => `${e.service}:${e.kind}`)).toEqual(['inventory:do', 'payment:do', 'shipping:do']);
    const { rows } = await world.pool.query('SELECT order_id FROM confirmations WHERE order_id = $1', [orderId]);
    expect(rows).toHaveLength(1);
  });

  it('a start rolled back leaves nothing; a caller-chosen id makes the start idempotent', async () => {
    const rolledBack = randomUUID();
    const client = await world.pool.connect();
    try {
      await client.query('BEGIN');
      await startSaga(client, orderSaga, { orderId: 'rb', amount: 1 }, { id: rolledBack });
      await client.query('ROLLBACK');
      expect(await getSaga(world.pool, rolledBack)).toBeUndefined();

      const id = randomUUID();
      await client.query('BEGIN');
      expect(await startSaga(client, orderSaga, { orderId: `o-${id}`, amount: 1 }, { id })).toEqual({ id, started: true });
      expect(await startSaga(client, orderSaga, { orderId: `o-${id}`, amount: 1 }, { id })).toEqual({ id, started: false });
      await client.query('COMMIT');
      await world.waitForSaga(id, ['completed']);
      const effects = (await world.effects()).filter((e) => e.saga_id === id);
      expect(effects).toHaveLength(3);
    } finally {
      client.release();
    }
  });

  it('starts inside a kysely transaction too', async () => {
    const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: world.pool }) });
    const orderId = `order-${randomUUID()}`;
    const { id } = await db.transaction().execute((trx) => startSaga(trx, orderSaga, { orderId, amount: 7 }));
    expect((await world.waitForSaga(id, ['completed', 'compensated', 'failed'])).status).toBe('completed');
  });

  it('listSagas filters by status and type', async () => {
    const completed = await listSagas(world.pool, { status: 'completed', type: 'order', limit: 10 });
    expect(completed.length).toBeGreaterThanOrEqual(2);
    expect(completed.every((s) => s.status === 'completed' && s.type === 'order' && s.version === 1)).toBe(true);
    expect(await listSagas(world.pool, { type: 'no-such-saga' })).toEqual([]);
  });
});
