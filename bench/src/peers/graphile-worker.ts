import { Logger, makeWorkerUtils, run, runMigrations, type Runner } from 'graphile-worker';
import type pg from 'pg';
import type { ConsumerOptions, Variant } from '../harness/variant.js';

const TASK = 'bench_noop';

/** graphile-worker logs every job at info; keep errors and warnings only. */
const logger = new Logger((scope) => (level, message) => {
  if (level === 'error' || level === 'warning') process.stderr.write(`graphile-worker ${level} ${JSON.stringify(scope)}: ${message}\n`);
});

async function install(url: string): Promise<void> {
  await runMigrations({ connectionString: url, logger });
}

/** `graphile_worker.add_job(...)` through SQL in the caller's transaction, as an application would. */
async function openPublisher(): Promise<{ publish(client: pg.ClientBase, n: number): Promise<void>; close(): Promise<void> }> {
  return {
    async publish(client, n) {
      await client.query('SELECT graphile_worker.add_job($1, json_build_object($2::text, $3::int))', [TASK, 'n', n]);
    },
    async close() {},
  };
}

async function seed(url: string, count: number): Promise<void> {
  const utils = await makeWorkerUtils({ connectionString: url, logger });
  try {
    const chunk = 5_000;
    for (let start = 1; start <= count; start += chunk) {
      const specs = [];
      for (let n = start; n < Math.min(start + chunk, count + 1); n += 1) specs.push({ identifier: TASK, payload: { n } });
      await utils.addJobs(specs);
    }
  } finally {
    await utils.release();
  }
}

/** Worker options beyond concurrency; `undefined` is graphile-worker's defaults. */
interface Tuning {
  localQueueSize?: number;
  completeJobBatchDelay?: number;
  failJobBatchDelay?: number;
}

function consumer(tuning: Tuning) {
  return async (url: string, options: ConsumerOptions) => {
    let runner: Runner | undefined;
    return {
      async start() {
        runner = await run({
          connectionString: url,
          concurrency: options.concurrency,
          // graphile-worker's own advice: max(10, concurrency + 2).
          maxPoolSize: Math.max(10, options.concurrency + 2),
          noHandleSignals: true,
          logger,
          crontab: '',
          taskList: {
            [TASK]: async (payload) => {
              options.onMessage((payload as { n: number }).n);
            },
          },
          preset: {
            worker: {
              ...(tuning.localQueueSize !== undefined ? { localQueue: { size: tuning.localQueueSize } } : {}),
              ...(tuning.completeJobBatchDelay !== undefined ? { completeJobBatchDelay: tuning.completeJobBatchDelay } : {}),
              ...(tuning.failJobBatchDelay !== undefined ? { failJobBatchDelay: tuning.failJobBatchDelay } : {}),
            },
          },
        });
      },
      async stop() {
        await runner?.stop();
      },
    };
  };
}

// Completed jobs are deleted, so an empty jobs table means drained (batched completions included).
const busySql = 'SELECT EXISTS (SELECT 1 FROM graphile_worker._private_jobs) AS busy';

const BATCHED: Tuning = { localQueueSize: 500, completeJobBatchDelay: 0, failJobBatchDelay: 0 };

/** W1 (c): add_job via SQL inside the transaction. */
export const graphileProducer: Variant = {
  id: 'graphile',
  label: 'graphile-worker add_job',
  kind: 'peer',
  install,
  openPublisher,
  notes: 'graphile-worker: SELECT graphile_worker.add_job(task, payload) in the caller\'s transaction (add_job NOTIFYs at commit).',
};

export const graphileDrainDefault: Variant = {
  id: 'graphile_default',
  label: 'graphile-worker (defaults)',
  kind: 'peer',
  install,
  seed,
  openConsumer: consumer({}),
  busySql,
  handlesMessages: true,
  notes: 'graphile-worker defaults: no local queue, one completeJob per job; maxPoolSize max(10, concurrency+2).',
};

export const graphileDrainBatched: Variant = {
  id: 'graphile_batched',
  label: 'graphile-worker (tuned: localQueue 500, batched completion)',
  kind: 'peer',
  install,
  seed,
  openConsumer: consumer(BATCHED),
  busySql,
  handlesMessages: true,
  notes: 'graphile-worker batched: preset.worker.localQueue.size 500, completeJobBatchDelay 0, failJobBatchDelay 0 (its documented perf settings).',
};

/** W3: add_job then commit, a default worker runs it (LISTEN/NOTIFY wake-up). */
export const graphileLatency: Variant = {
  id: 'graphile',
  label: 'graphile-worker (defaults)',
  kind: 'peer',
  install,
  openPublisher,
  openConsumer: consumer({}),
};
