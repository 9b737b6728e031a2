import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRelay, type Relay } from '@sagabox/core';
import { createOrchestrator, defineSaga, DEFAULT_SAGA_REPLY_TOPIC, getSaga, participant, startSaga, StepResult, type Orchestrator } from '@sagabox/saga';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { createJetStreamConsumer, createJetStreamDestination, type JetStreamConsumer } from '@sagabox/nats';
import { useDatabase } from '../support/test-pool.js';
import { waitFor } from '../support/wait-for.js';
import { startNatsServer } from '../support/nats-server.js';

// Two services on two databases; NATS JetStream is the only way between them: commands
// go out through the orchestrator's relay to a stream, the participant consumes them
// through its durable consumer, its replies go out through its own relay and come back
// through a durable consumer that runs the orchestrator's transition handler.
const orchestratorDb = await useDatabase();
const inventoryDb = await useDatabase();
const op = orchestratorDb.pool(10);
const ip = inventoryDb.pool(10);
await ip.query('CREATE TABLE stock (sku text PRIMARY KEY, qty int NOT NULL CHECK (qty >= 0))');
await ip.query(`INSERT INTO stock VALUES ('apple', 1)`);
const server = await startNatsServer();
const nc = await connect({ servers: server.url });
await (await jetstreamManager(nc)).streams.add({ name: 'SAGA', subjects: ['inventory.*', DEFAULT_SAGA_REPLY_TOPIC] });
await nc.close();
const commandConsumer = 'inventory';

const orderSaga = defineSaga({
  name: 'nats-order',
  version: 1,
  initialState: (input: { sku: string; failCharge: boolean }) => ({ ...input, reserved: false }),
  steps: (step) => [
    step.remote({
      name: 'reserve',
      command: (s) => ({ topic: 'inventory.reserve', payload: { sku: s.sku } }),
      onReply: (reply: { type: string }, s) => (reply.type === 'reserved' ? StepResult.ok({ ...s, reserved: true }) : StepResult.fail(reply.type)),
      compensate: (s) => ({ topic: 'inventory.release', payload: { sku: s.sku } }),
      onCompensationReply: (reply: { type: string }) => (reply.type === 'released' ? { ok: true } : { ok: false, reason: reply.type }),
    }),
    step.local({
      name: 'charge',
      run: async (s) => (s.failCharge ? StepResult.fail('card declined') : StepResult.ok(s)),
    }),
  ],
});

const stoppers: (Relay | JetStreamConsumer | Orchestrator)[] = [];
let orchestrator: Orchestrator;
beforeAll(async () => {
  orchestrator = createOrchestrator({ pool: op, definitions: [orderSaga], pollIntervalMs: 50 });
  const nats = (topic: string) => createJetStreamDestination({ servers: server.url, routes: [{ topic }] });
  const inventory = createJetStreamConsumer({
    servers: server.url, pool: ip, stream: 'SAGA', durable: commandConsumer, filterSubject: 'inventory.*',
    handler: participant({
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
  });
  const replies = createJetStreamConsumer({
    servers: server.url, pool: op, stream: 'SAGA', durable: 'replies', consumer: 'saga-orchestrator', filterSubject: DEFAULT_SAGA_REPLY_TOPIC,
    handler: orchestrator.handler,
  });
  const orchestratorRelay = createRelay({
    pool: op, pollIntervalMs: 50,
    // Control messages (timeouts, wake-ups) stay in the orchestrator's own queue.
    routes: orchestrator.routes.filter((r) => r.topic !== DEFAULT_SAGA_REPLY_TOPIC),
    destinations: [nats('inventory.*')],
  });
  const inventoryRelay = createRelay({ pool: ip, pollIntervalMs: 50, destinations: [nats(DEFAULT_SAGA_REPLY_TOPIC)] });
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

describe('a saga participant behind NATS JetStream', () => {
  it('completes: the command reaches the participant through JetStream and its reply comes back the same way', async () => {
    const saga = await runSaga({ sku: 'apple', failCharge: false });
    expect(saga.status).toBe('completed');
    expect(saga.state).toMatchObject({ reserved: true });
    expect(await stock()).toBe(0);
    await ip.query(`UPDATE stock SET qty = 1 WHERE sku = 'apple'`);
  });

  it('compensates: the release command and its reply cross JetStream too, and the stock is back', async () => {
    const saga = await runSaga({ sku: 'apple', failCharge: true });
    expect(saga.status).toBe('compensated');
    expect(saga.history.map((e) => `${e.step}:${e.event}`)).toContain('reserve:compensated');
    expect(await stock()).toBe(1);
    expect(await inventoryDb.count(`SELECT count(*) AS n FROM sagabox.inbox WHERE consumer = $1`, [commandConsumer])).toBe(3);
    expect(await orchestratorDb.count(`SELECT count(*) AS n FROM sagabox.inbox WHERE consumer = 'saga-orchestrator'`)).toBeGreaterThanOrEqual(3);
  });
});
