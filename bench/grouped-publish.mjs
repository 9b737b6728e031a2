// What a group limit costs a producer: CLIENTS clients loop BEGIN; publish one message of
// one of GROUPS groups through a direct route; COMMIT, for SECONDS, into a queue nobody
// consumes, with groupMaxInFlight 5 (`limited`) or no limit (`plain`). With the limit,
// a group's messages past its first 10 are written held (see held.ts), which takes a
// probe of the group at each publish. Prints one JSON line: commits/s, and PostgreSQL's
// CPU time per commit (every postgres process of this machine, from /proc).
// Usage: node bench/grouped-publish.mjs [limited|plain] [seconds] [core dir]
// (needs `npm run build`; BENCH_DATABASE_URL as the other scripts; [core dir] is another
// checkout's packages/core).
import { migratedScratch, postgresCpuMs } from './script-support.mjs';

const MODE = process.argv[2] ?? 'limited';
const SECONDS = Number(process.argv[3] ?? 20);
const coreDir = process.argv[4];
const CLIENTS = 4;
const GROUPS = 100;
const { load, pool, close } = await migratedScratch('sagabox_grouped', coreDir);
const { publish } = await load('');
const { setQueueLimits, addDirectRoute } = await load('/admin');
try {
  if (MODE === 'limited') await setQueueLimits(pool, 'q', { groupMaxInFlight: 5 });
  await addDirectRoute(pool, { topic: 'job', queue: 'q' });
  let commits = 0;
  const cpu0 = postgresCpuMs();
  const until = performance.now() + SECONDS * 1_000;
  await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
    const client = await pool.connect();
    try {
      for (let i = c; performance.now() < until; i += CLIENTS) {
        await client.query('BEGIN');
        await publish(client, { topic: 'job', payload: { i }, group: `g${i % GROUPS}` });
        await client.query('COMMIT');
        commits++;
      }
    } finally {
      client.release();
    }
  }));
  const cpuMs = postgresCpuMs() - cpu0;
  // A tree from before held rows has no such column.
  const { rows: [{ has }] } = await pool.query(
    `SELECT EXISTS (SELECT FROM information_schema.columns WHERE table_schema = 'sagabox' AND table_name = 'queue_messages' AND column_name = 'held') AS has`);
  const { rows: [held] } = await pool.query(`SELECT count(*) FILTER (WHERE ${has ? 'held' : 'false'}) AS held, count(*) AS total FROM sagabox.queue_messages`);
  process.stdout.write(`${JSON.stringify({
    core: coreDir ?? '@sagabox/core', mode: MODE, seconds: SECONDS, commitsPerSecond: Math.round(commits / SECONDS),
    postgresCpuUsPerCommit: Math.round((cpuMs * 1_000) / commits),
    held: Number(held?.held ?? 0), total: Number(held.total),
  })}\n`);
} finally {
  await close();
}
