import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRelay, type Destination, type Handler } from '@sagabox/core';
import { createOrchestrator, defineSaga, DEFAULT_SAGA_REPLY_TOPIC, getSaga, participant, startSaga, StepResult, type Orchestrator } from '@sagabox/saga';
import { useDatabase } from './test-pool.js';
import { waitFor } from './wait-for.js';

/** How one broker links the two services of {@link describeSagaAcrossBroker}. */
export interface BrokerWiring {
  /** The broker's name in the test titles. */
  broker: string;
  /** A relay destination for messages of `topic`. */
  destination(topic: string): Destination;
  /** The participant's consumer of `inventory.*` commands, running `handler` on `pool`. */
  commandConsumer(pool: pg.Pool, handler: Handler): { start(): Promise<void>; stop(): Promise<void> };
  /** The orchestrator's consumer of replies, inbox identity `consumer`. */
  replyConsumer(pool: pg.Pool, consumer: string, handler: Handler): { start(): Promise<void>; stop(): Promise<void> };
  /** The inbox identity of the command consumer. */
  commandInbox: string;
}

/**
 * Two services on two databases with the broker as the only way between them: commands
 * go out through the orchestrator's relay, the participant consumes them, its replies go
 * out through its own relay and come back through a consumer that runs the
 * orchestrator's transition handler. Declares the suite and its two tests.
 */
export async function describeSagaAcrossBroker(wiring: BrokerWiring): Promise<void> {
  const orchestratorDb = await useDatabase();
  const inventoryDb = await useDatabase();
  const op = orchestratorDb.pool(10);
  const ip = inventoryDb.pool(10);
  await ip.query('CREATE TABLE stock (sku text PRIMARY KEY, qty int NOT NULL CHECK (qty >= 0))');
  await ip.query(`INSERT INTO stock VALUES ('apple', 1)`);

  const orderSaga = defineSaga({
    name: `${wiring.broker.toLowerCase().replace(/\W+/g, '-')}-order`,
    version: 1,
    initialState: (input: { sku: string; failCharge: boolean }) => ({ ...input, reserved: false }),
    steps: (step) => [
      step.remote({
        name: 'reserve',
        command: (s) => ({ topic: 'inventory.reserve', payload: { sku: s.sku } }),
        onReply: (reply: { type: string }, s) => (reply.type === 'reserved' ? StepResult.ok({ ...s, reserved: true }) : StepResult.fail(reply.type)),
        compensate: (s) => ({ topic: 'inventory.release', payload: { sku: s.sku } }),
        onCompensationReply: (reply) => {
          const { type } = reply as { type: string };
          return type === 'released' ? { ok: true } : { ok: false, reason: type };
        },
      }),
      step.local({
        name: 'charge',
        run: async (s) => (s.failCharge ? StepResult.fail('card declined') : StepResult.ok(s)),
      }),
    ],
  });

  const stoppers: { stop(): Promise<void> }[] = [];
  let orchestrator: Orchestrator;
  beforeAll(async () => {
    orchestrator = createOrchestrator({ pool: op, definitions: [orderSaga], pollIntervalMs: 50 });
    // The participant's and the orchestrator's consumers exist before the first command
    // is published: consumers first, relays after.
    const inventory = wiring.commandConsumer(
      ip,
      participant({
        handlers: {
          'inventory.reserve': async (command, { client }) => {
            const { rowCount } = await client.query('UPDATE stock SET qty = qty - 1 WHERE sku = $1 AND qty > 0', [(command.payload as { sku: string }).sku]);
            return { type: rowCount === 1 ? 'reserved' : 'out_of_stock' };
          },
          'inventory.release': async (command, { client }) => {
            await client.query('UPDATE stock SET qty = qty + 1 WHERE sku = $1', [(command.payload as { sku: string }).sku]);
            return { type: 'released' };
          },
        },
      }),
    );
    const replies = wiring.replyConsumer(op, 'saga-orchestrator', orchestrator.handler);
    const orchestratorRelay = createRelay({
      pool: op,
      pollIntervalMs: 50,
      // Control messages (timeouts, wake-ups) stay in the orchestrator's own queue.
      routes: orchestrator.routes.filter((r) => r.topic !== DEFAULT_SAGA_REPLY_TOPIC),
      destinations: [wiring.destination('inventory.*')],
    });
    const inventoryRelay = createRelay({ pool: ip, pollIntervalMs: 50, destinations: [wiring.destination(DEFAULT_SAGA_REPLY_TOPIC)] });
    for (const c of [inventory, replies, orchestratorRelay, inventoryRelay, orchestrator]) {
      await c.start();
      stoppers.push(c);
    }
  });
  afterAll(async () => {
    for (const c of stoppers.reverse()) await c.stop();
  });

  async function runSaga(input: { sku: string; failCharge: boolean }) {
    const client = await op.connect();
    let id: string;
    try {
      await client.query('BEGIN');
      ({ id } = await startSaga(client, orderSaga, input, { id: randomUUID() }));
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    return waitFor('the saga to end', async () => {
      const saga = await getSaga(op, id);
      return saga && ['completed', 'compensated', 'failed'].includes(saga.status) ? saga : undefined;
    }, 30_000);
  }

  const stock = async () => (await ip.query<{ qty: number }>(`SELECT qty FROM stock WHERE sku = 'apple'`)).rows[0]!.qty;

  describe(`a saga participant behind ${wiring.broker}`, () => {
    it(`completes: the command reaches the participant through ${wiring.broker} and its reply comes back the same way`, async () => {
      const saga = await runSaga({ sku: 'apple', failCharge: false });
      expect(saga.status).toBe('completed');
      expect(saga.state).toMatchObject({ reserved: true });
      expect(await stock()).toBe(0);
      await ip.query(`UPDATE stock SET qty = 1 WHERE sku = 'apple'`);
    });

    it(`compensates: the release command and its reply cross ${wiring.broker} too, and the stock is back`, async () => {
      const saga = await runSaga({ sku: 'apple', failCharge: true });
      expect(saga.status).toBe('compensated');
      expect(saga.history.map((e) => `${e.step}:${e.event}`)).toContain('reserve:compensated');
      expect(await stock()).toBe(1);
      expect(await inventoryDb.count(`SELECT count(*) AS n FROM sagabox.inbox WHERE consumer = $1`, [wiring.commandInbox])).toBe(3);
      expect(await orchestratorDb.count(`SELECT count(*) AS n FROM sagabox.inbox WHERE consumer = 'saga-orchestrator'`)).toBeGreaterThanOrEqual(3);
    });
  });
}
