/**
 * Entry point of the child process that runs one consumer (worker pool or relay)
 * for W2, W2r and W3, so that its RSS is its own. Started by child-runner.ts with
 * the same Node binary as the parent; reports one ChildReport over IPC.
 */
import pg from 'pg';
import type { ChildJob, ChildReport, DrainReport, LatencyReport } from './child-protocol.js';
import { preciseNow } from './latency.js';
import { openProducerConnections, produceOne } from './open-loop.js';
import { findVariant, loadVariants } from './registry.js';
import { RssSampler } from './rss-sampler.js';

/** W3 producer connections: enough to keep the offered rate when one publish is slow. */
const PRODUCERS = 4;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A library whose stop() hangs must not hang the run: the process exits after its report anyway. */
async function stopWithin(consumer: { stop(): Promise<void> }, ms: number): Promise<void> {
  await Promise.race([consumer.stop(), sleep(ms)]);
}

async function isBusy(client: pg.Client, sql: string): Promise<boolean> {
  const { rows } = await client.query<{ busy: boolean }>(sql);
  return rows[0]?.busy === true;
}

async function drain(job: Extract<ChildJob, { kind: 'drain' }>): Promise<DrainReport> {
  const { variants } = await loadVariants('all');
  const variant = findVariant(variants, job.workload, job.variantId);
  if (variant.openConsumer === undefined || variant.busySql === undefined) throw new Error(`${variant.id} cannot drain`);
  const seen = new Uint8Array(job.expected + 1);
  let handled = 0;
  let duplicates = 0;
  const consumer = await variant.openConsumer(job.url, {
    concurrency: job.concurrency,
    onMessage(n) {
      if (seen[n] === 1) duplicates += 1;
      else {
        seen[n] = 1;
        handled += 1;
      }
    },
  });
  const probe = new pg.Client({ connectionString: job.url });
  await probe.connect();
  const sampler = new RssSampler();
  sampler.start(100);
  const started = performance.now();
  const deadline = started + job.timeoutMs;
  let timedOut = false;
  await consumer.start();
  // Wait for every handler call first (cheap), then for the store to say it is empty:
  // batched completions and relay deletes land after the last handler ran.
  const mustHandle = variant.handlesMessages === false ? 0 : job.expected;
  while (handled < mustHandle) {
    if (performance.now() > deadline) {
      timedOut = true;
      break;
    }
    await sleep(5);
  }
  while (!timedOut && (await isBusy(probe, variant.busySql))) {
    if (performance.now() > deadline) timedOut = true;
    else await sleep(20);
  }
  const elapsedMs = performance.now() - started;
  const memory = sampler.stop();
  await probe.end();
  await stopWithin(consumer, 15_000);
  return { kind: 'drain', handled, duplicates, elapsedMs, messagesPerSecond: (timedOut ? handled : job.expected) / (elapsedMs / 1000), timedOut, memory };
}

async function latency(job: Extract<ChildJob, { kind: 'latency' }>): Promise<LatencyReport> {
  const { variants } = await loadVariants('all');
  const variant = findVariant(variants, 'w3', job.variantId);
  if (variant.openConsumer === undefined || variant.openPublisher === undefined) throw new Error(`${variant.id} cannot run W3`);
  const total = Math.max(1, Math.round((job.rate * job.durationMs) / 1000));
  const committedAt = new Float64Array(total + 1).fill(Number.NaN);
  const startedAt = new Float64Array(total + 1).fill(Number.NaN);
  let handled = 0;
  let duplicates = 0;
  const consumer = await variant.openConsumer(job.url, {
    concurrency: job.concurrency,
    onMessage(n) {
      const now = preciseNow();
      if (!Number.isNaN(startedAt[n] ?? Number.NaN)) duplicates += 1;
      else {
        startedAt[n] = now;
        handled += 1;
      }
    },
  });
  const publisher = await variant.openPublisher(job.url);
  // Open loop: a transaction starts when it is due, on any idle producer connection,
  // so a slow publish does not lower the offered rate (up to PRODUCERS in flight).
  const { clients: producers, acquire, release } = await openProducerConnections(job.url, PRODUCERS);
  const sampler = new RssSampler();
  sampler.start(100);
  await consumer.start();
  // Let LISTEN sessions and first polls settle before the first message.
  await sleep(1_000);

  const intervalMs = 1000 / job.rate;
  const inFlight = new Set<Promise<void>>();
  let producerError: unknown;
  const t0 = performance.now();
  for (let n = 1; n <= total && producerError === undefined; n += 1) {
    const due = t0 + (n - 1) * intervalMs;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const client = await acquire();
    const txn = (async () => {
      try {
        await produceOne(client, publisher, 'latency', n);
        committedAt[n] = preciseNow();
      } catch (error) {
        producerError ??= error;
      } finally {
        release(client);
      }
    })();
    inFlight.add(txn);
    void txn.then(() => inFlight.delete(txn));
  }
  await Promise.all(inFlight);
  if (producerError !== undefined) throw producerError;
  const producedMs = performance.now() - t0;
  const deadline = performance.now() + job.drainTimeoutMs;
  while (handled < total && performance.now() < deadline) await sleep(10);
  const memory = sampler.stop();
  await Promise.all(producers.map((c) => c.end()));
  await publisher.close();
  await stopWithin(consumer, 15_000);

  const latenciesMs: (number | null)[] = [];
  for (let n = 1; n <= total; n += 1) {
    const latency = (startedAt[n] ?? Number.NaN) - (committedAt[n] ?? Number.NaN);
    latenciesMs.push(Number.isNaN(latency) ? null : latency);
  }
  return { kind: 'latency', produced: total, handled, duplicates, achievedRate: total / (producedMs / 1000), latenciesMs, memory };
}

async function main(): Promise<void> {
  const raw = process.argv[2];
  if (raw === undefined || process.send === undefined) throw new Error('consumer-child is started by the bench runner');
  const job = JSON.parse(raw) as ChildJob;
  let report: ChildReport;
  try {
    report = job.kind === 'drain' ? await drain(job) : await latency(job);
  } catch (error) {
    report = { kind: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) };
  }
  await new Promise<void>((resolve) => process.send!(report, () => resolve()));
  // Libraries may leave timers behind; the report is out, so leave.
  process.exit(0);
}

void main();
