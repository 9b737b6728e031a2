import { sampleBackendCpu } from '../harness/backend-cpu.js';
import { runInChild } from '../harness/child-runner.js';
import { settle, withDatabase } from '../harness/databases.js';
import type { BenchOptions } from '../harness/options.js';
import { errorText, progress } from '../harness/progress.js';
import type { Variant } from '../harness/variant.js';
import type { DrainRow } from '../report/results.js';

/**
 * W2 and W2r: a seeded backlog drained by one consumer process per variant (in a
 * child process, so its memory is measured alone).
 */
export async function runDrain(options: BenchOptions, workload: 'w2' | 'w2r', variants: Variant[]): Promise<DrainRow[]> {
  const rows: DrainRow[] = [];
  for (const variant of variants) {
    const row: DrainRow = { id: variant.id, label: variant.label, kind: variant.kind, messages: options.w2Messages };
    try {
      if (variant.seed === undefined) throw new Error('no seed');
      const seed = variant.seed.bind(variant);
      let postgresCpuMs: number | null = null;
      // A drain still running after this is cut off and reported as at least its rate so
      // far: 1.5 ms a message (a healthy system needs well under 0.5 ms here) but no more
      // than a minute and 0.3 ms a message (120 s for the default 200,000: graphile-worker's
      // defaults, the ratios' first baseline, need ~90 s), at least 30 s, so pg-boss's
      // defaults (~5 messages/s) do not hold the run for 5 minutes.
      const timeoutMs = Math.max(30_000, Math.min(options.w2Messages * 1.5, 60_000 + options.w2Messages * 0.3));
      const report = await withDatabase(options, `${workload}_${variant.id}`, variant, async (url) => {
        const seeded = performance.now();
        await seed(url, options.w2Messages);
        await settle(url);
        progress(`${workload.toUpperCase()} ${variant.label}: seeded ${options.w2Messages} in ${Math.round(performance.now() - seeded)} ms, draining`);
        const cpu = await sampleBackendCpu(url);
        const drained = await runInChild(
          { kind: 'drain', workload, variantId: variant.id, url, expected: options.w2Messages, concurrency: options.w2Concurrency, timeoutMs },
          timeoutMs + 60_000,
        ).finally(async () => {
          postgresCpuMs = await cpu.stop();
        });
        return drained;
      });
      if (report.kind === 'error') throw new Error(report.message);
      if (report.kind !== 'drain') throw new Error(`unexpected report ${report.kind}`);
      Object.assign(row, {
        handled: report.handled,
        duplicates: report.duplicates,
        elapsedMs: report.elapsedMs,
        messagesPerSecond: report.messagesPerSecond,
        timedOut: report.timedOut,
        memory: report.memory,
        ...(postgresCpuMs === null || report.handled === 0 ? {} : { postgresCpuMsPer1000: (postgresCpuMs / report.handled) * 1_000 }),
      });
      progress(
        `${workload.toUpperCase()} ${variant.label}: ${report.timedOut ? `TIMED OUT after ${report.handled} handled, at least ` : ''}${Math.round(report.messagesPerSecond)} messages/s in ${(report.elapsedMs / 1000).toFixed(1)} s, peak RSS ${Math.round(report.memory.peakRssBytes / 2 ** 20)} MiB${row.postgresCpuMsPer1000 === undefined ? '' : `, PostgreSQL CPU ${Math.round(row.postgresCpuMsPer1000)} ms per 1,000`}`,
      );
    } catch (error) {
      row.error = errorText(error);
      progress(`${workload.toUpperCase()} ${variant.label} failed: ${row.error}`);
    }
    rows.push(row);
  }
  return rows;
}

