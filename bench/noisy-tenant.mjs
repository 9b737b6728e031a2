// A noisy tenant: NOISY messages of group `noisy` published ahead of OTHERS messages of 100
// other groups, in a queue with a group limit (`inflight`: groupMaxInFlight 5; `rate`:
// groupRatePerSecond 1; `key`: no limit, the messages keyed by the same names instead of
// grouped, so the noisy key's are handled one at a time, in order), served by one worker
// (concurrency 10, a 5 ms handler). Measures how long the other groups' messages take
// (cut off after 60 s) and PostgreSQL's CPU meanwhile (cores). Prints one JSON line.
// Usage: node bench/noisy-tenant.mjs [noisy] [others] [inflight|rate|key] [core dir]
// (needs `npm run build`; BENCH_DATABASE_URL as the other scripts; PostgreSQL on this
// machine, since its CPU is read from /proc; [core dir] is another checkout's packages/core).
import { migratedScratch, postgresCpuMs } from './script-support.mjs';

const NOISY = Number(process.argv[2] ?? 200_000);
const OTHERS = Number(process.argv[3] ?? 2_000);
const LIMIT = process.argv[4] ?? 'inflight';
const coreDir = process.argv[5];
const CUT_OFF_MS = 60_000;
const { load, pool, close } = await migratedScratch('sagabox_noisy', coreDir);
const { createWorker, publish } = await load('');
const { setQueueLimits, addDirectRoute } = await load('/admin');
try {
  if (LIMIT !== 'key') await setQueueLimits(pool, 'q', LIMIT === 'rate' ? { groupRatePerSecond: 1 } : { groupMaxInFlight: 5 });
  // Published as a producer would, through a direct route, a thousand a call.
  await addDirectRoute(pool, { topic: 'job', queue: 'q' });
  const insert = async (n, group) => {
    for (let i = 0; i < n; i += 1_000) {
      await publish(pool, Array.from({ length: Math.min(1_000, n - i) }, (_, k) => (
        LIMIT === 'key' ? { topic: 'job', payload: { n: i + k }, key: group(i + k) } : { topic: 'job', payload: { n: i + k }, group: group(i + k) })));
    }
  };
  await insert(NOISY, () => 'noisy');
  await insert(OTHERS, (g) => `g${g % 100}`);
  await pool.query('VACUUM ANALYZE');

  let others = 0;
  const worker = createWorker({
    pool, queue: 'q', concurrency: 10,
    handler: async (m) => {
      if ((LIMIT === 'key' ? m.key : m.group) !== 'noisy') others++;
      await new Promise((r) => setTimeout(r, 5));
    },
  });
  const cpu0 = postgresCpuMs();
  const t0 = performance.now();
  await worker.start();
  while (others < OTHERS && performance.now() - t0 < CUT_OFF_MS) await new Promise((r) => setTimeout(r, 20));
  const ms = performance.now() - t0;
  const cores = (postgresCpuMs() - cpu0) / ms;
  await worker.stop();
  process.stdout.write(`${JSON.stringify({
    core: coreDir ?? '@sagabox/core', noisy: NOISY, others: OTHERS, limit: LIMIT,
    othersHandled: others, ms: Math.round(ms), cutOff: others < OTHERS, postgresCores: Number(cores.toFixed(2)),
  })}\n`);
} finally {
  await close();
}
