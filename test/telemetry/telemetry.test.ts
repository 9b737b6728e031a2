import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT_CONTEXT, TraceFlags, trace } from '@opentelemetry/api';
import { createRelay, createWorker, Outcome, type Message } from '@sagabox/core';
import { createMetrics, serveMetrics, traceContextOf, withTraceContext } from '@sagabox/telemetry';
import pg from 'pg';
import type { Histogram, Registry } from 'prom-client';
import { makeOrderSaga } from '../fixtures/saga-order.mjs';
import { createSagaWorld, type SagaWorld } from '../fixtures/saga-world.js';
import { useDatabase } from '../support/test-pool.js';
import { waitFor } from '../support/wait-for.js';

const { db, pool, count } = await useDatabase();
const p = pool(10);

/** The value of one series, by metric name and labels (missing series: 0). */
async function valueOf(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const match = values.find((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want)
    && Object.keys(v.labels).length >= Object.keys(labels).length);
  return match?.value ?? 0;
}

describe('metrics', () => {
  it('count published, delivered, acked, retried and dead-lettered messages, time handlers, and read queue depth at scrape', async () => {
    const metrics = createMetrics({ database: { pool: p } });
    const calls = new Map<string, number>();
    const handler = metrics.timeHandler('mq', async (m: Message<{ n: number }>) => {
      calls.set(m.id, (calls.get(m.id) ?? 0) + 1);
      // A handler runs once per attempt, even when its failure ends a batch: the first call is the first attempt.
      if (m.payload.n === 3 && calls.get(m.id)! <= 1) throw new Error('first attempt fails');
      if (m.payload.n === 4) return Outcome.deadLetter('not for us');
    });
    const relay = createRelay({ pool: p, routes: [{ topic: 'm.*', queue: 'mq' }, { topic: 'slow.*', queue: 'slowq' }], pollIntervalMs: 50, onUnroutable: 'dead-letter' });
    const worker = createWorker({ pool: p, queue: 'mq', handler, batchSize: 1, pollIntervalMs: 50, retry: { baseDelayMs: 10, maxDelayMs: 20 } });
    metrics.instrumentRelay(relay);
    metrics.instrumentWorker(worker, { queue: 'mq' });

    await metrics.publish(p, [1, 2, 3, 4, 5].map((n) => ({ topic: 'm.a', payload: { n } })));
    await metrics.publish(p, { topic: 'nowhere.x', payload: {} });
    await metrics.publish(p, [{ topic: 'slow.a', payload: {} }, { topic: 'slow.a', payload: {} }]);
    // Before the relay runs: the outbox holds all eight.
    expect(await valueOf(metrics.registry, 'sagabox_outbox_messages', { state: 'ready' })).toBe(8);
    expect(await valueOf(metrics.registry, 'sagabox_relay_lag_seconds')).toBeGreaterThan(0);

    await relay.start();
    await worker.start();
    try {
      await waitFor('all handled', async () => (await count('SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = $1', ['mq'])) === 0
        && (await count('SELECT count(*) AS n FROM sagabox.outbox')) === 0);
      await waitFor('acked counted', async () => (await valueOf(metrics.registry, 'sagabox_acked_total', { queue: 'mq' })) === 4);
    } finally {
      await worker.stop();
      await relay.stop();
    }
    const r = metrics.registry;
    expect(await valueOf(r, 'sagabox_published_total', { topic: 'm.a' })).toBe(5);
    expect(await valueOf(r, 'sagabox_published_total', { topic: 'nowhere.x' })).toBe(1);
    expect(await valueOf(r, 'sagabox_relay_delivered_total')).toBe(7);
    expect(await valueOf(r, 'sagabox_dead_lettered_total', { component: 'relay', topic: 'nowhere.x', reason: 'unroutable' })).toBe(1);
    expect(await valueOf(r, 'sagabox_handler_retries_total', { queue: 'mq', topic: 'm.a' })).toBe(1);
    expect(await valueOf(r, 'sagabox_dead_lettered_total', { component: 'worker', queue: 'mq', topic: 'm.a', reason: 'non_retryable' })).toBe(1);
    // Each call is timed once: the failure and the dead-letter outcome, once each.
    const durations = (await (r.getSingleMetric('sagabox_handler_duration_seconds') as Histogram).get()).values.filter((v) => v.metricName === 'sagabox_handler_duration_seconds_count');
    const byOutcome = Object.fromEntries(durations.map((v) => [v.labels.outcome, v.value]));
    expect(byOutcome).toEqual({ ok: 4, error: 1, 'dead-letter': 1 });

    // Database gauges, read at scrape, match the admin API's numbers.
    expect(await valueOf(r, 'sagabox_queue_messages', { queue: 'slowq', state: 'ready' })).toBe(2);
    expect(await valueOf(r, 'sagabox_queue_messages', { queue: 'mq', state: 'dead' })).toBe(1);
    expect(await valueOf(r, 'sagabox_queue_messages', { queue: 'mq', state: 'ready' })).toBe(0);
    expect(await valueOf(r, 'sagabox_queue_oldest_age_seconds', { queue: 'slowq' })).toBeGreaterThan(0);
    expect(await valueOf(r, 'sagabox_outbox_messages', { state: 'ready' })).toBe(0);
    expect(await valueOf(r, 'sagabox_relay_lag_seconds')).toBe(0);
  });

  it('report the oldest snapshot holding vacuum back, and dead tuples and size of each table, at scrape', async () => {
    const metrics = createMetrics({ database: { pool: p } });
    const r = metrics.registry;
    const report = await p.connect();
    try {
      await report.query(`SET application_name = 'metrics report'`);
      await report.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await report.query('SELECT count(*) FROM sagabox.queues');
      const pid = (await report.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      // Statistics are eventual: the writing session's are flushed on demand.
      const writer = await p.connect();
      try {
        await writer.query(`INSERT INTO sagabox.queues (name) SELECT 'vac' || g FROM generate_series(1, 300) g`);
        await writer.query(`DELETE FROM sagabox.queues WHERE name LIKE 'vac%'`);
        await writer.query('SELECT pg_stat_force_next_flush()');
      } finally {
        writer.release();
      }
      // The snapshot is then older than the 0.1 s checked below.
      await new Promise((resolve) => setTimeout(resolve, 200));
      let seen = { dead: 0, errors: 0 };
      await waitFor('dead tuples in the metrics', async () => {
        await r.metrics();
        seen = { dead: await valueOf(r, 'sagabox_table_dead_tuples', { table: 'queues' }), errors: await valueOf(r, 'sagabox_metrics_collect_errors_total') };
        // Approximate by nature: pruning of the earlier tests' updated queue rows, meanwhile,
        // subtracts what it reclaims (seen: 299).
        return seen.dead >= 250;
      }).catch((err: Error) => {
        throw new Error(`${err.message} (last read: ${JSON.stringify(seen)})`);
      });
      expect(await valueOf(r, 'sagabox_vacuum_horizon_holder', { kind: 'backend', pid: String(pid), application: 'metrics report', state: 'idle in transaction' })).toBe(1);
      expect(await valueOf(r, 'sagabox_vacuum_horizon_age_seconds')).toBeGreaterThan(0.1);
      expect(await valueOf(r, 'sagabox_vacuum_horizon_xmin_age')).toBeGreaterThanOrEqual(2);
      // Five minutes is the threshold: not blocked yet.
      expect(await valueOf(r, 'sagabox_vacuum_blocked')).toBe(0);
      expect(await valueOf(r, 'sagabox_table_bytes', { table: 'queue_messages' })).toBeGreaterThan(0);
    } finally {
      await report.query('ROLLBACK');
      await report.query('RESET application_name');
      report.release();
    }
  });

  it('serves /metrics in the Prometheus text format', async () => {
    const metrics = createMetrics({ database: { pool: p }, prefix: 'app_sagabox_' });
    const endpoint = await serveMetrics({ registry: metrics.registry, port: 0 });
    try {
      const res = await fetch(endpoint.url);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      const text = await res.text();
      expect(text).toMatch(/^# TYPE app_sagabox_queue_messages gauge$/m);
      expect(text).toMatch(/^app_sagabox_queue_messages\{queue="slowq",state="ready"\} 2$/m);
      expect((await fetch(endpoint.url.replace('/metrics', '/other'))).status).toBe(404);
    } finally {
      await endpoint.stop();
    }
    // With a token, a scrape without it (or with another) gets 401 and no metrics.
    const guarded = await serveMetrics({ registry: metrics.registry, port: 0, token: 's3cret' });
    try {
      const bare = await fetch(guarded.url);
      expect(bare.status).toBe(401);
      expect(await bare.text()).not.toMatch(/sagabox/);
      expect((await fetch(guarded.url, { headers: { authorization: 'Bearer s3cre' } })).status).toBe(401);
      const ok = await fetch(guarded.url, { headers: { authorization: 'Bearer s3cret' } });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toMatch(/^app_sagabox_queue_messages\{/m);
    } finally {
      await guarded.stop();
    }
  });

  it('keeps the previous values and counts an error when the database read fails', async () => {
    const metrics = createMetrics({ database: { pool: p, schema: 'no_such_schema' } });
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^sagabox_metrics_collect_errors_total 1$/m);
  });
});

describe('saga metrics', () => {
  const orderSaga = makeOrderSaga();
  let world: SagaWorld | undefined;
  afterAll(() => world?.stop());

  it('counts a saga created in the same millisecond as the first scrape', async () => {
    const client = await p.connect();
    try {
      // Inside one transaction now() stands still, so the scrape's clock and the saga's
      // created_at (1 us later) share their millisecond.
      await client.query('BEGIN');
      const r = createMetrics({ database: { pool: client } }).registry;
      await r.metrics(); // first scrape: counting starts here
      await client.query(
        `INSERT INTO sagabox.sagas (id, saga_type, saga_version, status, state, created_at, updated_at)
         VALUES ($1, 'same-ms', 1, 'running', '{}', now() + interval '1 microsecond', now() + interval '1 microsecond')`,
        [randomUUID()],
      );
      await r.metrics();
      expect(await valueOf(r, 'sagabox_sagas_started_total', { type: 'same-ms' })).toBe(1);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });

  it('counts the sagas a failed scrape read at the next scrape that succeeds', async () => {
    // The scrape's queue read waits on a lock until its lock_timeout while its saga read
    // succeeds: the failed scrape must not use up the changes it saw.
    const scrapes = new pg.Pool({ connectionString: db.url, max: 6, lock_timeout: 500 });
    const id = randomUUID();
    const holder = await p.connect();
    try {
      const r = createMetrics({ database: { pool: scrapes } }).registry;
      await r.metrics(); // first scrape: counting starts here
      await p.query(`INSERT INTO sagabox.sagas (id, saga_type, saga_version, status, state) VALUES ($1, 'scrape-failed', 1, 'running', '{}')`, [id]);
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE sagabox.queue_messages IN ACCESS EXCLUSIVE MODE');
      const failed = await r.metrics();
      expect(failed).toMatch(/^sagabox_metrics_collect_errors_total 1$/m);
      expect(failed).not.toMatch(/^sagabox_sagas_started_total\{/m);
      await holder.query('ROLLBACK');
      const next = await r.metrics();
      expect(next).toMatch(/^sagabox_metrics_collect_errors_total 1$/m);
      expect(next).toMatch(/^sagabox_sagas_started_total\{type="scrape-failed"\} 1$/m);
      expect(await r.metrics()).toMatch(/^sagabox_sagas_started_total\{type="scrape-failed"\} 1$/m);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
      await scrapes.end();
      await p.query('DELETE FROM sagabox.sagas WHERE id = $1', [id]);
    }
  });

  it('count sagas started and finished, by status, with their durations', async () => {
    world = await createSagaWorld({ definitions: [orderSaga] });
    const metrics = createMetrics({ database: { pool: world.pool } });
    const r = metrics.registry;
    await r.metrics(); // first scrape: counters start here
    const ok = await world.start(orderSaga, { orderId: `o-${randomUUID()}`, amount: 1 });
    const undone = await world.start(orderSaga, { orderId: `o-${randomUUID()}`, amount: 1, failAt: 'payment' });
    await world.waitForSaga(ok, ['completed']);
    await world.waitForSaga(undone, ['compensated']);
    await r.metrics();
    await r.metrics(); // a second scrape counts nothing twice
    expect(await valueOf(r, 'sagabox_sagas_started_total', { type: 'order' })).toBe(2);
    expect(await valueOf(r, 'sagabox_sagas_finished_total', { type: 'order', status: 'completed' })).toBe(1);
    expect(await valueOf(r, 'sagabox_sagas_finished_total', { type: 'order', status: 'compensated' })).toBe(1);
    expect(await valueOf(r, 'sagabox_sagas', { type: 'order', status: 'completed' })).toBe(1);
    const hist = (await (r.getSingleMetric('sagabox_saga_duration_seconds') as Histogram).get()).values;
    expect(hist.find((v) => v.metricName === 'sagabox_saga_duration_seconds_count' && v.labels.status === 'completed')?.value).toBe(1);
    expect(hist.find((v) => v.metricName === 'sagabox_saga_duration_seconds_sum' && v.labels.status === 'completed')?.value).toBeGreaterThan(0);
  });
});

describe('trace context', () => {
  const spanContext = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: TraceFlags.SAMPLED };
  const active = trace.setSpanContext(ROOT_CONTEXT, spanContext);

  it('carries the producer span from publish to the handler as a remote parent', async () => {
    const headers = withTraceContext({ 'correlation-id': 'c1' }, active);
    expect(headers).toEqual({ 'correlation-id': 'c1', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' });
    const metrics = createMetrics();
    await metrics.publish(p, { topic: 'traced.a', payload: {}, headers });
    const relay = createRelay({ pool: p, routes: [{ topic: 'traced.*', queue: 'traced' }] });
    let seen: unknown;
    const worker = createWorker({ pool: p, queue: 'traced', handler: (m) => void (seen = trace.getSpanContext(traceContextOf(m, ROOT_CONTEXT))) });
    await relay.runOnce();
    await worker.runOnce();
    expect(seen).toEqual({ ...spanContext, isRemote: true });
  });

  it('leaves headers alone without an active span or when the caller set a traceparent, and ignores malformed ones', () => {
    expect(withTraceContext({ a: 'b' }, ROOT_CONTEXT)).toEqual({ a: 'b' });
    const own = { traceparent: '00-11111111111111111111111111111111-2222222222222222-00' };
    expect(withTraceContext(own, active)).toEqual(own);
    expect(trace.getSpanContext(traceContextOf({ headers: { traceparent: 'garbage' } }, ROOT_CONTEXT))).toBeUndefined();
    expect(trace.getSpanContext(traceContextOf({ headers: {} }, ROOT_CONTEXT))).toBeUndefined();
  });
});
