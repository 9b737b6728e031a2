/** What the parent asks a consumer child process to do (sent as one JSON argument). */
export type ChildJob =
  | {
      kind: 'drain';
      workload: 'w2' | 'w2r';
      variantId: string;
      url: string;
      /** Messages in the backlog. */
      expected: number;
      concurrency: number;
      timeoutMs: number;
    }
  | {
      kind: 'latency';
      variantId: string;
      url: string;
      concurrency: number;
      rate: number;
      durationMs: number;
      /** How long to wait for stragglers after the producer stops. */
      drainTimeoutMs: number;
    };

export interface MemoryReport {
  startRssBytes: number;
  peakRssBytes: number;
  endRssBytes: number;
}

export interface DrainReport {
  kind: 'drain';
  /** Distinct messages whose handler ran (0 for a relay). */
  handled: number;
  /** Handler calls for a message already handled once. */
  duplicates: number;
  elapsedMs: number;
  messagesPerSecond: number;
  timedOut: boolean;
  memory: MemoryReport;
}

export interface LatencyReport {
  kind: 'latency';
  produced: number;
  handled: number;
  duplicates: number;
  /** Producer commits per second actually reached. */
  achievedRate: number;
  /**
   * Commit-to-handler-start latencies in milliseconds, index = sequence number - 1;
   * null = never handled (IPC is JSON, which has no NaN).
   */
  latenciesMs: (number | null)[];
  memory: MemoryReport;
}

export type ChildReport = DrainReport | LatencyReport | { kind: 'error'; message: string };
