import pg from 'pg';
import { match, P } from 'ts-pattern';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRelay, createWorker, type HalfMessageChecker, type Relay, type Worker } from '@sagabox/core';
import {
  createOrchestrator,
  defineSaga,
  DEFAULT_SAGA_REPLY_TOPIC,
  getSaga,
  halfMessageParticipant,
  startSaga,
  StepResult,
  type Orchestrator,
} from '@sagabox/saga';
import { createTestDatabase, type TestDatabase } from '@sagabox/testing';
import { waitFor } from '../fixtures/saga-world.js';

// A payment participant whose action is outside Postgres (a "provider", simulated by a
// table written outside the worker's transaction and deduplicated by idempotency key).
type Input = { amount: number; crash?: 'once' | 'always' };
type Reply = { type: 'charged' } | { type: 'declined'; reason: string };
const saga = defineSaga({
  name: 'pay',
  version: 1,
  initialState: (input: Input) => ({ ...input, charged: false }),
  steps: (step) => [
    step.remote<Reply>({
      name: 'charge',
      command: (s) => ({ topic: 'payment.charge', payload: s }),
      onReply: (reply, s) =>
        match(reply)
          .with({ type: 'charged' }, () => StepResult.ok({ ...s, charged: true }))
          .with({ type: 'declined', reason: P.string }, (r) => StepResult.fail(r.reason))
          .exhaustive(),
    }),
  ],
});

let db: TestDatabase;
let pool: pg.Pool;
let relay: Relay;
let worker: Worker;
let orchestrator: Orchestrator;
const crashed = new Set<string>();

const providerCharges = async (sagaId: string) =>
  Number((await pool.query('SELECT count(*) FROM provider_charges WHERE saga_id = $1', [sagaId])).rows[0].count);

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 8 });
  pool.on('error', () => {});
  await pool.query('CREATE TABLE provider_charges (idempotency_key uuid PRIMARY KEY, saga_id uuid NOT NULL, amount int NOT NULL)');
  // The checker asks the "provider" whether the charge behind a reply happened.
  const checker: HalfMessageChecker = async (message) => {
    const { rowCount } = await pool.query('SELECT 1 FROM provider_charges WHERE idempotency_key = $1', [message.id]);
    return rowCount ? 'commit' : 'rollback';
  };
  orchestrator = createOrchestrator({ pool, definitions: [saga], pollIntervalMs: 100 });
  relay = createRelay({
    pool,
    pollIntervalMs: 100,
    routes: [...orchestrator.routes, { topic: 'payment.*', queue: 'payment' }],
    checkers: { [DEFAULT_SAGA_REPLY_TOPIC]: checker },
    checkIntervalMs: 100,
  });
  worker = createWorker({
    pool,
    queue: 'payment',
    batchSize: 1,
    pollIntervalMs: 100,
    retry: { maxAttempts: 2, baseDelayMs: 50, maxDelayMs: 100 },
    handler: halfMessageParticipant<Input>({
      topic: 'payment.charge',
      pool,
      checkAfterMs: 300,
      reply: () => ({ type: 'charged' }),
      act: async (command, { halfMessageId, sagaId }) => {
        if (command.payload.amount > 100) return { ok: false, reply: { type: 'declined', reason: 'over the limit' } };
        await pool.query('INSERT INTO provider_charges VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [halfMessageId, sagaId, command.payload.amount]);
        // The process "dies" after the provider charged, before the reply is committed.
        if (command.payload.crash === 'always' || (command.payload.crash === 'once' && !crashed.has(command.id))) {
          crashed.add(command.id);
          throw new Error('connection lost after the charge');
        }
        return { ok: true };
      },
    }),
  });
  await relay.start();
  await worker.start();
  await orchestrator.start();
});

afterAll(async () => {
  await orchestrator?.stop();
  await worker?.stop();
  await relay?.stop();
  await pool?.end();
  await db?.drop();
});

async function run(input: Input) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { id } = await startSaga(client, saga, input);
    await client.query('COMMIT');
    return id;
  } finally {
    client.release();
  }
}

const finished = (id: string) =>
  waitFor(`saga ${id} to finish`, async () => {
    const s = await getSaga(pool, id);
    return s && (s.status === 'completed' || s.status === 'compensated') ? s : undefined;
  });

describe('halfMessageParticipant', () => {
  it('commits the prepared reply after the external action', async () => {
    const id = await run({ amount: 10 });
    expect((await finished(id)).status).toBe('completed');
    expect(await providerCharges(id)).toBe(1);
  });

  it('rolls the prepared reply back and sends the failure reply when the action fails', async () => {
    const id = await run({ amount: 500 });
    const s = await finished(id);
    expect(s.status).toBe('compensated');
    expect(s.error).toBe('over the limit');
    expect(await providerCharges(id)).toBe(0);
  });

  it('a crash after the action: the command is handled again with the same idempotency key, charged once', async () => {
    const id = await run({ amount: 20, crash: 'once' });
    expect((await finished(id)).status).toBe('completed');
    expect(await providerCharges(id)).toBe(1);
  });

  it('a command that never comes back: the relay asks the checker, which commits the reply', async () => {
    const id = await run({ amount: 30, crash: 'always' });
    const s = await finished(id);
    expect(s.status).toBe('completed');
    expect(await providerCharges(id)).toBe(1);
    const { rows } = await pool.query(`SELECT reason FROM sagabox.dead_letters WHERE topic = 'payment.charge'`);
    expect(rows).toEqual([{ reason: 'failed' }]);
  });
});
