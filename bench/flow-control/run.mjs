// Peak-shaving benchmark (issue 8), run by hand -- not part of `npm run bench`:
//
//   npm run build
//   SAGABOX_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres /usr/bin/node bench/flow-control/run.mjs
//
// Without the URL, @sagabox/testing starts a PostgreSQL (Testcontainers or embedded).
// 1. Burst: 10,000 messages published within ~1 s into a queue limited to 500/s;
//    prints the consumption curve (messages handled per second), the peak backlog
//    (outbox + queue) and the drain time.
// 2. Cost: drains a preloaded queue with no limits and with limits set high enough
//    never to bind (maxInFlight and rate), interleaved rounds; prints the medians.
// Env: BURST (10000), RATE (500), COST_MESSAGES (20000), ROUNDS (3), WORKERS (2),
//      CONCURRENCY (4), BATCH_SIZE (10).
import os from 'node:os';
import pg from 'pg';
import { createRelay, createWorker, publish } from '@sagabox/core';
import { setQueueLimits } from '@sagabox/core/admin';
import { createTestDatabase, startPostgres } from '@sagabox/testing';

const env = (name, dflt) => Number(process.env[name] ?? dflt);
const BURST = env('BURST', 10_000);
const RATE = env('RATE', 500);
const COST_MESSAGES = env('COST_MESSAGES', 20_000);
const ROUNDS = env('ROUNDS', 3);
const WORKERS = env('WORKERS', 2);
const CONCURRENCY = env('CONCURRENCY', 4);
const BATCH_SIZE = env('BATCH_SIZE', 10);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let server;
if (!process.env.SAGABOX_TEST_DATABASE_URL) {
  server = await startPostgres();
  process.env.SAGABOX_TEST_DATABASE_URL = server.url;
}
const db = await createTestDatabase();
const pool = new pg.Pool({ connectionString: db.url, max: WORKERS * (CONCURRENCY + 1) + 8 });
pool.on('error', () => {});

async function startWorkers(queue, counter) {
  const workers = Array.from({ length: WORKERS }, () =>
    createWorker({ pool, queue, concurrency: CONCURRENCY, batchSize: BATCH_SIZE, pollIntervalMs: 100, handler: () => void counter.n++ }));
  await Promise.all(workers.map((w) => w.start()));
  return workers;
}
const depth = async (queue) => {
  const { rows } = await pool.query(
    `SELECT (SELECT count(*) FROM sagabox.outbox)::int + (SELECT count(*) FROM sagabox.queue_messages WHERE queue = $1)::int AS n`, [queue]);
  return rows[0].n;
};

// --- 1. Burst into a queue limited to RATE/s -------------------------------------
await setQueueLimits(pool, 'shaved', { ratePerSecond: RATE });
const relay = createRelay({ pool, routes: [{ topic: 'sale.*', queue: 'shaved' }], batchSize: 500, pollIntervalMs: 50 });
await relay.start();
const counter = { n: 0 };
const workers = await startWorkers('shaved', counter);
const t0 = performance.now();
const publishing = (async () => {
  const chunk = 500;
  for (let i = 0; i < BURST; i += chunk) {
    const msgs = Array.from({ length: Math.min(chunk, BURST - i) }, (_, j) => ({ topic: 'sale.order', payload: { n: i + j } }));
    await publish(pool, msgs);
    const due = ((i + chunk) / BURST) * 1_000;
    const late = performance.now() - t0;
    if (due > late) await sleep(due - late);
  }
  return performance.now() - t0;
})();
const curve = [];
let peak = 0;
let last = 0;
let publishMs;
publishing.then((ms) => (publishMs = ms));
for (let second = 1; counter.n < BURST; second++) {
  // Sample the backlog ten times a second.
  for (let k = 0; k < 10; k++) {
    peak = Math.max(peak, await depth('shaved'));
    const wait = t0 + second * 1_000 - ((9 - k) * 100) - performance.now();
    if (wait > 0) await sleep(wait);
  }
  curve.push(counter.n - last);
  last = counter.n;
  if (second > 120) throw new Error('burst did not drain in 120 s');
}
const drainMs = performance.now() - t0;
await Promise.all(workers.map((w) => w.stop()));
await relay.stop();

// --- 2. Cost of limits that do not bind --------------------------------------------
async function drainOnce(queue, limits) {
  await setQueueLimits(pool, queue, limits);
  await publish(pool, []);
  for (let i = 0; i < COST_MESSAGES; i += 1_000) {
    await publish(pool, Array.from({ length: Math.min(1_000, COST_MESSAGES - i) }, (_, j) => ({ topic: `${queue}.m`, payload: { n: i + j } })));
  }
  const r = createRelay({ pool, routes: [{ topic: `${queue}.*`, queue }], batchSize: 1_000, listen: false });
  await r.start();
  while ((await r.runOnce()) > 0);
  await r.stop();
  // As the main bench's settle step: statistics up to date, as autovacuum would keep
  // them (it is off on some machines, and a claim planned for an empty queue sorts the
  // whole backlog).
  await pool.query('ANALYZE sagabox.queue_messages');
  const c = { n: 0 };
  const start = performance.now();
  const ws = await startWorkers(queue, c);
  while (c.n < COST_MESSAGES) await sleep(5);
  const ms = performance.now() - start;
  await Promise.all(ws.map((w) => w.stop()));
  return (COST_MESSAGES / ms) * 1_000;
}
const results = { none: [], high: [] };
for (let round = 0; round < ROUNDS; round++) {
  results.none.push(await drainOnce(`none${round}`, {}));
  results.high.push(await drainOnce(`high${round}`, { maxInFlight: 100_000, ratePerSecond: 1_000_000, burst: 1_000_000 }));
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const none = median(results.none);
const high = median(results.high);

const out = {
  machine: { cpus: os.cpus().length, loadavg: os.loadavg().map((l) => Number(l.toFixed(1))) },
  settings: { WORKERS, CONCURRENCY, BATCH_SIZE },
  burst: {
    messages: BURST, ratePerSecond: RATE, publishedInMs: Math.round(publishMs), peakBacklog: peak,
    drainMs: Math.round(drainMs), consumedPerSecond: curve,
  },
  cost: {
    messages: COST_MESSAGES, rounds: ROUNDS,
    noLimitsPerSecond: results.none.map(Math.round), highLimitsPerSecond: results.high.map(Math.round),
    medianNoLimits: Math.round(none), medianHighLimits: Math.round(high),
    costPercent: Number((((none - high) / none) * 100).toFixed(1)),
  },
};
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
await pool.end();
await db.drop();
await server?.stop();
