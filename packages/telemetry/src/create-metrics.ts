import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import {
  DEFAULT_SCHEMA,
  publish,
  silentLogger,
  type Executor,
  type Handler,
  type HandlerCall,
  type Logger,
  type OutboxMessage,
  type PublishOptions,
  type PublishResult,
  type Relay,
  type Worker,
} from '@sagabox/core';
import { isHandlerOutcome } from '@sagabox/core/extension';
import { createDatabaseSnapshotReader, type DatabaseSnapshot } from './database-snapshot.js';

/** Default metric name prefix. */
export const DEFAULT_METRICS_PREFIX = 'sagabox_';
/** Default buckets of the handler duration histogram, in seconds. */
export const DEFAULT_HANDLER_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/**
 * Default buckets of the commit-to-handler latency histogram, in seconds: from a
 * message handled while its producer's commit is still echoing (a few ms) to one that
 * waited a minute behind a backlog.
 */
export const DEFAULT_LATENCY_BUCKETS = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/** Default buckets of the saga duration histogram, in seconds. */
export const DEFAULT_SAGA_BUCKETS = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3_600, 21_600, 86_400];

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  /** Where the metrics are registered. Default: a new `Registry` (not prom-client's global one). */
  registry?: Registry;
  /** Prefix of every metric name. Default {@link DEFAULT_METRICS_PREFIX}. */
  prefix?: string;
  /**
   * Read database-wide numbers at each scrape: queue depth and oldest age, relay lag and
   * outbox contents, sagas by status, sagas started and finished, saga duration. They
   * describe the whole database, so enable this in ONE process per database (the
   * dashboard, or a dedicated one), or Prometheus sums the same sagas several times.
   */
  database?: { pool: Executor; schema?: string };
  /** Handler duration buckets, in seconds. Default {@link DEFAULT_HANDLER_BUCKETS}. */
  handlerBuckets?: number[];
  /** Commit-to-handler latency buckets, in seconds. Default {@link DEFAULT_LATENCY_BUCKETS}. */
  latencyBuckets?: number[];
  /** Saga duration buckets, in seconds. Default {@link DEFAULT_SAGA_BUCKETS}. */
  sagaBuckets?: number[];
  /** Where a failed database read is logged (the scrape then shows the previous values). */
  logger?: Logger;
}

/** The metrics of one process. See {@link createMetrics}. */
export interface SagaboxMetrics {
  /** The registry to expose, e.g. with `serveMetrics({ registry })`. */
  readonly registry: Registry;
  /**
   * Counts a relay's deliveries, retries, dead letters, half-message checks and errors.
   * Returns a function that stops counting.
   */
  instrumentRelay(relay: Relay): () => void;
  /**
   * Counts a worker's acks, retries, dead letters and errors, and times its handler
   * calls (`handler_duration_seconds`) and, on each message's first attempt, the time
   * from its commit to its handler's start (`handler_start_latency_seconds`), all
   * labelled with `queue` (the worker's queue). From the worker's events, so any
   * worker (an orchestrator's too) is measured without touching its handler.
   * Returns a function that stops counting.
   */
  instrumentWorker(worker: Pick<Worker, 'events'>, labels: { queue: string }): () => void;
  /**
   * Wraps a handler to time each call in the `handler_duration_seconds` histogram,
   * labelled by queue, topic and outcome (`ok`, `retry`, `dead-letter`, `error`). For
   * handlers run by something other than a sagabox worker (a broker consumer): a
   * worker's calls are timed by {@link SagaboxMetrics.instrumentWorker}, and while a
   * worker of `queue` is instrumented the wrapper times nothing, so nothing is counted twice.
   */
  timeHandler<P>(queue: string, handler: Handler<P>): Handler<P>;
  /**
   * `publish` from `@sagabox/core`, counting the messages it inserted by topic in
   * `published_total`. Counted at insert: a transaction that later rolls back was
   * counted anyway.
   */
  publish(db: Executor, messages: OutboxMessage | readonly OutboxMessage[], options?: PublishOptions): Promise<PublishResult>;
}

/**
 * Creates Prometheus metrics (prom-client) for sagabox: counters and handler duration
 * and latency histograms fed by relay and worker events, and -- with `database` -- gauges,
 * counters and a histogram read from the database at each scrape.
 *
 * Metric names (with the default prefix): `sagabox_published_total{topic}`,
 * `sagabox_relay_delivered_total{destination}`, `sagabox_relay_retries_total{topic}`,
 * `sagabox_dead_lettered_total{component,queue,topic,reason}`,
 * `sagabox_half_message_checks_total{topic,decision}`, `sagabox_acked_total{queue}`,
 * `sagabox_handler_retries_total{queue,topic}`, `sagabox_errors_total{component}`,
 * `sagabox_handler_duration_seconds{queue,topic,outcome}`,
 * `sagabox_handler_start_latency_seconds{queue}`; with `database`:
 * `sagabox_queue_messages{queue,state}`, `sagabox_queue_oldest_age_seconds{queue}`,
 * `sagabox_outbox_messages{state}`, `sagabox_relay_lag_seconds`,
 * `sagabox_sagas{type,status}`, `sagabox_sagas_started_total{type}`,
 * `sagabox_sagas_finished_total{type,status}`, `sagabox_saga_duration_seconds{type,status}`,
 * `sagabox_vacuum_horizon_age_seconds` and `sagabox_vacuum_horizon_xmin_age` (the oldest
 * transaction or snapshot holding vacuum back), `sagabox_vacuum_horizon_holder{kind,pid,application,state}`,
 * `sagabox_vacuum_blocked` (1 when that holder is older than five minutes),
 * `sagabox_table_live_tuples{table}`, `sagabox_table_dead_tuples{table}`, `sagabox_table_bytes{table}`.
 *
 * @example
 * const metrics = createMetrics({ database: { pool } });
 * metrics.instrumentRelay(relay);
 * const worker = createWorker({ pool, queue: 'billing', handler: bill });
 * metrics.instrumentWorker(worker, { queue: 'billing' });
 * await serveMetrics({ registry: metrics.registry, port: 9464 });
 */
export function createMetrics(options: MetricsOptions = {}): SagaboxMetrics {
  const registry = options.registry ?? new Registry();
  const p = options.prefix ?? DEFAULT_METRICS_PREFIX;
  const registers = [registry];
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Counter<L>({ name: p + name, help, labelNames, registers });

  const published = counter('published_total', 'Messages inserted into the outbox by metrics.publish', ['topic']);
  const delivered = counter('relay_delivered_total', 'Messages the relay delivered', ['destination']);
  const relayRetries = counter('relay_retries_total', 'Failed deliveries the relay will retry', ['topic']);
  const dead = counter('dead_lettered_total', 'Messages moved to the dead letters', ['component', 'queue', 'topic', 'reason']);
  const checks = counter('half_message_checks_total', 'Half-message check-back decisions', ['topic', 'decision']);
  const acked = counter('acked_total', 'Messages handled and acked by workers', ['queue']);
  const handlerRetries = counter('handler_retries_total', 'Handler failures that will be retried', ['queue', 'topic']);
  const errors = counter('errors_total', 'Errors of background loops (they continue with backoff)', ['component']);
  const handlerDuration = new Histogram({
    name: `${p}handler_duration_seconds`,
    help: 'Handler call duration, by outcome (ok, retry, dead-letter, error, timeout)',
    labelNames: ['queue', 'topic', 'outcome'] as const,
    buckets: options.handlerBuckets ?? DEFAULT_HANDLER_BUCKETS,
    registers,
  });
  const startLatency = new Histogram({
    name: `${p}handler_start_latency_seconds`,
    help: 'Time from a message\'s commit (its scheduled run time when published with a delay) to the start of its first handler call',
    labelNames: ['queue'] as const,
    buckets: options.latencyBuckets ?? DEFAULT_LATENCY_BUCKETS,
    registers,
  });
  // Queues whose worker is instrumented: timeHandler leaves their timing to the worker's events.
  const instrumentedQueues = new Map<string, number>();

  if (options.database) registerDatabaseMetrics(options, p, registry);

  return {
    registry,
    instrumentRelay(relay) {
      const on = {
        delivered: (e: { count: number; destination: string }) => delivered.inc({ destination: e.destination }, e.count),
        retry: (e: { topic: string }) => relayRetries.inc({ topic: e.topic }),
        deadLettered: (e: { topic: string; reason: string }) => dead.inc({ component: 'relay', queue: '', topic: e.topic, reason: e.reason }),
        halfMessageChecked: (e: { topic: string; decision: string }) => checks.inc({ topic: e.topic, decision: e.decision }),
        error: () => errors.inc({ component: 'relay' }),
      };
      relay.events.on('delivered', on.delivered);
      relay.events.on('retry', on.retry);
      relay.events.on('deadLettered', on.deadLettered);
      relay.events.on('halfMessageChecked', on.halfMessageChecked);
      relay.events.on('error', on.error);
      return () => {
        relay.events.off('delivered', on.delivered);
        relay.events.off('retry', on.retry);
        relay.events.off('deadLettered', on.deadLettered);
        relay.events.off('halfMessageChecked', on.halfMessageChecked);
        relay.events.off('error', on.error);
      };
    },
    instrumentWorker(worker, { queue }) {
      instrumentedQueues.set(queue, (instrumentedQueues.get(queue) ?? 0) + 1);
      const on = {
        handlerCalled: (e: HandlerCall) => {
          handlerDuration.observe({ queue, topic: e.topic, outcome: e.outcome }, e.durationMs / 1_000);
          if (e.waitedMs !== undefined) startLatency.observe({ queue }, e.waitedMs / 1_000);
        },
        handled: (e: { count: number }) => acked.inc({ queue }, e.count),
        failed: (e: { topic: string }) => handlerRetries.inc({ queue, topic: e.topic }),
        deadLettered: (e: { topic: string; reason: string }) => dead.inc({ component: 'worker', queue, topic: e.topic, reason: e.reason }),
        error: () => errors.inc({ component: 'worker' }),
      };
      worker.events.on('handled', on.handled);
      worker.events.on('failed', on.failed);
      worker.events.on('deadLettered', on.deadLettered);
      worker.events.on('error', on.error);
      worker.events.on('handlerCalled', on.handlerCalled);
      let stopped = false;
      return () => {
        if (stopped) return;
        stopped = true;
        const left = (instrumentedQueues.get(queue) ?? 1) - 1;
        if (left > 0) instrumentedQueues.set(queue, left);
        else instrumentedQueues.delete(queue);
        worker.events.off('handlerCalled', on.handlerCalled);
        worker.events.off('handled', on.handled);
        worker.events.off('failed', on.failed);
        worker.events.off('deadLettered', on.deadLettered);
        worker.events.off('error', on.error);
      };
    },
    timeHandler(queue, handler) {
      return async (message, context) => {
        if (instrumentedQueues.has(queue)) return handler(message, context);
        const end = handlerDuration.startTimer({ queue, topic: message.topic });
        try {
          const outcome = await handler(message, context);
          end({ outcome: isHandlerOutcome(outcome) ? outcome.kind : 'ok' });
          return outcome;
        } catch (err) {
          end({ outcome: 'error' });
          throw err;
        }
      };
    },
    async publish(db, messages, publishOptions) {
      const result = await publish(db, messages, publishOptions);
      if (result.inserted.length > 0) {
        const list = Array.isArray(messages) ? (messages as readonly OutboxMessage[]) : [messages as OutboxMessage];
        const inserted = new Set(result.inserted);
        result.ids.forEach((id, i) => {
          if (inserted.has(id)) published.inc({ topic: list[i]!.topic });
        });
      }
      return result;
    },
  };
}

/** Gauges, counters and a histogram filled from one database read per scrape. */
function registerDatabaseMetrics(options: MetricsOptions, p: string, registry: Registry): void {
  const { pool, schema = DEFAULT_SCHEMA } = options.database!;
  const logger = (options.logger ?? silentLogger).child({ component: 'metrics' });
  const read = createDatabaseSnapshotReader(pool, schema);
  const registers = [registry];
  let pending: Promise<DatabaseSnapshot | undefined> | undefined;
  let last: DatabaseSnapshot | undefined;

  // prom-client calls every metric's collect at once: the first starts one read, the
  // others share it. Counters and the histogram are fed once per read, in `snapshot`.
  const snapshot = (): Promise<DatabaseSnapshot | undefined> =>
    (pending ??= read()
      .then((snap) => {
        for (const c of snap.started) started.inc({ type: c.type });
        for (const c of snap.finished) {
          finished.inc({ type: c.type, status: c.status });
          duration.observe({ type: c.type, status: c.status }, c.seconds);
        }
        last = snap;
        return snap;
      })
      .catch((err: unknown) => {
        collectErrors.inc();
        logger.warn({ err }, 'metrics: reading the database failed; keeping the previous values');
        return last;
      })
      .finally(() => setImmediate(() => (pending = undefined))));
  /** A collect function that waits for the shared read, then sets its own metric from it. */
  const from = (apply: (snap: DatabaseSnapshot) => void) => async (): Promise<void> => {
    const snap = await snapshot();
    if (snap) apply(snap);
  };

  const collectErrors: Counter = new Counter({
    name: `${p}metrics_collect_errors_total`,
    help: 'Failed database reads at scrape',
    registers,
    collect: from(() => {}),
  });
  const queueMessages: Gauge<'queue' | 'state'> = new Gauge({
    name: `${p}queue_messages`,
    help: 'Messages in a queue by state (ready, in_flight, retrying, scheduled, dead)',
    labelNames: ['queue', 'state'] as const,
    registers,
    collect: from((snap) => {
      queueMessages.reset();
      for (const q of snap.queues) {
        queueMessages.set({ queue: q.queue, state: 'ready' }, q.ready);
        queueMessages.set({ queue: q.queue, state: 'in_flight' }, q.inFlight);
        // retrying and scheduled apart: a backlog of failures and one of planned work call for different action.
        queueMessages.set({ queue: q.queue, state: 'retrying' }, q.retrying);
        queueMessages.set({ queue: q.queue, state: 'scheduled' }, q.scheduled);
        queueMessages.set({ queue: q.queue, state: 'dead' }, q.dead);
      }
    }),
  });
  const oldestAge: Gauge<'queue'> = new Gauge({
    name: `${p}queue_oldest_age_seconds`,
    help: 'How long the most overdue runnable message of a queue has waited since due (0 when none; scheduled messages count from their run time)',
    labelNames: ['queue'] as const,
    registers,
    collect: from((snap) => {
      oldestAge.reset();
      for (const q of snap.queues) oldestAge.set({ queue: q.queue }, (q.oldestAgeMs ?? 0) / 1_000);
    }),
  });
  const paused: Gauge<'queue'> = new Gauge({
    name: `${p}queue_paused`,
    help: 'Whether an operator paused the queue (1: workers claim nothing from it)',
    labelNames: ['queue'] as const,
    registers,
    collect: from((snap) => {
      paused.reset();
      for (const q of snap.queues) paused.set({ queue: q.queue }, q.pausedAt ? 1 : 0);
    }),
  });
  const outbox: Gauge<'state'> = new Gauge({
    name: `${p}outbox_messages`,
    help: 'Messages in the outbox by state (ready, prepared half messages, dead: the relay\'s dead letters)',
    labelNames: ['state'] as const,
    registers,
    collect: from((snap) => {
      outbox.set({ state: 'ready' }, snap.outbox.ready);
      outbox.set({ state: 'prepared' }, snap.outbox.prepared);
      // The relay's dead letters: queues' are in sagabox_queue_messages{state="dead"}.
      outbox.set({ state: 'dead' }, snap.outbox.dead);
    }),
  });
  const lag: Gauge = new Gauge({
    name: `${p}relay_lag_seconds`,
    help: 'Age of the oldest undelivered committed outbox message (0 when empty)',
    registers,
    collect: from((snap) => lag.set((snap.outbox.lagMs ?? 0) / 1_000)),
  });
  const sagas: Gauge<'type' | 'status'> = new Gauge({
    name: `${p}sagas`,
    help: 'Sagas by type and status',
    labelNames: ['type', 'status'] as const,
    registers,
    collect: from((snap) => {
      sagas.reset();
      for (const c of snap.sagas) sagas.set({ type: c.type, status: c.status }, c.count);
    }),
  });
  const horizonAge: Gauge = new Gauge({
    name: `${p}vacuum_horizon_age_seconds`,
    help: 'How long the oldest transaction or snapshot holding vacuum back has been open (0 when none)',
    registers,
    collect: from((snap) => horizonAge.set((snap.storage.oldest?.ageMs ?? 0) / 1_000)),
  });
  const horizonXmin: Gauge = new Gauge({
    name: `${p}vacuum_horizon_xmin_age`,
    help: 'Transactions since the xmin of the oldest holder of the vacuum horizon (0 when none)',
    registers,
    collect: from((snap) => horizonXmin.set(snap.storage.oldest?.xminAge ?? 0)),
  });
  const holder: Gauge<'kind' | 'pid' | 'application' | 'state'> = new Gauge({
    name: `${p}vacuum_horizon_holder`,
    help: 'The oldest holder of the vacuum horizon (1 while it is the oldest): a session, prepared transaction or replication slot',
    labelNames: ['kind', 'pid', 'application', 'state'] as const,
    registers,
    collect: from((snap) => {
      holder.reset();
      const h = snap.storage.oldest;
      if (h) holder.set({ kind: h.kind, pid: String(h.pid ?? ''), application: h.application ?? h.name ?? '', state: h.state ?? '' }, 1);
    }),
  });
  const blocked: Gauge = new Gauge({
    name: `${p}vacuum_blocked`,
    help: '1 while a transaction or snapshot has held vacuum back for five minutes or more',
    registers,
    collect: from((snap) => blocked.set(snap.storage.vacuumBlocked ? 1 : 0)),
  });
  const tableGauge = (name: string, help: string, value: (t: DatabaseSnapshot['storage']['tables'][number]) => number): void => {
    const gauge: Gauge<'table'> = new Gauge({
      name: `${p}${name}`,
      help,
      labelNames: ['table'] as const,
      registers,
      collect: from((snap) => {
        gauge.reset();
        for (const t of snap.storage.tables) gauge.set({ table: t.table }, value(t));
      }),
    });
  };
  tableGauge('table_live_tuples', 'Live rows of a sagabox table (statistics, approximate; partitions summed)', (t) => t.liveTuples);
  tableGauge('table_dead_tuples', 'Dead rows of a sagabox table not yet removed by vacuum (statistics, approximate)', (t) => t.deadTuples);
  tableGauge('table_bytes', 'Size of a sagabox table with its indexes and TOAST, in bytes', (t) => t.bytes);
  const started = new Counter({
    name: `${p}sagas_started_total`,
    help: 'Sagas started since this process began scraping',
    labelNames: ['type'] as const,
    registers,
    collect: from(() => {}),
  });
  const finished = new Counter({
    name: `${p}sagas_finished_total`,
    help: 'Sagas that ended completed, compensated or failed since this process began scraping',
    labelNames: ['type', 'status'] as const,
    registers,
    collect: from(() => {}),
  });
  const duration = new Histogram({
    name: `${p}saga_duration_seconds`,
    help: 'Time from a saga start to its end status',
    labelNames: ['type', 'status'] as const,
    buckets: options.sagaBuckets ?? DEFAULT_SAGA_BUCKETS,
    registers,
    collect: from(() => {}),
  });
}
