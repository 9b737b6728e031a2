import { runInChild } from '../harness/child-runner.js';
import { settle, withDatabase } from '../harness/databases.js';
import { summarizeLatencies } from '../harness/latency.js';
import type { BenchOptions } from '../harness/options.js';
import { errorText, progress } from '../harness/progress.js';
import type { Variant } from '../harness/variant.js';
import type { LatencyRow } from '../report/results.js';

/** W3: publish-to-handler latency at a fixed rate, measured in a child process. */
export async function runW3(options: BenchOptions, variants: Variant[]): Promise<LatencyRow[]> {
  const rows: LatencyRow[] = [];
  for (const variant of variants) {
    const row: LatencyRow = { id: variant.id, label: variant.label, kind: variant.kind };
    try {
      const drainTimeoutMs = 15_000;
      const report = await withDatabase(options, `w3_${variant.id}`, variant, async (url) => {
        await settle(url);
        return runInChild(
          { kind: 'latency', variantId: variant.id, url, concurrency: options.w2Concurrency, rate: options.w3Rate, durationMs: options.w3DurationMs, drainTimeoutMs },
          options.w3DurationMs + drainTimeoutMs + 60_000,
        );
      });
      if (report.kind === 'error') throw new Error(report.message);
      if (report.kind !== 'latency') throw new Error(`unexpected report ${report.kind}`);
      const latency = summarizeLatencies(report.latenciesMs.filter((v): v is number => typeof v === 'number'));
      Object.assign(row, {
        produced: report.produced,
        handled: report.handled,
        duplicates: report.duplicates,
        achievedRate: report.achievedRate,
        latency,
        memory: report.memory,
      });
      progress(
        `W3 ${variant.label}: p50 ${latency.p50Ms.toFixed(2)} ms, p99 ${latency.p99Ms.toFixed(2)} ms, max ${latency.maxMs.toFixed(1)} ms (${report.handled}/${report.produced} handled, ${report.achievedRate.toFixed(0)}/s)`,
      );
    } catch (error) {
      row.error = errorText(error);
      progress(`W3 ${variant.label} failed: ${row.error}`);
    }
    rows.push(row);
  }
  return rows;
}

