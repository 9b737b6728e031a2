// createMetrics().instrumentWorker: handler duration and commit-to-handler latency
// histograms fed by the worker's events, scraped from /metrics; and the alert rules of
// docs/operations.md name only metrics the registry has.
import { readFile } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { createRelay, createWorker, publish, type Message } from '@sagabox/core';
import { pauseQueue } from '@sagabox/core/admin';
import { createMetrics, serveMetrics } from '@sagabox/telemetry';
import { useDatabase } from '../support/test-pool.js';
import { waitFor } from '../support/wait-for.js';

const { pool, count } = await useDatabase();
const p = pool(10);

/** One sample of the Prometheus text: its value, or undefined when the series is absent. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const body = line.slice(name.length).match(/^(?:\{(.*)\})? (\S+)$/);
    if (!body) continue;
    const got = (body[1] ?? '').split(/,(?=[a-z_]+=")/).filter(Boolean);
    if (want.every((w) => got.includes(w)) && got.length === want.length) return Number(body[2]);
  }
  return undefined;
}

describe('instrumentWorker: handler duration and commit-to-handler latency', () => {
  const metrics = createMetrics({ database: { pool: p } });
  let endpoint: Awaited<ReturnType<typeof serveMetrics>>;
  afterAll(() => endpoint?.stop());

  it('times every handler call by outcome and each message\'s first start from its commit, not from before its scheduled time', async () => {
    endpoint = await serveMetrics({ registry: metrics.registry, port: 0 });
    const failedOnce = new Set<string>();
    const started = new Map<string, number>();
    const handler = async (m: Message<{ kind: string }>) => {
      started.set(m.id, Date.now());
      // At least 60 ms by the clock the worker times with: a timer may fire a fraction of
      // a millisecond early against performance.now().
      if (m.payload.kind === 'slow') {
        const until = performance.now() + 60;
        while (performance.now() < until) await new Promise((r) => setTimeout(r, Math.max(1, until - performance.now())));
      }
      if (m.payload.kind === 'fail' && !failedOnce.has(m.id)) {
        failedOnce.add(m.id);
        throw new Error('first attempt fails');
      }
    };
    const relay = createRelay({ pool: p, routes: [{ topic: 'lat.*', queue: 'latq' }, { topic: 'later.*', queue: 'laterq' }], pollIntervalMs: 50 });
    const worker = createWorker({ pool: p, queue: 'latq', handler, batchSize: 1, pollIntervalMs: 50, retry: { baseDelayMs: 10, maxDelayMs: 20 } });
    const scheduledWorker = createWorker({ pool: p, queue: 'laterq', handler, pollIntervalMs: 50 });
    const stopA = metrics.instrumentWorker(worker, { queue: 'latq' });
    const stopB = metrics.instrumentWorker(scheduledWorker, { queue: 'laterq' });
    await relay.start();
    await worker.start();
    await scheduledWorker.start();
    try {
      const publishedAt = Date.now();
      const [scheduled] = (await publish(p, { topic: 'later.due', payload: { kind: 'ok' }, delayMs: 2_000 })).ids;
      await publish(p, [
        { topic: 'lat.a', payload: { kind: 'ok' } },
        { topic: 'lat.a', payload: { kind: 'ok' } },
        { topic: 'lat.slow', payload: { kind: 'slow' } },
        { topic: 'lat.fail', payload: { kind: 'fail' } },
      ]);
      // One message due in an hour: scheduled, not late.
      await publish(p, { topic: 'lat.a', payload: { kind: 'ok' }, delayMs: 3_600_000 });
      await waitFor('the four due messages handled', async () => (await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'latq' AND run_at <= now()`)) === 0
        && failedOnce.size === 1, 20_000);
      await waitFor('the scheduled message handled', async () => (await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'laterq'`)) === 0, 20_000);
      expect(started.get(scheduled!)! - publishedAt).toBeGreaterThanOrEqual(2_000);

      const text = await (await fetch(endpoint.url)).text();
      expect(text).toMatch(/^# TYPE sagabox_handler_start_latency_seconds histogram$/m);
      // First attempts only: the failed message's retry adds a duration, not a latency.
      expect(sample(text, 'sagabox_handler_start_latency_seconds_count', { queue: 'latq' })).toBe(4);
      expect(sample(text, 'sagabox_handler_duration_seconds_count', { queue: 'latq', topic: 'lat.a', outcome: 'ok' })).toBe(2);
      expect(sample(text, 'sagabox_handler_duration_seconds_count', { queue: 'latq', topic: 'lat.fail', outcome: 'error' })).toBe(1);
      expect(sample(text, 'sagabox_handler_duration_seconds_count', { queue: 'latq', topic: 'lat.fail', outcome: 'ok' })).toBe(1);
      expect(sample(text, 'sagabox_handler_duration_seconds_sum', { queue: 'latq', topic: 'lat.slow', outcome: 'ok' })).toBeGreaterThanOrEqual(0.06);
      expect(sample(text, 'sagabox_handler_duration_seconds_bucket', { queue: 'latq', topic: 'lat.slow', outcome: 'ok', le: '0.05' })).toBe(0);
      // The scheduled message counts from its run time, not from its publish: at most the
      // time from 2 s after publish to its handler's start, by the test's clock (the slack
      // covers rounding only), however long the worker took to get to it.
      expect(sample(text, 'sagabox_handler_start_latency_seconds_count', { queue: 'laterq' })).toBe(1);
      expect(sample(text, 'sagabox_handler_start_latency_seconds_sum', { queue: 'laterq' }))
        .toBeLessThanOrEqual((started.get(scheduled!)! - publishedAt - 2_000 + 20) / 1_000);
      expect(sample(text, 'sagabox_handler_start_latency_seconds_bucket', { queue: 'latq', le: '+Inf' })).toBe(4);
      // Gauges read at scrape: scheduled apart from ready, a paused queue flagged.
      expect(sample(text, 'sagabox_queue_messages', { queue: 'latq', state: 'scheduled' })).toBe(1);
      expect(sample(text, 'sagabox_queue_messages', { queue: 'latq', state: 'ready' })).toBe(0);
      expect(sample(text, 'sagabox_queue_paused', { queue: 'latq' })).toBe(0);
      await pauseQueue(p, 'latq');
      const paused = await (await fetch(endpoint.url)).text();
      expect(sample(paused, 'sagabox_queue_paused', { queue: 'latq' })).toBe(1);

      // Once the instrumentation is stopped, calls are no longer timed.
      stopA();
      stopA();
      stopB();
      const before = sample(paused, 'sagabox_handler_duration_seconds_count', { queue: 'laterq', topic: 'later.due', outcome: 'ok' });
      await publish(p, { topic: 'later.due', payload: { kind: 'ok' } });
      await waitFor('handled uninstrumented', async () => (await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'laterq'`)) === 0, 20_000);
      const after = await (await fetch(endpoint.url)).text();
      expect(sample(after, 'sagabox_handler_duration_seconds_count', { queue: 'laterq', topic: 'later.due', outcome: 'ok' })).toBe(before);
    } finally {
      await scheduledWorker.stop();
      await worker.stop();
      await relay.stop();
    }
  });

  it('times a wrapped handler once, whether or not its worker is instrumented too', async () => {
    const own = createMetrics();
    const handler = own.timeHandler('twice', async () => {});
    const worker = createWorker({ pool: p, queue: 'twice', handler, pollIntervalMs: 50 });
    const relay = createRelay({ pool: p, routes: [{ topic: 'twice.*', queue: 'twice' }], pollIntervalMs: 50 });
    own.instrumentWorker(worker, { queue: 'twice' });
    await relay.start();
    await worker.start();
    try {
      await publish(p, [{ topic: 'twice.x', payload: 1 }, { topic: 'twice.x', payload: 2 }]);
      await waitFor('both handled', async () => (await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'twice'`)) === 0
        && (await count(`SELECT count(*) AS n FROM sagabox.outbox`)) === 0, 20_000);
      await waitFor('both timed', async () => sample(await own.registry.metrics(), 'sagabox_handler_duration_seconds_count', { queue: 'twice', topic: 'twice.x', outcome: 'ok' }) === 2);
      await new Promise((r) => setTimeout(r, 100));
      expect(sample(await own.registry.metrics(), 'sagabox_handler_duration_seconds_count', { queue: 'twice', topic: 'twice.x', outcome: 'ok' })).toBe(2);
    } finally {
      await worker.stop();
      await relay.stop();
    }
  });
});

describe('docs/operations.md alert rules', () => {
  it('use only metric names the registry exposes (with database metrics on)', async () => {
    const doc = await readFile(new URL('../../docs/operations.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('### Alert rules'));
    const yaml = section.slice(section.indexOf('```yaml'), section.indexOf('```', section.indexOf('```yaml') + 7));
    const used = new Set([...yaml.matchAll(/\bsagabox_[a-z0-9_]+/g)].map((m) => m[0]));
    expect(used.size).toBeGreaterThanOrEqual(10);
    const registry = createMetrics({ database: { pool: p } }).registry;
    const names = new Set<string>();
    for (const m of registry.getMetricsAsArray()) {
      names.add(m.name);
      // prom-client declares `type` a numeric enum; the metric objects carry the string.
      if ((m.type as unknown) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(m.name + suffix);
    }
    expect([...used].filter((n) => !names.has(n))).toEqual([]);
    // Every failure mode of the brief has a rule.
    for (const alert of ['SagaboxQueueNotDraining', 'SagaboxQueueOverdue', 'SagaboxDeadLettersGrowing', 'SagaboxVacuumBlocked', 'SagaboxHandlerLatencyP99', 'SagaboxRelayStalled', 'SagaboxQueuePausedLong']) {
      expect(yaml).toContain(`alert: ${alert}`);
    }
  });
});
