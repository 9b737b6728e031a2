/**
 * The storage workloads (issue 18): a held snapshot under a steady offered load, and a
 * deep backlog's effect on publish, claim and another queue's latency. Each system runs
 * in a child process on a fresh database of a server with default settings, which the
 * benchmark starts itself unless told to use BENCH_DATABASE_URL.
 */
import { fileURLToPath } from 'node:url';
import { runScriptInChild } from '../harness/child-runner.js';
import { BUSINESS_TABLES_SQL, createFreshDatabase, dropDatabase, execute, settle } from '../harness/databases.js';
import type { BenchOptions } from '../harness/options.js';
import { startOwnPostgres } from '../harness/own-postgres.js';
import { BACKLOG_QUEUES, type BacklogReport, type SnapshotReport, type StorageJob, type StorageResults, type StorageRow } from '../report/storage-results.js';
import { loadStorageSystems, type StorageSystem } from '../harness/storage-system.js';

const CHILD = fileURLToPath(new URL('./storage-child.js', import.meta.url));
const SNAPSHOT_QUEUE = 'snap';

type Progress = (message: string) => void;

async function withSystemDatabase<T>(adminUrl: string, options: BenchOptions, name: string, system: StorageSystem, queues: readonly string[], fn: (url: string) => Promise<T>): Promise<T> {
  const url = await createFreshDatabase(adminUrl, name);
  try {
    await execute(url, ...BUSINESS_TABLES_SQL);
    await system.install(url, queues);
    await settle(url);
    return await fn(url);
  } finally {
    if (!options.keepDatabases) await dropDatabase(adminUrl, name).catch(() => undefined);
  }
}

const text = (error: unknown) => (error instanceof Error ? error.message : String(error));

async function runSnapshot(adminUrl: string, options: BenchOptions, systems: StorageSystem[], progress: Progress): Promise<StorageRow<SnapshotReport>[]> {
  const rows: StorageRow<SnapshotReport>[] = [];
  const passes = options.snapshotBaseline ? [true, false] : [true];
  for (const hold of passes) {
    for (const system of systems) {
      const row: StorageRow<SnapshotReport> = { id: system.id, label: system.label, kind: system.kind, ...(hold ? {} : { baseline: true }) };
      progress(`SNAPSHOT ${system.label}: ${options.snapshotRate}/s offered for ${options.snapshotMs / 1000} s, ${hold ? 'REPEATABLE READ snapshot held' : 'no snapshot held'}`);
      try {
        const drainTimeoutMs = 60_000;
        const report = await withSystemDatabase(adminUrl, options, `snap_${system.id}`, system, [SNAPSHOT_QUEUE], (url) => {
          const job: StorageJob = {
            kind: 'snapshot',
            systemId: system.id,
            url,
            queue: SNAPSHOT_QUEUE,
            rate: options.snapshotRate,
            durationMs: options.snapshotMs,
            windowMs: options.snapshotWindowMs,
            holdSnapshot: hold,
            concurrency: 10,
            drainTimeoutMs,
          };
          return runScriptInChild<SnapshotReport>(CHILD, job, options.snapshotMs + drainTimeoutMs + 120_000);
        });
        if (report.kind === 'error') throw new Error(report.message);
        row.report = report;
        const first = report.windows[0];
        const last = report.windows.at(-1);
        progress(
          `SNAPSHOT ${system.label}: ${report.achievedRate.toFixed(0)}/s achieved, ${report.handled}/${report.committed} handled; p50/p99 first window ${first?.p50Ms.toFixed(1)}/${first?.p99Ms.toFixed(1)} ms, last ${last?.p50Ms.toFixed(1)}/${last?.p99Ms.toFixed(1)} ms`,
        );
      } catch (error) {
        row.error = text(error);
        progress(`SNAPSHOT ${system.label} failed: ${row.error}`);
      }
      rows.push(row);
    }
  }
  return rows;
}

async function runBacklog(adminUrl: string, options: BenchOptions, systems: StorageSystem[], progress: Progress): Promise<StorageRow<BacklogReport>[]> {
  const rows: StorageRow<BacklogReport>[] = [];
  for (const system of systems) {
    const row: StorageRow<BacklogReport> = { id: system.id, label: system.label, kind: system.kind };
    progress(`BACKLOG ${system.label}: phases of ${options.backlogPhaseMs / 1000} s without and with 2 x ${options.backlogMessages} ready messages`);
    try {
      const report = await withSystemDatabase(adminUrl, options, `backlog_${system.id}`, system, BACKLOG_QUEUES, (url) => {
        const job: StorageJob = {
          kind: 'backlog',
          systemId: system.id,
          url,
          backlog: options.backlogMessages,
          phaseMs: options.backlogPhaseMs,
          trickleRate: options.trickleRate,
          concurrency: 10,
        };
        return runScriptInChild<BacklogReport>(CHILD, job, 6 * options.backlogPhaseMs + 60 * 60_000);
      });
      if (report.kind === 'error') throw new Error(report.message);
      row.report = report;
      const { empty, deep } = report;
      progress(
        `BACKLOG ${system.label}: publish ${empty.publishPerSecond.toFixed(0)} -> ${deep.publishPerSecond.toFixed(0)}/s, claim ${empty.claimPerSecond.toFixed(0)} -> ${deep.claimPerSecond.toFixed(0)}/s, trickle p50 ${empty.trickleP50Ms.toFixed(1)} -> ${deep.trickleP50Ms.toFixed(1)} ms, p99 ${empty.trickleP99Ms.toFixed(1)} -> ${deep.trickleP99Ms.toFixed(1)} ms`,
      );
    } catch (error) {
      row.error = text(error);
      progress(`BACKLOG ${system.label} failed: ${row.error}`);
    }
    rows.push(row);
  }
  return rows;
}

/** Runs the storage workloads that `options.workloads` names. */
export async function runStorageWorkloads(options: BenchOptions, progress: Progress): Promise<{ results: StorageResults; sagaboxSkipped?: string }> {
  const loaded = await loadStorageSystems(options.systems, options.variantIds);
  if (loaded.sagaboxSkipped !== undefined) progress(`storage workloads: sagabox skipped: ${loaded.sagaboxSkipped}`);
  const own = options.server === 'own' ? await startOwnPostgres() : undefined;
  const adminUrl = own?.url ?? options.databaseUrl;
  if (own !== undefined) progress(`storage workloads: started PostgreSQL from ${own.bindir} with default settings at ${own.url}`);
  try {
    const has = (w: string) => options.workloads.some((x) => x === w);
    const results: StorageResults = {
      server: own !== undefined ? `own server from ${own.bindir} (initdb defaults, autovacuum on)` : 'BENCH_DATABASE_URL as configured',
      settings: {
        snapshotRate: options.snapshotRate,
        snapshotMs: options.snapshotMs,
        windowMs: options.snapshotWindowMs,
        backlog: options.backlogMessages,
        phaseMs: options.backlogPhaseMs,
        trickleRate: options.trickleRate,
      },
      snapshot: has('snapshot') ? await runSnapshot(adminUrl, options, loaded.systems, progress) : [],
      backlog: has('backlog') ? await runBacklog(adminUrl, options, loaded.systems, progress) : [],
      notes: loaded.systems.map((s) => s.notes),
    };
    results.settings = { ...results.settings };
    const server = await serverSettings(adminUrl);
    results.server += `: ${server}`;
    return { results, ...(loaded.sagaboxSkipped !== undefined ? { sagaboxSkipped: loaded.sagaboxSkipped } : {}) };
  } finally {
    await own?.stop().catch((error: unknown) => progress(`could not stop the benchmark's PostgreSQL: ${text(error)}`));
  }
}

/** The server settings that matter to vacuum and durability, as one line. */
export async function serverSettings(adminUrl: string): Promise<string> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string; setting: string }>(
      `SELECT name, setting FROM pg_settings WHERE name IN ('server_version', 'autovacuum', 'autovacuum_naptime', 'autovacuum_vacuum_scale_factor', 'shared_buffers', 'fsync', 'synchronous_commit') ORDER BY name`,
    );
    return rows.map((r) => `${r.name}=${r.setting}`).join(', ');
  } finally {
    await client.end();
  }
}
