// A queue holding a BACKLOG of messages of mixed priorities (levels 0 to LEVELS-1, waiting
// five minutes already), drained by one worker (concurrency 10, defaults otherwise) for
// SECONDS (or until drained) with the queue's priorityAgingMs at AGING ms. Measures, in
// one scratch database:
// - handled/s over the window;
// - row versions written to queue_messages beyond the worker's own (a lease and a delete
//   per message handled): what aging rewrote;
// - the longest gap between two handler calls: a claim that stalls every slot shows there;
// - CPU of PostgreSQL's processes over the window (cores).
// The rows are written as each tree's writers write them (`claim_rank` where the tree has
// the column). Prints one JSON line.
// Usage: node bench/priority-aging.mjs [backlog] [levels] [aging ms] [seconds] [core dir]
// (needs `npm run build`; BENCH_DATABASE_URL as the other scripts; PostgreSQL on this
// machine, since its CPU is read from /proc; [core dir] is another checkout's packages/core).
import { migratedScratch, postgresCpuMs } from './script-support.mjs';

const BACKLOG = Number(process.argv[2] ?? 1_000_000);
const LEVELS = Number(process.argv[3] ?? 4);
const AGING = Number(process.argv[4] ?? 1_000);
const SECONDS = Number(process.argv[5] ?? 20);
const coreDir = process.argv[6];
const { load, pool, close } = await migratedScratch('sagabox_aging', coreDir);
const { createWorker } = await load('');
const { setQueueLimits } = await load('/admin');
try {
  const { rowCount } = await pool.query(
    `SELECT 1 FROM information_schema.columns WHERE table_schema = 'sagabox' AND table_name = 'queue_messages' AND column_name = 'claim_rank'`,
  );
  const ranked = rowCount > 0;
  await setQueueLimits(pool, 'q', { priorityAgingMs: AGING });
  await pool.query(
    `INSERT INTO sagabox.queue_messages (queue, id, part, topic, payload, run_at, enqueued_at, created_at, priority${ranked ? ', claim_rank' : ''})
     SELECT 'q', gen_random_uuid(), (g % 4)::smallint, 'job', jsonb_build_object('n', g), t, t, t, (g % $2)::smallint
            ${ranked ? `, (date_part('epoch', t) * 1000)::bigint - (g % $2) * $3::bigint` : ''}
     FROM generate_series(1, $1::int) g, (SELECT now() - interval '5 minutes' AS t) n ORDER BY g`,
    ranked ? [BACKLOG, LEVELS, AGING] : [BACKLOG, LEVELS],
  );
  await pool.query('VACUUM ANALYZE');
  await pool.query('CHECKPOINT');
  const written = async () => {
    const { rows } = await pool.query(
      `SELECT sum(n_tup_upd + n_tup_del)::float8 AS n FROM pg_stat_user_tables WHERE schemaname = 'sagabox' AND relname LIKE 'queue_messages%'`,
    );
    return rows[0].n;
  };

  let handled = 0;
  let last = 0;
  let longestGapMs = 0;
  const worker = createWorker({
    pool, queue: 'q', concurrency: 10,
    handler: async () => {
      const now = performance.now();
      if (last > 0) longestGapMs = Math.max(longestGapMs, now - last);
      last = now;
      handled++;
    },
  });
  const written0 = await written();
  const cpu0 = postgresCpuMs();
  const t0 = performance.now();
  await worker.start();
  while (handled < BACKLOG && performance.now() - t0 < SECONDS * 1_000) await new Promise((r) => setTimeout(r, 10));
  const ms = performance.now() - t0;
  await worker.stop();
  const cores = (postgresCpuMs() - cpu0) / ms;
  // Statistics reach the views within a second (stats_fetch_consistency, PG 15's shared stats).
  await new Promise((r) => setTimeout(r, 1_500));
  const rewritten = (await written()) - written0 - 2 * handled;
  process.stdout.write(`${JSON.stringify({
    core: coreDir ?? '@sagabox/core', claimRank: ranked, backlog: BACKLOG, levels: LEVELS, agingMs: AGING, seconds: SECONDS,
    handledPerSecond: Math.round((handled / ms) * 1000), longestGapMs: Math.round(longestGapMs),
    rowsRewrittenBeyondHandling: Math.max(0, Math.round(rewritten)), postgresCores: Number(cores.toFixed(3)),
  })}\n`);
} finally {
  await close();
}
