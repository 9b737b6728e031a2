// A worker with its defaults (concurrency 10, inbox on) draining a backlog in which a
// share of the messages fail their first attempt (the handler throws), retried after
// 1 ms: the cost of a poison message to the rest of its batch. Prints one JSON line:
// messages/s to drain the queue and the handler calls made.
// Usage: BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres node bench/poison-drain.mjs [messages] [failing share] [core dir]
// (needs `npm run build`; creates and drops a database sagabox_poison_<pid>; [core dir]
// is another checkout's packages/core, to compare two trees on one machine).
import { migratedScratch } from './script-support.mjs';

const MESSAGES = Number(process.argv[2] ?? 20_000);
const SHARE = Number(process.argv[3] ?? 0.01);
const coreDir = process.argv[4];
const { load, pool, close } = await migratedScratch('sagabox_poison', coreDir);
const { createWorker } = await load('');
try {
  await pool.query(`INSERT INTO sagabox.queues (name) VALUES ('q')`);
  await pool.query(
    `INSERT INTO sagabox.queue_messages (queue, id, topic, payload, created_at)
     SELECT 'q', gen_random_uuid(), 'poison.x', jsonb_build_object('n', g, 'fail', random() < $1), now() FROM generate_series(1, $2::int) g`,
    [SHARE, MESSAGES],
  );
  await pool.query('ANALYZE sagabox.queue_messages');
  let calls = 0;
  const worker = createWorker({
    pool,
    queue: 'q',
    concurrency: 10,
    retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 1 },
    handler: async (m) => {
      calls++;
      if (m.payload.fail && m.attempts === 1) throw new Error('fails its first attempt');
    },
  });
  const started = performance.now();
  await worker.start();
  for (;;) {
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM sagabox.queue_messages`);
    if (rows[0].n === 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const ms = performance.now() - started;
  await worker.stop();
  const { rows: [inbox] } = await pool.query(`SELECT count(*)::int AS n FROM sagabox.inbox`);
  process.stdout.write(`${JSON.stringify({ core: coreDir ?? '@sagabox/core', messages: MESSAGES, share: SHARE, ms: Math.round(ms), perSecond: Math.round((MESSAGES / ms) * 1000), calls, handledOnce: inbox.n })}\n`);
} finally {
  await close();
}
