import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQueueDestination, createRelay, createWorker, type Relay, type Worker } from '@sagabox/core';
import { listSagas, sagaRoutes, startSaga } from '@sagabox/saga';
import { createTestDatabase, type TestDatabase } from '@sagabox/testing';
import { makeOrderSaga, ORCHESTRATOR_DDL, PARTICIPANT_DDL, SERVICES } from '../fixtures/saga-order.mjs';
import { serviceHandler } from '../fixtures/saga-world.js';

// The orchestrator (and its database's relay) runs in a child process that is killed
// with SIGKILL at random moments while 200 sagas run, and restarted each time.
// Participants run here, on their own database, and record every effect they make.
const SAGAS = 200;
const KILLS = 12;
const KILL_PHASE_MS = 25_000;
const childScript = fileURLToPath(new URL('../fixtures/saga-orchestrator-child.mjs', import.meta.url));
const orderSaga = makeOrderSaga();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let orchestratorDb: TestDatabase;
let participantsDb: TestDatabase;
let pool: pg.Pool;
let participantsPool: pg.Pool;
const workers: Worker[] = [];
let relay: Relay;
let child: ChildProcess | undefined;

function startChild(): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [childScript], {
    env: { ...process.env, ORCHESTRATOR_URL: orchestratorDb.url, PARTICIPANTS_URL: participantsDb.url },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('orchestrator child did not start')), 20_000);
    proc.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) {
        clearTimeout(timer);
        resolve(proc);
      }
    });
    proc.on('exit', (code) => reject(new Error(`orchestrator child exited early (${code})`)));
  });
}

async function kill(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGKILL');
  await exited;
}

beforeAll(async () => {
  orchestratorDb = await createTestDatabase();
  participantsDb = await createTestDatabase();
  pool = new pg.Pool({ connectionString: orchestratorDb.url, max: 6 });
  pool.on('error', () => {});
  participantsPool = new pg.Pool({ connectionString: participantsDb.url, max: 10 });
  participantsPool.on('error', () => {});
  await pool.query(ORCHESTRATOR_DDL);
  await participantsPool.query(PARTICIPANT_DDL);
  for (const s of SERVICES) {
    workers.push(
      createWorker({ pool: participantsPool, queue: s.name, handler: serviceHandler(s), concurrency: 2, pollIntervalMs: 50, retry: { baseDelayMs: 50, maxDelayMs: 500 } }),
    );
  }
  relay = createRelay({ pool: participantsPool, pollIntervalMs: 50, destinations: [createQueueDestination({ pool, routes: sagaRoutes() })] });
  await relay.start();
  for (const w of workers) await w.start();
});

afterAll(async () => {
  if (child) await kill(child);
  for (const w of workers) await w.stop();
  await relay?.stop();
  await participantsPool?.end();
  await pool?.end();
  await participantsDb?.drop();
  await orchestratorDb?.drop();
});

/** What a stuck run looks like: a few unfinished sagas with their history, and the queues. */
async function diagnose() {
  const { rows: stuck } = await pool.query(
    `SELECT id, status, current_step, revision FROM sagabox.sagas WHERE status IN ('running', 'compensating') LIMIT 3`,
  );
  for (const r of stuck) {
    r.history = (await pool.query('SELECT step, event, detail FROM sagabox.saga_steps WHERE saga_id = $1 ORDER BY seq', [r.id])).rows;
  }
  const queues = 'SELECT queue, count(*), min(run_at), max(attempts) FROM sagabox.queue_messages GROUP BY 1';
  return {
    stuck,
    orchestratorQueues: (await pool.query(queues)).rows,
    orchestratorOutbox: (await pool.query('SELECT count(*) FROM sagabox.outbox')).rows,
    participantQueues: (await participantsPool.query(queues)).rows,
  };
}

/** Which step (if any) a saga is told to fail at: about a third of them fail somewhere. */
function failAt(i: number): string | undefined {
  return [undefined, 'shipping', undefined, 'payment', undefined, undefined, 'inventory', undefined, 'shipping'][i % 9];
}

describe('saga orchestrator under SIGKILL', () => {
  it(`${SAGAS} sagas finish completed or compensated; no command runs twice; no compensation without its step`, async () => {
    const expected = new Map<string, string | undefined>();
    // Kills while sagas are being started count too: with a fast orchestrator the
    // sagas may all finish before the second kill phase below gets many rounds.
    let kills = 0;
    const client = await pool.connect();
    try {
      // Started in several transactions, while the orchestrator is being killed.
      child = await startChild();
      for (let batch = 0; batch < SAGAS / 20; batch++) {
        await client.query('BEGIN');
        for (let i = batch * 20; i < (batch + 1) * 20; i++) {
          const id = randomUUID();
          expected.set(id, failAt(i));
          await startSaga(client, orderSaga, { orderId: `order-${i}`, amount: i, ...(failAt(i) ? { failAt: failAt(i) } : {}) }, { id });
        }
        await client.query('COMMIT');
        if (batch % 3 === 1) {
          await sleep(100 + Math.random() * 300);
          await kill(child);
          kills++;
          child = await startChild();
        }
      }
    } finally {
      client.release();
    }

    const running = async () =>
      Number((await pool.query(`SELECT count(*) FROM sagabox.sagas WHERE status IN ('running', 'compensating')`)).rows[0].count);
    // Kill at random moments while sagas are in flight (a kill lands mid-transition,
    // mid-relay-batch, or between the two), restarting the orchestrator each time.
    // Bounded in time too: on a loaded machine a restart takes seconds.
    const killUntil = Date.now() + KILL_PHASE_MS;
    while (kills < KILLS && Date.now() < killUntil && (await running()) > 0) {
      await sleep(50 + Math.random() * 400);
      await kill(child!);
      kills++;
      child = await startChild();
    }
    const deadline = Date.now() + 60_000;
    while ((await running()) > 0) {
      if (Date.now() > deadline) throw new Error(`sagas still running: ${JSON.stringify(await diagnose())}`);
      await sleep(100);
    }

    const sagas = await listSagas(pool, { limit: 1_000 });
    expect(sagas).toHaveLength(SAGAS);
    const effects = (await participantsPool.query('SELECT saga_id, step, kind, count(*)::int AS n FROM effects GROUP BY 1, 2, 3')).rows as {
      saga_id: string;
      step: string;
      kind: string;
      n: number;
    }[];
    const count = (id: string, step: string, kind: string) => effects.find((e) => e.saga_id === id && e.step === step && e.kind === kind)?.n ?? 0;
    const { rows: confirmations } = await pool.query('SELECT order_id FROM confirmations');
    const confirmed = new Set(confirmations.map((r) => r.order_id));
    const problems: string[] = [];
    for (const saga of sagas) {
      const fail = expected.get(saga.id);
      const failIndex = fail === undefined ? SERVICES.length : SERVICES.findIndex((s) => s.name === fail);
      const want = fail === undefined ? 'completed' : 'compensated';
      if (saga.status !== want) problems.push(`${saga.id}: ${saga.status}, expected ${want}`);
      SERVICES.forEach((s, i) => {
        const did = count(saga.id, s.step, 'do');
        const undid = count(saga.id, s.step, 'undo');
        // Exactly once: steps before the failing one ran; the failing one and later ones did not.
        if (did !== (i < failIndex ? 1 : 0)) problems.push(`${saga.id}: ${s.step} done ${did} times`);
        if (undid > did) problems.push(`${saga.id}: ${s.step} compensated without being done`);
        if (undid !== (fail !== undefined && i < failIndex ? 1 : 0)) problems.push(`${saga.id}: ${s.step} compensated ${undid} times`);
      });
      const orderId = (saga.state as { orderId: string }).orderId;
      if (confirmed.has(orderId) !== (want === 'completed')) problems.push(`${saga.id}: confirmation ${confirmed.has(orderId)}`);
    }
    expect(problems).toEqual([]);
    expect(confirmed.size).toBe([...expected.values()].filter((f) => f === undefined).length);
    for (const p of [pool, participantsPool]) {
      expect((await p.query('SELECT id, reason, error FROM sagabox.dead_letters')).rows).toEqual([]);
    }
    expect(kills).toBeGreaterThanOrEqual(3);
  }, 150_000);
});
