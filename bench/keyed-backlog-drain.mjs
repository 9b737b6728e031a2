// A keyed backlog that built up while nothing drained it (a consumer or a broker down
// for a while), drained by one relay (outbox -> queue) and then by one worker (its
// defaults: concurrency 10, inbox on). Publish puts a message in the ring slot of its
// id's time, a new slot about every second, so such a backlog spans every slot; the
// rows here get the slots that messages published at RATE/s would have. Prints one
// JSON line: messages/s of each drain.
// Usage: BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres node bench/keyed-backlog-drain.mjs [messages] [keys] [rate] [core dir]
// (needs `npm run build`; creates and drops a database sagabox_keyed_<pid>; [core dir]
// is another checkout's packages/core, to compare two trees on one machine).
import pg from 'pg';
import { coreLoader, scratchDatabase } from './script-support.mjs';

const base = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const MESSAGES = Number(process.argv[2] ?? 60_000);
const KEYS = Number(process.argv[3] ?? 1_000);
const RATE = Number(process.argv[4] ?? 500);
const coreDir = process.argv[5];
const load = coreLoader(coreDir);
const { createRelay, createWorker } = await load('');
const { migrateUp } = await load('/migrate');

// The slot of the n-th message (1-based) published at RATE/s: queue_part takes bits
// 10-11 of its id's milliseconds.
const slotOf = (n) => `((floor((${n} - 1) * 1000.0 / ${RATE})::bigint >> 10) & 3)::smallint`;

/** Untimed, before a drain: statistics for the claim's plan, and the fill's pages written. */
async function settle() {
  await pool.query('VACUUM ANALYZE');
  await pool.query('CHECKPOINT');
}

const db = await scratchDatabase(base, 'sagabox_keyed');
const pool = new pg.Pool({ connectionString: db.url, max: 12 });
pool.on('error', () => {});

/** Waits until `sql` counts no rows; returns the milliseconds since `started`. */
async function drained(sql, started) {
  for (;;) {
    const { rows } = await pool.query(sql);
    if (rows[0].n === 0) return performance.now() - started;
    await new Promise((r) => setTimeout(r, 20));
  }
}

try {
  await migrateUp({ connectionString: db.url, schema: 'sagabox' });
  await pool.query(
    `INSERT INTO sagabox.outbox (id, part, topic, key, payload)
     SELECT gen_random_uuid(), ${slotOf('g')}, 'keyed.placed', 'k-' || (g % $1), jsonb_build_object('n', g)
     FROM generate_series(1, $2::int) g ORDER BY g`,
    [KEYS, MESSAGES],
  );
  await settle();
  const relay = createRelay({ pool, routes: [{ topic: 'keyed.*', queue: 'q' }] });
  let started = performance.now();
  await relay.start();
  const relayMs = await drained(`SELECT count(*)::int AS n FROM sagabox.outbox`, started);
  await relay.stop();

  // The relay moved the rows in seq order into the slots of their ids (random UUIDs
  // here): give them the publish-time slots again.
  await pool.query(`UPDATE sagabox.queue_messages SET part = ${slotOf('seq')}`);
  await settle();
  const worker = createWorker({ pool, queue: 'q', concurrency: 10, handler: async () => {} });
  started = performance.now();
  await worker.start();
  const workerMs = await drained(`SELECT count(*)::int AS n FROM sagabox.queue_messages`, started);
  await worker.stop();
  const perSecond = (ms) => Math.round((MESSAGES / ms) * 1000);
  process.stdout.write(`${JSON.stringify({ core: coreDir ?? '@sagabox/core', messages: MESSAGES, keys: KEYS, rate: RATE, relayPerSecond: perSecond(relayMs), workerPerSecond: perSecond(workerMs) })}\n`);
} finally {
  await pool.end();
  await db.drop();
}
