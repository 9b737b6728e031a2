/**
 * `npm run bench`: runs the workloads of issue 3 for sagabox and its peers, each
 * variant on its own fresh database, and writes bench/RESULTS.md and
 * bench/results/latest.json. Started by run.sh under the Node 24 binary.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runInChild } from './child-runner.js';
import { BUSINESS_TABLES_SQL, createFreshDatabase, dropDatabase, execute, settle } from './databases.js';
import { describeEnvironment } from './environment.js';
import { summarizeLatencies } from './latency.js';
import { resolveOptions, type BenchOptions } from './options.js';
import { runProduceLoop } from './produce-loop.js';
import { loadVariants } from './registry.js';
import { renderReport } from './report.js';
import type { DrainRow, LatencyRow, ProduceRow, Results, SagaResult } from './results.js';
import type { Variant } from './variant.js';

const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Fresh database with the business tables and the variant's schema; dropped afterwards unless kept. */
async function withDatabase<T>(options: BenchOptions, name: string, variant: Variant, fn: (url: string) => Promise<T>): Promise<T> {
  const url = await createFreshDatabase(options.databaseUrl, name);
  try {
    await execute(url, ...BUSINESS_TABLES_SQL);
    await variant.install(url);
    return await fn(url);
  } finally {
    if (!options.keepDatabases) await dropDatabase(options.databaseUrl, name).catch((e: unknown) => progress(`could not drop ${name}: ${errorText(e)}`));
  }
}

/**
 * W1 runs in interleaved rounds (a, b, c, ... then a, b, c, ... again) so that a
 * change in machine load during the run hits every variant alike; each variant keeps
 * its own database across rounds. Ratios come from the summed commits.
 */
async function runW1(options: BenchOptions, variants: Variant[]): Promise<ProduceRow[]> {
  const rows = variants.map((v): ProduceRow => ({ id: v.id, label: v.label, kind: v.kind, commits: 0, roundRates: [] }));
  const urls = new Map<string, string>();
  const roundMs = options.w1DurationMs / options.w1Rounds;
  try {
    for (const [i, variant] of variants.entries()) {
      try {
        const url = await createFreshDatabase(options.databaseUrl, `w1_${variant.id}`);
        urls.set(variant.id, url);
        await execute(url, ...BUSINESS_TABLES_SQL);
        await variant.install(url);
      } catch (error) {
        rows[i]!.error = errorText(error);
        progress(`W1 ${variant.label}: setup failed: ${rows[i]!.error}`);
      }
    }
    for (let round = 1; round <= options.w1Rounds; round += 1) {
      for (const [i, variant] of variants.entries()) {
        const row = rows[i]!;
        const url = urls.get(variant.id);
        if (row.error !== undefined || url === undefined) continue;
        try {
          if (variant.openPublisher === undefined) throw new Error('no publisher');
          // Opened per round, so that no peer's background timers run during another's round.
          const publisher = await variant.openPublisher(url);
          try {
            await settle(url);
            const result = await runProduceLoop(url, publisher, { clients: options.w1Clients, warmupMs: options.w1WarmupMs, durationMs: roundMs });
            row.commits = (row.commits ?? 0) + result.commits;
            row.roundRates?.push(Math.round(result.commitsPerSecond));
            progress(`W1 round ${round}/${options.w1Rounds} ${variant.label}: ${Math.round(result.commitsPerSecond)} commits/s`);
          } finally {
            await publisher.close();
          }
        } catch (error) {
          row.error = errorText(error);
          progress(`W1 ${variant.label} failed: ${row.error}`);
        }
      }
    }
  } finally {
    if (!options.keepDatabases) {
      for (const variant of variants) await dropDatabase(options.databaseUrl, `w1_${variant.id}`).catch(() => undefined);
    }
  }
  for (const row of rows) {
    if (row.error === undefined) row.commitsPerSecond = (row.commits ?? 0) / (options.w1DurationMs / 1000);
  }
  return rows;
}

async function runDrain(options: BenchOptions, workload: 'w2' | 'w2r', variants: Variant[]): Promise<DrainRow[]> {
  const rows: DrainRow[] = [];
  for (const variant of variants) {
    const row: DrainRow = { id: variant.id, label: variant.label, kind: variant.kind, messages: options.w2Messages };
    try {
      if (variant.seed === undefined) throw new Error('no seed');
      const seed = variant.seed.bind(variant);
      // Generous for a healthy system (graphile-worker's slowest drain needs ~0.5 ms a message here), short enough to keep the run bounded.
      const timeoutMs = Math.max(30_000, options.w2Messages * 1.5);
      const report = await withDatabase(options, `${workload}_${variant.id}`, variant, async (url) => {
        const seeded = performance.now();
        await seed(url, options.w2Messages);
        await settle(url);
        progress(`${workload.toUpperCase()} ${variant.label}: seeded ${options.w2Messages} in ${Math.round(performance.now() - seeded)} ms, draining`);
        return runInChild(
          { kind: 'drain', workload, variantId: variant.id, url, expected: options.w2Messages, concurrency: options.w2Concurrency, timeoutMs },
          timeoutMs + 60_000,
        );
      });
      if (report.kind === 'error') throw new Error(report.message);
      if (report.kind !== 'drain') throw new Error(`unexpected report ${report.kind}`);
      Object.assign(row, {
        handled: report.handled,
        duplicates: report.duplicates,
        elapsedMs: report.elapsedMs,
        messagesPerSecond: report.messagesPerSecond,
        timedOut: report.timedOut,
        memory: report.memory,
      });
      progress(
        `${workload.toUpperCase()} ${variant.label}: ${report.timedOut ? `TIMED OUT after ${report.handled} handled, at least ` : ''}${Math.round(report.messagesPerSecond)} messages/s in ${(report.elapsedMs / 1000).toFixed(1)} s, peak RSS ${Math.round(report.memory.peakRssBytes / 2 ** 20)} MiB`,
      );
    } catch (error) {
      row.error = errorText(error);
      progress(`${workload.toUpperCase()} ${variant.label} failed: ${row.error}`);
    }
    rows.push(row);
  }
  return rows;
}

async function runW3(options: BenchOptions, variants: Variant[]): Promise<LatencyRow[]> {
  const rows: LatencyRow[] = [];
  for (const variant of variants) {
    const row: LatencyRow = { id: variant.id, label: variant.label, kind: variant.kind };
    try {
      const drainTimeoutMs = 15_000;
      const report = await withDatabase(options, `w3_${variant.id}`, variant, async (url) => {
        await settle(url);
        return runInChild(
          { kind: 'latency', variantId: variant.id, url, concurrency: options.w2Concurrency, rate: options.w3Rate, durationMs: options.w3DurationMs, drainTimeoutMs },
          options.w3DurationMs + drainTimeoutMs + 60_000,
        );
      });
      if (report.kind === 'error') throw new Error(report.message);
      if (report.kind !== 'latency') throw new Error(`unexpected report ${report.kind}`);
      const latency = summarizeLatencies(report.latenciesMs.filter((v): v is number => typeof v === 'number'));
      Object.assign(row, {
        produced: report.produced,
        handled: report.handled,
        duplicates: report.duplicates,
        achievedRate: report.achievedRate,
        latency,
        memory: report.memory,
      });
      progress(
        `W3 ${variant.label}: p50 ${latency.p50Ms.toFixed(2)} ms, p99 ${latency.p99Ms.toFixed(2)} ms, max ${latency.maxMs.toFixed(1)} ms (${report.handled}/${report.produced} handled, ${report.achievedRate.toFixed(0)}/s)`,
      );
    } catch (error) {
      row.error = errorText(error);
      progress(`W3 ${variant.label} failed: ${row.error}`);
    }
    rows.push(row);
  }
  return rows;
}

async function runSaga(options: BenchOptions, direct: boolean): Promise<SagaResult> {
  const count = options.quick ? 500 : 3_000;
  const id = direct ? 'saga_direct' : 'saga';
  const variant = { id: `sagabox_${id}`, label: 'sagabox sagas', kind: 'sagabox', install: async () => {} } as unknown as Variant;
  const how = direct ? 'on direct routes (no relay)' : 'through the relay';
  progress(`SAGA: ${count} three-step sagas, participants in-process, ${how}`);
  try {
    const module = (await import('./saga-workload.js')) as {
      runSagaThroughput(url: string, count: number, timeoutMs: number, direct: boolean): Promise<Omit<SagaResult, 'error'>>;
    };
    const report = await withDatabase(options, id, variant, (url) => module.runSagaThroughput(url, count, 300_000, direct));
    progress(`SAGA ${how}: ${report.completed}/${count} completed, ${Math.round(report.sagasPerSecond)} sagas/s, p50 ${report.p50Ms.toFixed(0)} ms, p99 ${report.p99Ms.toFixed(0)} ms`);
    return report;
  } catch (error) {
    progress(`SAGA failed: ${errorText(error)}`);
    return { sagas: count, completed: 0, elapsedMs: 0, sagasPerSecond: 0, p50Ms: Number.NaN, p99Ms: Number.NaN, timedOut: false, error: errorText(error) };
  }
}

async function main(): Promise<void> {
  const resolved = resolveOptions(process.argv.slice(2), process.env);
  if ('help' in resolved) {
    process.stdout.write(`${resolved.help}\n`);
    return;
  }
  const options = resolved;
  const began = performance.now();
  const loadBefore = os.loadavg()[0] ?? 0;
  const environment = await describeEnvironment(options.databaseUrl);
  progress(`${environment.postgres}, Node ${environment.node}, ${options.quick ? 'quick' : 'full'} run, systems: ${options.systems}, workloads: ${options.workloads.join(', ')}`);
  const { variants, sagaboxSkipped } = await loadVariants(options.systems);
  if (sagaboxSkipped !== undefined) progress(`sagabox skipped: ${sagaboxSkipped}`);

  const results: Results = {
    environment,
    mode: options.quick ? 'quick' : 'full',
    settings: {
      w1Clients: options.w1Clients,
      w1DurationMs: options.w1DurationMs,
      w1WarmupMs: options.w1WarmupMs,
      w1Rounds: options.w1Rounds,
      w2Messages: options.w2Messages,
      w2Concurrency: options.w2Concurrency,
      w3Rate: options.w3Rate,
      w3DurationMs: options.w3DurationMs,
    },
    ...(sagaboxSkipped !== undefined ? { sagaboxSkipped } : {}),
    w1: [],
    w2: [],
    w2r: [],
    w3: [],
    notes: [],
  };
  const has = (w: string) => options.workloads.some((x) => x === w);
  if (has('w1')) results.w1 = await runW1(options, variants.w1);
  if (has('w2')) results.w2 = await runDrain(options, 'w2', variants.w2);
  if (has('w2r')) results.w2r = await runDrain(options, 'w2r', variants.w2r);
  if (has('w3')) results.w3 = await runW3(options, variants.w3);
  if (has('saga') && options.systems !== 'peers' && sagaboxSkipped === undefined) {
    results.saga = await runSaga(options, false);
    results.sagaDirect = await runSaga(options, true);
  }

  const used = [...(has('w1') ? variants.w1 : []), ...(has('w2') ? variants.w2 : []), ...(has('w2r') ? variants.w2r : []), ...(has('w3') ? variants.w3 : [])];
  results.notes = [...new Set(used.flatMap((v) => (v.notes === undefined ? [] : [v.notes])))];
  results.totalSeconds = (performance.now() - began) / 1000;
  results.loadAverage = { before: loadBefore, after: os.loadavg()[0] ?? 0 };

  const report = renderReport(results);
  process.stdout.write(`\n${report}`);
  await mkdir(path.join(benchDir, 'results'), { recursive: true });
  await writeFile(path.join(benchDir, 'results', 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  if (options.writeReport) await writeFile(path.join(benchDir, 'RESULTS.md'), report);
  progress(`wrote ${options.writeReport ? 'bench/RESULTS.md and ' : ''}bench/results/latest.json (${Math.round(results.totalSeconds)} s)`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`[bench] ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
