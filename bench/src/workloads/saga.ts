import type { BenchOptions } from '../harness/options.js';
import { withDatabase } from '../harness/databases.js';
import { errorText, progress } from '../harness/progress.js';
import type { Variant } from '../harness/variant.js';
import type { SagaResult } from '../report/results.js';

/**
 * Saga throughput, through the relay or on direct routes. The sagabox code is loaded on
 * demand: it is compiled apart and absent when it does not build against @sagabox/core.
 */
export async function runSaga(options: BenchOptions, direct: boolean): Promise<SagaResult> {
  const count = options.quick ? 500 : 3_000;
  const id = direct ? 'saga_direct' : 'saga';
  const variant = { id: `sagabox_${id}`, label: 'sagabox sagas', kind: 'sagabox', install: async () => {} } as unknown as Variant;
  const how = direct ? 'on direct routes (no relay)' : 'through the relay';
  progress(`SAGA: ${count} three-step sagas, participants in-process, ${how}`);
  try {
    const module = (await import('../sagabox/saga-throughput.js')) as {
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

