/**
 * The churn workload (issue 18): sagabox alone at a sustained rate for half an hour,
 * autovacuum on with its defaults, retention acting within the run; per window the
 * throughput, latency and size of every table that takes rows and gives them back.
 * Runs in a child process (sagabox/churn-child.ts) on a fresh database of a server with
 * default settings, which the benchmark starts itself unless told to use BENCH_DATABASE_URL.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runScriptInChild } from '../harness/child-runner.js';
import { BUSINESS_TABLES_SQL, createFreshDatabase, dropDatabase, execute } from '../harness/databases.js';
import type { BenchOptions } from '../harness/options.js';
import { startOwnPostgres } from '../harness/own-postgres.js';
import { errorText } from '../harness/progress.js';
import type { ChurnJob, ChurnReport, ChurnResults } from '../report/churn-results.js';
import { serverSettings } from './storage.js';

const CHILD = fileURLToPath(new URL('../sagabox/churn-child.js', import.meta.url));
const DRAIN_TIMEOUT_MS = 60_000;

/** The job's settings: partitions a fifth of the retention wide, created ahead far enough to cover the run. */
export function churnSettings(options: BenchOptions): ChurnResults['settings'] {
  const partitionMs = Math.max(1_000, Math.round(options.churnRetentionMs / 5));
  return {
    rate: options.churnRate,
    sagaRate: options.churnSagaRate,
    durationMs: options.churnMs,
    windowMs: options.churnWindowMs,
    failEvery: 200,
    retentionMs: options.churnRetentionMs,
    partitionMs,
    // The whole run's partitions are made before it starts, so that creating them is
    // not part of any measured window.
    aheadMs: options.churnMs + DRAIN_TIMEOUT_MS + 2 * 60_000,
    concurrency: 10,
  };
}

/** Runs the churn workload (sagabox only). */
export async function runChurn(options: BenchOptions, progress: (message: string) => void): Promise<ChurnResults> {
  const settings = churnSettings(options);
  const results: ChurnResults = { server: 'BENCH_DATABASE_URL as configured', settings };
  if (!existsSync(CHILD)) {
    results.error = 'sagabox is not built (bench/dist/sagabox/churn-child.js is missing)';
    progress(`CHURN skipped: ${results.error}`);
    return results;
  }
  const own = options.server === 'own' ? await startOwnPostgres() : undefined;
  const adminUrl = own?.url ?? options.databaseUrl;
  if (own !== undefined) {
    results.server = `own server from ${own.bindir} (initdb defaults, autovacuum on)`;
    progress(`CHURN: started PostgreSQL from ${own.bindir} with default settings at ${own.url}`);
  }
  try {
    results.server += `: ${await serverSettings(adminUrl)}`;
    progress(
      `CHURN: ${settings.rate}/s offered (half outbox + relay, half direct route) and ${settings.sagaRate} sagas/s for ${settings.durationMs / 1000} s, windows of ${settings.windowMs / 1000} s, retention ${settings.retentionMs / 1000} s (shortened)`,
    );
    const url = await createFreshDatabase(adminUrl, 'churn');
    try {
      await execute(url, ...BUSINESS_TABLES_SQL);
      const job: ChurnJob = { url, ...settings, drainTimeoutMs: DRAIN_TIMEOUT_MS };
      const report = await runScriptInChild<ChurnReport>(CHILD, job, settings.durationMs + DRAIN_TIMEOUT_MS + 5 * 60_000);
      if (report.kind === 'error') throw new Error(report.message);
      results.report = report;
      const first = report.windows[0];
      const last = report.windows.at(-1);
      progress(
        `CHURN: ${report.achievedRate.toFixed(0)}/s achieved, ${report.handled}/${report.committed} handled, ${report.deadLettered} dead-lettered, ${report.sagasCompleted}/${report.sagasStarted} sagas completed, partitions ${report.partitionsCreated} created / ${report.partitionsDropped} dropped; p99 relayed ${first?.relayedP99Ms.toFixed(1)} -> ${last?.relayedP99Ms.toFixed(1)} ms, direct ${first?.directP99Ms.toFixed(1)} -> ${last?.directP99Ms.toFixed(1)} ms`,
      );
    } finally {
      if (!options.keepDatabases) await dropDatabase(adminUrl, 'churn').catch(() => undefined);
    }
  } catch (error) {
    results.error = errorText(error);
    progress(`CHURN failed: ${results.error}`);
  } finally {
    await own?.stop().catch((error: unknown) => progress(`could not stop the benchmark's PostgreSQL: ${errorText(error)}`));
  }
  return results;
}
