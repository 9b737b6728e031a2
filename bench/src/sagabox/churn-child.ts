/**
 * Child process of the churn workload (issue 18): sagabox alone, at a sustained rate,
 * on a server with default settings. Producers, relay, workers, orchestrator and
 * maintenance share this process, so that commit and handler-start times share one
 * clock; it reports per window over IPC.
 */
import { createRelay, createWorker, Outcome, publish } from '@sagabox/core';
import { addDirectRoute, maintainStorage } from '@sagabox/core/admin';
import { migrateUp } from '@sagabox/core/migrate';
import { createOrchestrator, defineSaga, participant, startSaga, StepResult } from '@sagabox/saga';
import pg from 'pg';
import { settle } from '../harness/databases.js';
import { preciseNow, summarizeLatencies } from '../harness/latency.js';
import { openLoop } from '../harness/open-loop.js';
import { CHURN_TABLES, type ChurnJob, type ChurnReport, type ChurnTable, type ChurnTableStat, type ChurnWindow } from '../report/churn-results.js';

const SCHEMA = 'sagabox';
const RELAYED = { topic: 'churn.relayed', queue: 'churn_relayed' };
const DIRECT = { topic: 'churn.direct', queue: 'churn_direct' };
const SAGA_QUEUE = 'churn_saga';
const MESSAGE_PRODUCERS = 8;
const SAGA_PRODUCERS = 2;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const progress = (message: string) => process.stderr.write(`[bench] CHURN ${message}\n`);

const steps = ['reserve', 'charge', 'ship'] as const;
const churnSaga = defineSaga({
  name: 'churn-order',
  version: 1,
  initialState: (input: { n: number }) => ({ n: input.n, done: [] as string[] }),
  steps: (step) =>
    steps.map((name) =>
      step.remote<{ type: 'done' }>({
        name,
        command: (s) => ({ topic: `churn.saga.${name}`, payload: { n: s.n } }),
        onReply: (_reply, s) => StepResult.ok({ ...s, done: [...s.done, name] }),
        compensate: (s) => ({ topic: `churn.saga.undo-${name}`, payload: { n: s.n } }),
        timeoutMs: 120_000,
      }),
    ),
});

/** Size, live and dead tuples of each followed table, its partitions summed (pg_partition_tree lists nothing for a plain table: the outbox). */
async function tableStats(pool: pg.Pool): Promise<Record<ChurnTable, ChurnTableStat>> {
  const query = () =>
    pool.query<{ name: ChurnTable; bytes: string; live: string; dead: string; partitions: number }>(
      `SELECT t.name,
              coalesce(sum(pg_total_relation_size(p.relid)), 0)::bigint AS bytes,
              coalesce(sum(s.n_live_tup), 0)::bigint AS live,
              coalesce(sum(s.n_dead_tup), 0)::bigint AS dead,
              count(*) FILTER (WHERE p.isleaf)::int AS partitions
       FROM unnest($1::text[]) AS t(name)
       CROSS JOIN LATERAL (
         SELECT relid, isleaf FROM pg_partition_tree(to_regclass($2 || '.' || t.name))
         UNION ALL
         SELECT c.oid, true FROM pg_class c WHERE c.oid = to_regclass($2 || '.' || t.name) AND c.relkind = 'r'
       ) AS p
       LEFT JOIN pg_stat_user_tables s ON s.relid = p.relid
       GROUP BY t.name`,
      [CHURN_TABLES, SCHEMA],
    );
  // A partition dropped between listing and sizing can fail the query; the next try sees the new list.
  const { rows } = await query().catch(async () => {
    await sleep(200);
    return query();
  });
  const out = {} as Record<ChurnTable, ChurnTableStat>;
  for (const table of CHURN_TABLES) {
    const r = rows.find((x) => x.name === table);
    out[table] = { bytes: Number(r?.bytes ?? 0), live: Number(r?.live ?? 0), dead: Number(r?.dead ?? 0), partitions: r?.partitions ?? 0 };
  }
  return out;
}

async function churn(job: ChurnJob): Promise<ChurnReport> {
  await migrateUp({ connectionString: job.url, schema: SCHEMA });
  const adminPool = new pg.Pool({ connectionString: job.url, max: 2 });
  const workerPool = (max: number) => {
    const pool = new pg.Pool({ connectionString: job.url, max });
    pool.on('error', () => {});
    return pool;
  };
  const relayedPool = workerPool(job.concurrency + 2);
  const directPool = workerPool(job.concurrency + 2);
  const sagaPool = workerPool(job.concurrency + 6);
  const relayPool = workerPool(4);
  const pools = [adminPool, relayedPool, directPool, sagaPool, relayPool];

  // Maintenance as a cron job running `sagabox storage maintain` would do it, with the
  // retention shortened. It runs before anything else, so the short partitions exist
  // before the workers' own maintenance (which keeps the newest partition's width) runs.
  const retention = { inboxMs: job.retentionMs, deadLettersMs: job.retentionMs, halfMessageDecisionsMs: job.retentionMs, sagasMs: job.retentionMs };
  let partitionsCreated = 0;
  let partitionsDropped = 0;
  let maintenanceSkipped = 0;
  const maintenanceErrors: string[] = [];
  let maintaining = false;
  const maintain = async (): Promise<void> => {
    // One run at a time, as a cron job under flock would: a run that overlaps the next
    // would only wait for the first one's advisory lock.
    if (maintaining) return;
    maintaining = true;
    try {
      const r = await maintainStorage(adminPool, { schema: SCHEMA, retention, partitionMs: job.partitionMs, aheadMs: job.aheadMs });
      for (const kind of [r.inbox, r.deadLetters, r.halfMessageDecisions, r.sagas]) {
        partitionsCreated += kind.created.length;
        partitionsDropped += kind.dropped.length;
      }
      maintenanceSkipped += r.skipped;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (maintenanceErrors.length < 10) maintenanceErrors.push(message);
      progress(`maintenance failed: ${message}`);
    } finally {
      maintaining = false;
    }
  };
  await maintain();

  await adminPool.query(`INSERT INTO ${SCHEMA}.queues (name) VALUES ($1) ON CONFLICT DO NOTHING`, [RELAYED.queue]);
  await addDirectRoute(adminPool, DIRECT, { schema: SCHEMA });

  const total = Math.ceil((job.rate * job.durationMs) / 1000) + 1;
  const committedAt = new Float64Array(total + 1).fill(Number.NaN);
  const startedAt = new Float64Array(total + 1).fill(Number.NaN);
  let handled = 0;
  let duplicates = 0;
  let deadLettered = 0;
  const calls = { relayed: 0, direct: 0 };
  let committed = 0;
  let offered = 0;
  let sagasStarted = 0;

  // Odd n through the outbox and the relay, even n through the direct route; one pair
  // in `failEvery` fails for good, so dead letters accrue on both queues.
  const handlerFor = (path: 'relayed' | 'direct') => async (message: { payload: unknown }) => {
    const now = preciseNow();
    const n = (message.payload as { n: number }).n;
    calls[path] += 1;
    if (n >= 1 && n <= total) {
      if (!Number.isNaN(startedAt[n]!)) duplicates += 1;
      else {
        startedAt[n] = now;
        handled += 1;
      }
    }
    if (n > 1 && (n >> 1) % job.failEvery === 0) {
      deadLettered += 1;
      return Outcome.deadLetter('churn: planned non-retryable failure');
    }
    return undefined;
  };
  const relayedWorker = createWorker({ pool: relayedPool, schema: SCHEMA, queue: RELAYED.queue, concurrency: job.concurrency, handler: handlerFor('relayed') });
  const directWorker = createWorker({ pool: directPool, schema: SCHEMA, queue: DIRECT.queue, concurrency: job.concurrency, handler: handlerFor('direct') });
  const handlers = Object.fromEntries(steps.flatMap((name) => [`churn.saga.${name}`, `churn.saga.undo-${name}`].map((topic) => [topic, async () => ({ type: 'done' as const })])));
  const orchestrator = createOrchestrator({ pool: sagaPool, schema: SCHEMA, definitions: [churnSaga] });
  const participants = createWorker({ pool: sagaPool, schema: SCHEMA, queue: SAGA_QUEUE, concurrency: job.concurrency, handler: participant({ handlers }) });
  const relay = createRelay({ pool: relayPool, schema: SCHEMA, routes: [RELAYED, ...orchestrator.routes, { topic: 'churn.saga.#', queue: SAGA_QUEUE }] });
  const components = [relay, relayedWorker, directWorker, orchestrator, participants];

  let maintainer: NodeJS.Timeout | undefined;
  let ticker: NodeJS.Timeout | undefined;
  try {
    await Promise.all(components.map((c) => c.start()));
    await settle(job.url);
    await sleep(1_000);
    maintainer = setInterval(() => void maintain(), job.partitionMs);

    const windowCount = Math.ceil(job.durationMs / job.windowMs);
    const producedAt = preciseNow();
    // Counters at each window's end, to take differences.
    const marks: { offered: number; committed: number; relayed: number; direct: number; sagas: number; at: number }[] = [{ offered: 0, committed: 0, relayed: 0, direct: 0, sagas: 0, at: producedAt }];
    const windows: ChurnWindow[] = [];
    let windowError: unknown;

    /** p50/p99 of COMMIT to handler start, per path, of the messages committed in window w. */
    const latencyOf = (w: number) => {
      const from = producedAt + w * job.windowMs;
      const to = from + job.windowMs;
      // Every message committed in the window was published by its end; one published
      // before its start and committed in it is at most a few seconds' worth older.
      const lo = Math.max(1, marks[w]!.offered - Math.max(1_000, job.rate * 10));
      const hi = Math.min(total, marks[w + 1]?.offered ?? offered);
      const samples: { relayed: number[]; direct: number[] } = { relayed: [], direct: [] };
      for (let n = lo; n <= hi; n += 1) {
        const c = committedAt[n]!;
        if (!(c >= from && c < to) || Number.isNaN(startedAt[n]!)) continue;
        (n % 2 === 1 ? samples.relayed : samples.direct).push(startedAt[n]! - c);
      }
      return { relayed: summarizeLatencies(samples.relayed), direct: summarizeLatencies(samples.direct) };
    };

    const tick = async (w: number): Promise<void> => {
      const at = preciseNow();
      const mark = { offered, committed, relayed: calls.relayed, direct: calls.direct, sagas: sagasStarted, at };
      const previous = marks[w]!;
      marks.push(mark);
      const seconds = (at - previous.at) / 1000;
      const { rows } = await adminPool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${SCHEMA}.sagas WHERE status = 'completed' AND updated_at >= to_timestamp($1 / 1000.0) AND updated_at < to_timestamp($2 / 1000.0)`,
        [previous.at, at],
      );
      const tables = await tableStats(adminPool);
      const window: ChurnWindow = {
        fromS: (w * job.windowMs) / 1000,
        producedPerSecond: (mark.committed - previous.committed) / seconds,
        handledRelayedPerSecond: (mark.relayed - previous.relayed) / seconds,
        handledDirectPerSecond: (mark.direct - previous.direct) / seconds,
        sagasStartedPerSecond: (mark.sagas - previous.sagas) / seconds,
        sagasCompletedPerSecond: (rows[0]?.n ?? 0) / seconds,
        relayedP50Ms: Number.NaN,
        relayedP99Ms: Number.NaN,
        directP50Ms: Number.NaN,
        directP99Ms: Number.NaN,
        tables,
      };
      windows.push(window);
      const size = (t: ChurnTable) => `${t} ${(tables[t].bytes / 2 ** 20).toFixed(1)} MiB/${tables[t].dead} dead`;
      // The previous window's latency: its messages have been handled by now.
      const before = w > 0 ? latencyOf(w - 1) : undefined;
      const latency = before === undefined ? '' : `; window ${w - 1} p50/p99 relayed ${before.relayed.p50Ms.toFixed(1)}/${before.relayed.p99Ms.toFixed(1)} ms, direct ${before.direct.p50Ms.toFixed(1)}/${before.direct.p99Ms.toFixed(1)} ms`;
      progress(
        `window ${w} (${window.fromS} s): ${window.producedPerSecond.toFixed(0)}/s produced, handled ${window.handledRelayedPerSecond.toFixed(0)} + ${window.handledDirectPerSecond.toFixed(0)}/s, sagas ${window.sagasStartedPerSecond.toFixed(1)} -> ${window.sagasCompletedPerSecond.toFixed(1)}/s${latency}; ${CHURN_TABLES.filter((t) => t !== 'half_message_decisions').map(size).join(', ')}`,
      );
    };
    // Windows end on a fixed schedule from the producers' start, one at a time.
    let nextWindow = 0;
    let ticking = Promise.resolve();
    const scheduleTick = () => {
      const due = producedAt + (nextWindow + 1) * job.windowMs;
      ticker = setTimeout(() => {
        const w = nextWindow;
        nextWindow += 1;
        ticking = ticking
          .then(() => tick(w))
          .catch((error: unknown) => {
            windowError ??= error;
          });
        if (nextWindow < windowCount) scheduleTick();
      }, Math.max(0, due - preciseNow()));
    };
    scheduleTick();

    const messages = {
      async publish(client: pg.ClientBase, n: number) {
        await publish(client, { topic: n % 2 === 1 ? RELAYED.topic : DIRECT.topic, payload: { n } }, { schema: SCHEMA });
        offered = Math.max(offered, n);
      },
      async close() {},
    };
    const sagas = {
      async publish(client: pg.ClientBase, n: number) {
        await startSaga(client, churnSaga, { n }, { schema: SCHEMA });
      },
      async close() {},
    };
    const [result] = await Promise.all([
      openLoop(
        job.url,
        messages,
        job.rate,
        job.durationMs,
        (n, _due, commitWall) => {
          committedAt[n] = commitWall;
          committed += 1;
        },
        MESSAGE_PRODUCERS,
      ),
      job.sagaRate > 0 ? openLoop(job.url, sagas, job.sagaRate, job.durationMs, () => (sagasStarted += 1), SAGA_PRODUCERS) : Promise.resolve(undefined),
    ]);
    while (nextWindow < windowCount) await sleep(50);
    await ticking;
    if (windowError !== undefined) throw windowError;

    const deadline = performance.now() + job.drainTimeoutMs;
    while (handled < result.committed && performance.now() < deadline) await sleep(50);
    const lastAt = marks.at(-1)!.at;
    await sleep(2_000);
    const { rows } = await adminPool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${SCHEMA}.sagas WHERE status = 'completed' AND updated_at >= to_timestamp($1 / 1000.0)`,
      [lastAt],
    );
    const sagasCompleted = windows.reduce((sum, w) => sum + w.sagasCompletedPerSecond * (job.windowMs / 1000), 0) + (rows[0]?.n ?? 0);
    for (const [w, window] of windows.entries()) {
      const l = latencyOf(w);
      window.relayedP50Ms = l.relayed.p50Ms;
      window.relayedP99Ms = l.relayed.p99Ms;
      window.directP50Ms = l.direct.p50Ms;
      window.directP99Ms = l.direct.p99Ms;
    }
    return {
      kind: 'churn',
      offered: result.offered,
      committed: result.committed,
      achievedRate: result.committed / (result.producingMs / 1000),
      handled,
      duplicates,
      deadLettered,
      sagasStarted,
      sagasCompleted: Math.round(sagasCompleted),
      partitionsCreated,
      partitionsDropped,
      maintenanceSkipped,
      maintenanceErrors,
      windows,
    };
  } finally {
    clearInterval(maintainer);
    clearTimeout(ticker);
    await Promise.race([Promise.all(components.map((c) => c.stop())), sleep(20_000)]);
    await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
  }
}

async function main(): Promise<void> {
  const raw = process.argv[2];
  if (raw === undefined || process.send === undefined) throw new Error('churn-child is started by the bench runner');
  const job = JSON.parse(raw) as ChurnJob;
  let report: ChurnReport | { kind: 'error'; message: string };
  try {
    report = await churn(job);
  } catch (error) {
    report = { kind: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) };
  }
  await new Promise<void>((resolve) => process.send!(report, () => resolve()));
  process.exit(0);
}

void main();
