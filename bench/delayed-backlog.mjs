// A queue holding DELAYED messages due in an hour (reminders, scheduled jobs), served by
// one worker (concurrency 10, defaults otherwise). Measures, in one scratch database:
// - idle: the CPU PostgreSQL's processes spend while the worker waits, over 5 s (cores);
// - drain: messages/s of READY messages published after the delayed ones.
// The delayed rows are written as each tree's publish writes them (`scheduled` where the
// tree has the column). Prints one JSON line.
// Usage: node bench/delayed-backlog.mjs [delayed] [ready] [core dir]
// (needs `npm run build`; BENCH_DATABASE_URL as the other scripts; PostgreSQL on this
// machine, since its CPU is read from /proc; [core dir] is another checkout's packages/core).
import { migratedScratch, postgresCpuMs } from './script-support.mjs';

const DELAYED = Number(process.argv[2] ?? 1_000_000);
const READY = Number(process.argv[3] ?? 20_000);
const coreDir = process.argv[4];
const { load, pool, close } = await migratedScratch('sagabox_delayed', coreDir);
const { createWorker } = await load('');
try {
  const { rowCount } = await pool.query(
    `SELECT 1 FROM information_schema.columns WHERE table_schema = 'sagabox' AND table_name = 'queue_messages' AND column_name = 'scheduled'`,
  );
  const scheduled = rowCount > 0;
  await pool.query(`INSERT INTO sagabox.queues (name) VALUES ('q')`);
  await pool.query(
    `INSERT INTO sagabox.queue_messages (queue, id, part, topic, payload, run_at, created_at${scheduled ? ', scheduled' : ''})
     SELECT 'q', gen_random_uuid(), (g % 4)::smallint, 'job', jsonb_build_object('n', g), now() + interval '1 hour', now()${scheduled ? ', true' : ''}
     FROM generate_series(1, $1::int) g ORDER BY g`,
    [DELAYED],
  );
  await pool.query('VACUUM ANALYZE');
  await pool.query('CHECKPOINT');

  let handled = 0;
  const worker = createWorker({ pool, queue: 'q', concurrency: 10, handler: async () => void handled++ });
  await worker.start();
  await new Promise((r) => setTimeout(r, 2_000));
  const cpu0 = postgresCpuMs();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, 5_000));
  const idleCores = (postgresCpuMs() - cpu0) / (performance.now() - t0);

  const started = performance.now();
  await pool.query(
    `INSERT INTO sagabox.queue_messages (queue, id, part, topic, payload, created_at)
     SELECT 'q', gen_random_uuid(), (g % 4)::smallint, 'job', jsonb_build_object('n', g), now()
     FROM generate_series(1, $1::int) g ORDER BY g`,
    [READY],
  );
  await pool.query(`NOTIFY "sagabox.queue", 'q'`);
  while (handled < READY) await new Promise((r) => setTimeout(r, 10));
  const drainPerSecond = Math.round((READY / (performance.now() - started)) * 1000);
  await worker.stop();
  process.stdout.write(`${JSON.stringify({ core: coreDir ?? '@sagabox/core', scheduledColumn: scheduled, delayed: DELAYED, ready: READY, idlePostgresCores: Number(idleCores.toFixed(3)), drainPerSecond })}\n`);
} finally {
  await close();
}
