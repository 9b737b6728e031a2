import { PgBoss, type ConstructorOptions } from 'pg-boss';
import type pg from 'pg';
import type { ConsumerOptions, Publisher, Variant } from '../harness/variant.js';

const QUEUE = 'bench';

async function startBoss(url: string, extra: Partial<ConstructorOptions> = {}, max = 10): Promise<PgBoss> {
  const boss = new PgBoss({ connectionString: url, max, ...extra });
  boss.on('error', (error) => process.stderr.write(`pg-boss error: ${String(error)}\n`));
  await boss.start();
  return boss;
}

function installer(queueNotify: boolean) {
  return async (url: string): Promise<void> => {
    const boss = await startBoss(url);
    try {
      await boss.createQueue(QUEUE, queueNotify ? { notify: true } : {});
    } finally {
      await boss.stop({ graceful: false, close: true });
    }
  };
}

/**
 * `boss.send(name, data, { db })`: pg-boss 12's executor option, here wrapping the
 * caller's pg client that is inside BEGIN, so the job commits with the business row.
 */
async function openPublisher(url: string): Promise<Publisher> {
  const boss = await startBoss(url, {}, 2);
  return {
    async publish(client: pg.ClientBase, n: number) {
      await boss.send(QUEUE, { n }, { db: { executeSql: (text, values) => client.query(text, values) } });
    },
    async close() {
      await boss.stop({ graceful: false, close: true });
    },
  };
}

async function seed(url: string, count: number): Promise<void> {
  const boss = await startBoss(url);
  try {
    const chunk = 5_000;
    for (let start = 1; start <= count; start += chunk) {
      const jobs = [];
      for (let n = start; n < Math.min(start + chunk, count + 1); n += 1) jobs.push({ data: { n } });
      await boss.insert(QUEUE, jobs);
    }
  } finally {
    await boss.stop({ graceful: false, close: true });
  }
}

interface Tuning {
  batchSize: number;
  /** pg-boss `localConcurrency`: independent fetch loops in this process. */
  loops: number;
  listenNotify: boolean;
  /** pg-boss's own polling defaults (2 s, no burst) instead of the shortest poll with bursts. */
  pollingDefaults?: boolean;
}

function consumer(tuning: Tuning) {
  return async (url: string, options: ConsumerOptions) => {
    const boss = await startBoss(url, tuning.listenNotify ? { useListenNotify: true } : {}, Math.max(10, tuning.loops + 2));
    return {
      async start() {
        await boss.work<{ n: number }>(
          QUEUE,
          {
            batchSize: tuning.batchSize,
            localConcurrency: tuning.loops,
            // The shortest poll pg-boss allows; a full batch fetches again at once.
            ...(tuning.pollingDefaults ? {} : { pollingIntervalSeconds: 0.5, burstWhenBatchFull: true }),
          },
          async (jobs) => {
            // A batch handler: the jobs of a batch run together and complete in one statement.
            await Promise.all(jobs.map(async (job) => options.onMessage(job.data.n)));
          },
        );
      },
      async stop() {
        await boss.stop({ graceful: true, close: true, timeout: 10_000 });
      },
    };
  };
}

const busySql = `SELECT EXISTS (SELECT 1 FROM pgboss.job WHERE name = '${QUEUE}' AND state IN ('created', 'retry', 'active')) AS busy`;

/** W1 (d). */
export const pgBossProducer: Variant = {
  id: 'pgboss',
  label: 'pg-boss send({ db })',
  kind: 'peer',
  install: installer(false),
  openPublisher,
  notes: "pg-boss: boss.send(queue, data, { db: { executeSql: (text, values) => client.query(text, values) } }) with the caller's client inside BEGIN.",
};

export const pgBossDrainDefaults: Variant = {
  id: 'pgboss_default',
  label: 'pg-boss (defaults, localConcurrency 10)',
  kind: 'peer',
  install: installer(false),
  seed,
  openConsumer: consumer({ batchSize: 1, loops: 10, listenNotify: false, pollingDefaults: true }),
  busySql,
  handlesMessages: true,
  notes: 'pg-boss defaults: work(queue, { localConcurrency: 10 }, handler): batchSize 1, polling every 2 s, as W2 gives every system concurrency 10.',
};

export const pgBossDrainBatch500: Variant = {
  id: 'pgboss_b500',
  label: 'pg-boss (tuned: batchSize 500)',
  kind: 'peer',
  install: installer(false),
  seed,
  openConsumer: consumer({ batchSize: 500, loops: 1, listenNotify: false }),
  busySql,
  handlesMessages: true,
  notes: 'pg-boss batchSize 500: work(queue, { batchSize: 500, localConcurrency: 1, pollingIntervalSeconds: 0.5, burstWhenBatchFull: true }, batchHandler).',
};

export const pgBossDrainLoops10: Variant = {
  id: 'pgboss_b50x10',
  label: 'pg-boss (tuned: batchSize 50 x localConcurrency 10)',
  kind: 'peer',
  install: installer(false),
  seed,
  openConsumer: consumer({ batchSize: 50, loops: 10, listenNotify: false }),
  busySql,
  handlesMessages: true,
  notes: 'pg-boss 50x10: work(queue, { batchSize: 50, localConcurrency: 10, pollingIntervalSeconds: 0.5, burstWhenBatchFull: true }, batchHandler).',
};

/**
 * W3: polling only (pg-boss's default). A pg-boss fetch loop waits a full polling
 * interval after every fetch that is not a full batch, so batchSize 1 caps ten loops
 * at 20 jobs/s; batches of 20 give ten loops room for 400 jobs/s at the shortest poll.
 */
export const pgBossLatencyPolling: Variant = {
  id: 'pgboss_poll',
  label: 'pg-boss (polling 0.5 s, 10 loops x batch 20)',
  kind: 'peer',
  install: installer(false),
  openPublisher,
  openConsumer: consumer({ batchSize: 20, loops: 10, listenNotify: false }),
  notes: 'pg-boss polling (W3): work(queue, { batchSize: 20, localConcurrency: 10, pollingIntervalSeconds: 0.5, burstWhenBatchFull: true }); with batchSize 1 each loop takes one job per poll (20 jobs/s for ten loops), below the 200/s offered.',
};

/** W3: pg-boss 12's opt-in LISTEN/NOTIFY (useListenNotify + queue notify). */
export const pgBossLatencyNotify: Variant = {
  id: 'pgboss_notify',
  label: 'pg-boss (LISTEN/NOTIFY, 10 loops x batch 20)',
  kind: 'peer',
  install: installer(true),
  openPublisher,
  openConsumer: consumer({ batchSize: 20, loops: 10, listenNotify: true }),
  notes: 'pg-boss notify (W3): new PgBoss({ useListenNotify: true }) and createQueue(queue, { notify: true }); same work() options as polling.',
};
