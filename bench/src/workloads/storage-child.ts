/**
 * Child process of the storage workloads: runs one system's held-snapshot or
 * deep-backlog job (producer, consumer and probes in this process, so that due,
 * commit and handler-start times share one clock) and reports over IPC.
 */
import pg from 'pg';
import { settle } from '../harness/databases.js';
import { openLoop, type OpenLoopResult } from '../harness/open-loop.js';
import { preciseNow, summarizeLatencies } from '../harness/latency.js';
import { runProduceLoop } from './produce-loop.js';
import { BACKLOG_QUEUES, type BacklogMeasure, type BacklogReport, type LatencyWindow, type SnapshotReport, type StorageJob, type StorageReport, type TableStat } from '../report/storage-results.js';
import { findStorageSystem, type StorageSystem } from '../harness/storage-system.js';
import type { Consumer } from '../harness/variant.js';

const PRODUCERS = 4;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function stopWithin(consumer: { stop(): Promise<void> }, ms: number): Promise<void> {
  await Promise.race([consumer.stop(), sleep(ms)]);
}

/** Live and dead tuples and total size of every table in the system's schemas, largest first. */
async function tableStats(url: string, schemas: string[]): Promise<TableStat[]> {
  // Backends flush their table counters about once a second when idle.
  await sleep(1_500);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ table: string; live: string; dead: string; bytes: string }>(
      `SELECT s.schemaname || '.' || s.relname AS table, s.n_live_tup AS live, s.n_dead_tup AS dead, pg_total_relation_size(s.relid) AS bytes
       FROM pg_stat_user_tables s WHERE s.schemaname = ANY($1) ORDER BY pg_total_relation_size(s.relid) DESC, s.relname`,
      [schemas],
    );
    return rows.map((r) => ({ table: r.table, live: Number(r.live), dead: Number(r.dead), bytes: Number(r.bytes) }));
  } finally {
    await client.end();
  }
}

async function snapshot(job: Extract<StorageJob, { kind: 'snapshot' }>, system: StorageSystem): Promise<SnapshotReport> {
  const total = Math.ceil((job.rate * job.durationMs) / 1000) + 1;
  const dueAt = new Float64Array(total + 1).fill(Number.NaN);
  const committedAt = new Float64Array(total + 1).fill(Number.NaN);
  const latency = new Float64Array(total + 1).fill(Number.NaN);
  let handled = 0;
  let duplicates = 0;
  const startedAt = new Float64Array(total + 1).fill(Number.NaN);
  const consumer = await system.openConsumer(job.url, job.queue, {
    concurrency: job.concurrency,
    onMessage(n) {
      const now = preciseNow();
      if (n < 1 || n > total) return;
      if (!Number.isNaN(startedAt[n]!)) duplicates += 1;
      else {
        startedAt[n] = now;
        handled += 1;
      }
    },
  });
  const holder = new pg.Client({ connectionString: job.url, application_name: 'bench snapshot holder' });
  await holder.connect();
  let holderPid = 0;
  const publisher = await system.openPublisher(job.url, job.queue);
  try {
    if (job.holdSnapshot) {
      // A report or pg_dump as a user would leave it: a REPEATABLE READ transaction whose
      // snapshot (taken at its first statement) stays until it ends.
      await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      holderPid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    }
    await consumer.start();
    await sleep(1_000);
    const producedAt = preciseNow();
    const result = await openLoop(job.url, publisher, job.rate, job.durationMs, (n, dueWall, commitWall) => {
      dueAt[n] = dueWall;
      committedAt[n] = commitWall;
    });
    const deadline = performance.now() + job.drainTimeoutMs;
    while (handled < result.committed && performance.now() < deadline) await sleep(20);
    const tables = await tableStats(job.url, system.schemas);
    let xminAge: number | undefined;
    if (job.holdSnapshot) {
      const probe = await holder.query<{ age: number }>('SELECT age(backend_xmin)::int AS age FROM pg_stat_activity WHERE pid = $1', [holderPid]);
      xminAge = probe.rows[0]?.age;
    }
    for (let n = 1; n <= total; n += 1) latency[n] = startedAt[n]! - dueAt[n]!;
    const windows: LatencyWindow[] = [];
    for (let from = 0; from < job.durationMs; from += job.windowMs) {
      const samples: number[] = [];
      for (let n = 1; n <= total; n += 1) {
        // By commit time: a producer that falls behind still fills every window.
        const offset = committedAt[n]! - producedAt;
        if (offset >= from && offset < from + job.windowMs && !Number.isNaN(latency[n]!)) samples.push(latency[n]!);
      }
      const summary = summarizeLatencies(samples);
      windows.push({ fromS: from / 1000, count: summary.count, p50Ms: summary.p50Ms, p99Ms: summary.p99Ms, maxMs: summary.maxMs });
    }
    return {
      kind: 'snapshot',
      offered: result.offered,
      committed: result.committed,
      achievedRate: result.committed / (result.producingMs / 1000),
      handled,
      duplicates,
      windows,
      tables,
      ...(xminAge !== undefined ? { xminAge } : {}),
    };
  } finally {
    await holder.query('ROLLBACK').catch(() => undefined);
    await holder.end().catch(() => undefined);
    await publisher.close();
    await stopWithin(consumer, 15_000);
  }
}

const [DEEP_A, DEEP_B, TRICKLE] = BACKLOG_QUEUES;

async function measureBacklog(job: Extract<StorageJob, { kind: 'backlog' }>, system: StorageSystem, claimSample: number, firstN: number): Promise<BacklogMeasure> {
  // Publish into the deep queue.
  await settle(job.url);
  const publisher = await system.openPublisher(job.url, DEEP_A);
  let publishPerSecond: number;
  try {
    const produced = await runProduceLoop(job.url, publisher, { clients: PRODUCERS, warmupMs: 500, durationMs: job.phaseMs });
    publishPerSecond = produced.commitsPerSecond;
  } finally {
    await publisher.close();
  }

  // Claim from the deep queue: a sample on top of whatever it holds, so that the
  // empty case has work for the whole phase too.
  await system.seed(job.url, DEEP_A, claimSample, firstN);
  await settle(job.url);
  let claimed = 0;
  const claimer: Consumer = await system.openConsumer(job.url, DEEP_A, { concurrency: job.concurrency, onMessage: () => (claimed += 1) });
  let claimPerSecond: number;
  try {
    const began = performance.now();
    await claimer.start();
    while (claimed < claimSample && performance.now() - began < job.phaseMs) await sleep(10);
    claimPerSecond = claimed / ((performance.now() - began) / 1000);
  } finally {
    await stopWithin(claimer, 15_000);
  }

  // Trickle latency of a third queue: commit to handler start.
  await settle(job.url);
  const total = Math.ceil((job.trickleRate * job.phaseMs) / 1000) + 1;
  const committedAt = new Float64Array(total + 1).fill(Number.NaN);
  const startedAt = new Float64Array(total + 1).fill(Number.NaN);
  let handled = 0;
  const trickle = await system.openConsumer(job.url, TRICKLE, {
    concurrency: job.concurrency,
    onMessage(n) {
      if (n >= 1 && n <= total && Number.isNaN(startedAt[n]!)) {
        startedAt[n] = preciseNow();
        handled += 1;
      }
    },
  });
  const tricklePublisher = await system.openPublisher(job.url, TRICKLE);
  let produced: OpenLoopResult;
  try {
    await trickle.start();
    await sleep(1_000);
    produced = await openLoop(job.url, tricklePublisher, job.trickleRate, job.phaseMs, (n, _due, commitWall) => {
      committedAt[n] = commitWall;
    });
    const deadline = performance.now() + 10_000;
    while (handled < produced.committed && performance.now() < deadline) await sleep(10);
  } finally {
    await tricklePublisher.close();
    await stopWithin(trickle, 15_000);
  }
  const samples: number[] = [];
  for (let n = 1; n <= total; n += 1) {
    const value = startedAt[n]! - committedAt[n]!;
    if (!Number.isNaN(value)) samples.push(value);
  }
  const latency = summarizeLatencies(samples);
  return { publishPerSecond, claimPerSecond, trickleP50Ms: latency.p50Ms, trickleP99Ms: latency.p99Ms, trickleHandled: handled, trickleProduced: produced.committed };
}

async function backlog(job: Extract<StorageJob, { kind: 'backlog' }>, system: StorageSystem): Promise<BacklogReport> {
  // Enough to keep a consumer busy for the phase on this kind of machine; the same in both cases.
  const claimSample = Math.max(5_000, Math.min(50_000, Math.round(job.backlog / 20)));
  const empty = await measureBacklog(job, system, claimSample, 100_000_000);
  const seeded = performance.now();
  await system.seed(job.url, DEEP_A, job.backlog, 200_000_000);
  await system.seed(job.url, DEEP_B, job.backlog, 300_000_000);
  const seedSeconds = (performance.now() - seeded) / 1000;
  process.stderr.write(`[bench] BACKLOG ${system.label}: seeded 2 x ${job.backlog} in ${seedSeconds.toFixed(0)} s\n`);
  const deep = await measureBacklog(job, system, claimSample, 400_000_000);
  const tables = await tableStats(job.url, system.schemas);
  return { kind: 'backlog', seedSeconds, empty, deep, tables };
}

async function main(): Promise<void> {
  const raw = process.argv[2];
  if (raw === undefined || process.send === undefined) throw new Error('storage-child is started by the bench runner');
  const job = JSON.parse(raw) as StorageJob;
  let report: StorageReport;
  try {
    const system = await findStorageSystem(job.systemId);
    report = job.kind === 'snapshot' ? await snapshot(job, system) : await backlog(job, system);
  } catch (error) {
    report = { kind: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) };
  }
  await new Promise<void>((resolve) => process.send!(report, () => resolve()));
  process.exit(0);
}

void main();
