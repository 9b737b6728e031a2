/**
 * `npm run bench`: runs the workloads of issue 3 for sagabox and its peers, each
 * variant on its own fresh database, and writes bench/RESULTS.md and
 * bench/results/latest.json. Started by run.sh under the Node 24 binary.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeEnvironment } from './harness/environment.js';
import { resolveOptions } from './harness/options.js';
import { progress } from './harness/progress.js';
import { loadVariants } from './harness/registry.js';
import { renderReport } from './report/render-report.js';
import type { Results } from './report/results.js';
import { runW1 } from './workloads/w1-publish.js';
import { runDrain } from './workloads/w2-drain.js';
import { runW3 } from './workloads/w3-latency.js';
import { runSaga } from './workloads/saga.js';
import { runStorageWorkloads } from './workloads/storage.js';
import { runChurn } from './workloads/churn.js';
import { runRabbitMqBridgeWorkload } from './workloads/rabbitmq-bridge.js';
import { runNatsBridgeWorkload } from './workloads/nats-bridge.js';

const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

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
  const { variants, sagaboxSkipped } = await loadVariants(options.systems, options.variantIds);
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

  if (has('rabbitmq') && options.systems !== 'peers' && sagaboxSkipped === undefined) results.rabbitmq = await runRabbitMqBridgeWorkload(options, process.env);
  if (has('nats') && options.systems !== 'peers' && sagaboxSkipped === undefined) results.nats = await runNatsBridgeWorkload(options, process.env);

  if (has('snapshot') || has('backlog')) {
    const storage = await runStorageWorkloads(options, progress);
    results.storage = storage.results;
    if (storage.sagaboxSkipped !== undefined && results.sagaboxSkipped === undefined) results.sagaboxSkipped = storage.sagaboxSkipped;
  }

  if (has('churn') && options.systems !== 'peers') results.churn = await runChurn(options, progress);

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
