import * as hdr from 'hdr-histogram-js';
import type pg from 'pg';
import type { CheckResult } from './consistency-check.js';
import type { ServiceName } from '../services/service-config.js';

/** Latency percentiles of one outcome, in milliseconds. */
export interface Percentiles {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

/** What the demo prints at the end; `--json` prints exactly this object. */
export interface DemoSummary {
  orders: number;
  server: 'embedded' | 'url';
  /** What carries the shipping service's messages: sagabox queues, or RabbitMQ. */
  broker: 'postgres' | 'rabbitmq';
  chaos: { enabled: boolean; kills: Record<string, number>; crashes: number };
  completed: number;
  compensated: number;
  failed: number;
  running: number;
  /** Compensated orders by the reason their saga gave. */
  reasons: Record<string, number>;
  /** Orders finished per second, from the first POST until every saga had finished. */
  throughputPerSecond: number;
  elapsedMs: number;
  /** From the order's INSERT to its saga finishing. */
  completionMs: Percentiles;
  compensationMs: Percentiles;
  gateway: { charges: number; injectedFailures: number };
  httpRetries: number;
  deadLetters: Record<string, number>;
  checks: CheckResult[];
  consistent: boolean;
  logDir: string;
  /** Where the services' dashboards were served (until the demo ended, or Ctrl-C with --stay). */
  dashboardUrl: string;
}

/** Sorts a saga's error into the business rule that failed it. */
export function reasonOf(error: string | null): string {
  if (error === null) return 'unknown';
  if (error.startsWith('not enough stock')) return 'not enough stock';
  if (error.startsWith('card declined')) return 'card declined';
  if (error.startsWith('region unsupported')) return 'region unsupported';
  if (/timed? ?out/i.test(error)) return 'timed out';
  return 'other';
}

function percentiles(values: number[]): Percentiles {
  if (values.length === 0) return { count: 0, p50: 0, p99: 0, max: 0 };
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000, numberOfSignificantValueDigits: 3 });
  for (const v of values) histogram.recordValue(Math.max(1, Math.round(v)));
  const result = { count: values.length, p50: histogram.getValueAtPercentile(50), p99: histogram.getValueAtPercentile(99), max: histogram.maxValue };
  histogram.destroy();
  return result;
}

/** Outcome counts, reasons and latencies of the orders' sagas. */
export async function sagaOutcomes(orders: pg.Pool): Promise<Pick<DemoSummary, 'completed' | 'compensated' | 'failed' | 'running' | 'reasons' | 'completionMs' | 'compensationMs'>> {
  const { rows } = await orders.query<{ status: string; error: string | null; ms: number }>(
    `SELECT s.status, s.error, extract(epoch FROM s.updated_at - o.created_at) * 1000 AS ms
       FROM sagabox.sagas s JOIN orders o ON o.id = s.id`,
  );
  const reasons: Record<string, number> = {};
  const completed: number[] = [];
  const compensated: number[] = [];
  let failed = 0;
  let running = 0;
  for (const r of rows) {
    if (r.status === 'completed') completed.push(Number(r.ms));
    else if (r.status === 'compensated') {
      compensated.push(Number(r.ms));
      const reason = reasonOf(r.error);
      reasons[reason] = (reasons[reason] ?? 0) + 1;
    } else if (r.status === 'failed') failed++;
    else running++;
  }
  return {
    completed: completed.length,
    compensated: compensated.length,
    failed,
    running,
    reasons,
    completionMs: percentiles(completed),
    compensationMs: percentiles(compensated),
  };
}

/** Dead letters in each service's database (messages that exhausted their retries). */
export async function deadLetterCounts(pools: Record<ServiceName, pg.Pool>): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const [service, pool] of Object.entries(pools)) {
    counts[service] = Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM sagabox.dead_letters')).rows[0]!.n);
  }
  return counts;
}

const fmtMs = (ms: number): string => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);

/** The summary for humans. */
export function renderSummary(s: DemoSummary): string {
  const kills = Object.entries(s.chaos.kills).filter(([, n]) => n > 0);
  const killCount = kills.reduce((sum, [, n]) => sum + n, 0);
  const reasons = Object.entries(s.reasons).sort((a, b) => b[1] - a[1]).map(([r, n]) => `${r} ${n}`).join(' · ');
  const dead = Object.entries(s.deadLetters).filter(([, n]) => n > 0).map(([svc, n]) => `${svc} ${n}`).join(', ');
  const lines = [
    '',
    `sagabox e-commerce demo: ${s.orders} orders, PostgreSQL ${s.server === 'embedded' ? 'embedded' : 'from DATABASE_URL'}` +
      (s.chaos.enabled ? `, chaos: ${killCount} SIGKILLs (${kills.map(([svc, n]) => `${svc} ${n}`).join(', ') || 'none'})` : ''),
    '',
    `  completed     ${String(s.completed).padStart(6)}`,
    `  compensated   ${String(s.compensated).padStart(6)}${reasons ? `   (${reasons})` : ''}`,
    `  failed        ${String(s.failed).padStart(6)}${s.running > 0 ? `   (still running: ${s.running})` : ''}`,
    `  throughput    ${s.throughputPerSecond.toFixed(1).padStart(6)} orders/s   (${s.orders} orders in ${fmtMs(s.elapsedMs)})`,
    `  completion    p50 ${fmtMs(s.completionMs.p50)} · p99 ${fmtMs(s.completionMs.p99)} · max ${fmtMs(s.completionMs.max)}   (order placed → saga completed)`,
    `  compensation  p50 ${fmtMs(s.compensationMs.p50)} · p99 ${fmtMs(s.compensationMs.p99)}   (order placed → saga compensated)`,
    `  gateway       ${s.gateway.charges} charges, ${s.gateway.injectedFailures} injected failures; ${s.httpRetries} POST /orders retries` +
      (dead ? `; dead letters: ${dead}` : ''),
    '',
    'consistency check',
    ...s.checks.flatMap((c) => [`  ${c.ok ? 'ok  ' : 'FAIL'}  ${c.name}: ${c.detail}`, ...c.examples.map((e) => `          ${e}`)]),
    '',
    s.consistent ? 'all checks passed' : 'CONSISTENCY CHECK FAILED',
    `service logs: ${s.logDir}`,
    '',
  ];
  return lines.join('\n');
}
