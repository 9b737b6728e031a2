/** graphile-worker and pg-boss as the storage workloads (held snapshot, deep backlog) use them. */
import { Logger, makeWorkerUtils, run, runMigrations, type Runner } from 'graphile-worker';
import { PgBoss } from 'pg-boss';
import type { StorageSystem } from '../harness/storage-system.js';

const gwLogger = new Logger((scope) => (level, message) => {
  if (level === 'error' || level === 'warning') process.stderr.write(`graphile-worker ${level} ${JSON.stringify(scope)}: ${message}\n`);
});

const task = (queue: string) => `bench_${queue}`;

/** graphile-worker 0.18: a queue is a task identifier (its named queues serialise jobs); defaults, concurrency from the workload. */
export const graphileStorage: StorageSystem = {
  id: 'graphile',
  label: 'graphile-worker (defaults)',
  kind: 'peer',
  notes: 'graphile-worker: one task identifier per queue, add_job(task, payload) in the caller\'s transaction; run() with defaults, concurrency 10, maxPoolSize 12, a taskList of that queue\'s task only.',
  schemas: ['graphile_worker'],
  async install(url) {
    await runMigrations({ connectionString: url, logger: gwLogger });
  },
  async openPublisher(_url, queue) {
    return {
      async publish(client, n) {
        await client.query('SELECT graphile_worker.add_job($1, json_build_object($2::text, $3::int))', [task(queue), 'n', n]);
      },
      async close() {},
    };
  },
  async seed(url, queue, count, firstN) {
    const utils = await makeWorkerUtils({ connectionString: url, logger: gwLogger });
    try {
      const chunk = 10_000;
      for (let start = 0; start < count; start += chunk) {
        const specs = [];
        for (let i = start; i < Math.min(start + chunk, count); i += 1) specs.push({ identifier: task(queue), payload: { n: firstN + i } });
        await utils.addJobs(specs);
      }
    } finally {
      await utils.release();
    }
  },
  async openConsumer(url, queue, options) {
    let runner: Runner | undefined;
    return {
      async start() {
        runner = await run({
          connectionString: url,
          concurrency: options.concurrency,
          maxPoolSize: Math.max(10, options.concurrency + 2),
          noHandleSignals: true,
          logger: gwLogger,
          crontab: '',
          taskList: { [task(queue)]: async (payload) => options.onMessage((payload as { n: number }).n) },
        });
      },
      async stop() {
        await runner?.stop();
      },
    };
  },
};

async function startBoss(url: string, extra: Record<string, unknown> = {}, max = 10): Promise<PgBoss> {
  const boss = new PgBoss({ connectionString: url, max, ...extra });
  boss.on('error', (error) => process.stderr.write(`pg-boss error: ${String(error)}\n`));
  await boss.start();
  return boss;
}

/** pg-boss 12 with LISTEN/NOTIFY (its polling-only default cannot take 500 jobs/s: see W3's notes). */
export const pgBossStorage: StorageSystem = {
  id: 'pgboss',
  label: 'pg-boss (LISTEN/NOTIFY, 10 loops x batch 20)',
  kind: 'peer',
  notes: "pg-boss: createQueue(queue, { notify: true }), send(queue, data, { db }) with the caller's client; work(queue, { batchSize: 20, localConcurrency: 10, pollingIntervalSeconds: 0.5, burstWhenBatchFull: true }) with useListenNotify; its own maintenance (archive, deletion) at its defaults.",
  schemas: ['pgboss'],
  async install(url, queues) {
    const boss = await startBoss(url);
    try {
      for (const queue of queues) await boss.createQueue(queue, { notify: true });
    } finally {
      await boss.stop({ graceful: false, close: true });
    }
  },
  async openPublisher(url, queue) {
    const boss = await startBoss(url, {}, 2);
    return {
      async publish(client, n) {
        await boss.send(queue, { n }, { db: { executeSql: (text, values) => client.query(text, values) } });
      },
      async close() {
        await boss.stop({ graceful: false, close: true });
      },
    };
  },
  async seed(url, queue, count, firstN) {
    const boss = await startBoss(url);
    try {
      const chunk = 10_000;
      for (let start = 0; start < count; start += chunk) {
        const jobs = [];
        for (let i = start; i < Math.min(start + chunk, count); i += 1) jobs.push({ data: { n: firstN + i } });
        await boss.insert(queue, jobs);
      }
    } finally {
      await boss.stop({ graceful: false, close: true });
    }
  },
  async openConsumer(url, queue, options) {
    const boss = await startBoss(url, { useListenNotify: true }, 12);
    return {
      async start() {
        await boss.work<{ n: number }>(
          queue,
          { batchSize: 20, localConcurrency: 10, pollingIntervalSeconds: 0.5, burstWhenBatchFull: true },
          async (jobs) => {
            await Promise.all(jobs.map(async (job) => options.onMessage(job.data.n)));
          },
        );
      },
      async stop() {
        await boss.stop({ graceful: true, close: true, timeout: 10_000 });
      },
    };
  },
};
