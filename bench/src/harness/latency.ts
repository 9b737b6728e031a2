import hdr from 'hdr-histogram-js';

/** Percentiles of a latency sample, in milliseconds. */
export interface LatencySummary {
  count: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  /** Samples where the handler started before the producer saw its COMMIT return (recorded as 0). */
  negative: number;
}

/** Summarises latencies given in milliseconds (floats) through an HDR histogram at microsecond resolution. */
export function summarizeLatencies(samplesMs: Iterable<number>): LatencySummary {
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
  let negative = 0;
  try {
    for (const ms of samplesMs) {
      if (ms < 0) negative += 1;
      histogram.recordValue(Math.max(0, Math.round(ms * 1000)));
    }
    const at = (p: number): number => histogram.getValueAtPercentile(p) / 1000;
    return {
      count: histogram.totalCount,
      p50Ms: at(50),
      p95Ms: at(95),
      p99Ms: at(99),
      maxMs: histogram.maxValue / 1000,
      meanMs: histogram.mean / 1000,
      negative,
    };
  } finally {
    histogram.destroy();
  }
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}
