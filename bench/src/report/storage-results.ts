/** What the storage workloads' parent asks a child for, and what comes back. */

/** The backlog workload's queues: two deep ones and the trickle queue. */
export const BACKLOG_QUEUES = ['deepa', 'deepb', 'trickle'] as const;

export type StorageJob =
  | {
      kind: 'snapshot';
      systemId: string;
      url: string;
      queue: string;
      /** Offered messages per second. */
      rate: number;
      durationMs: number;
      /** Latency windows, by commit time. */
      windowMs: number;
      /** Hold a REPEATABLE READ transaction open for the whole run. */
      holdSnapshot: boolean;
      concurrency: number;
      /** How long to wait for stragglers after the producer stops. */
      drainTimeoutMs: number;
    }
  | {
      kind: 'backlog';
      systemId: string;
      url: string;
      /** Ready messages put in each of the two deep queues. */
      backlog: number;
      /** Length of each measured phase. */
      phaseMs: number;
      /** Offered rate of the trickle queue. */
      trickleRate: number;
      concurrency: number;
    };

export interface TableStat {
  table: string;
  live: number;
  dead: number;
  /** pg_total_relation_size: heap, indexes and TOAST. */
  bytes: number;
}

export interface LatencyWindow {
  /** Seconds from the run's start to the window's start. */
  fromS: number;
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface SnapshotReport {
  kind: 'snapshot';
  offered: number;
  committed: number;
  /** Commits per second over the producing time. */
  achievedRate: number;
  handled: number;
  duplicates: number;
  windows: LatencyWindow[];
  /** Table statistics at the end, the snapshot still held. */
  tables: TableStat[];
  /** Age of the held snapshot's xmin at the end (transactions), when one was held. */
  xminAge?: number;
}

export interface BacklogMeasure {
  /** 4 clients looping BEGIN; publish into the first deep queue; COMMIT. */
  publishPerSecond: number;
  /** One consumer of the first deep queue, handled messages per second. */
  claimPerSecond: number;
  trickleP50Ms: number;
  trickleP99Ms: number;
  trickleHandled: number;
  trickleProduced: number;
}

export interface BacklogReport {
  kind: 'backlog';
  /** Seconds it took to put the backlog in. */
  seedSeconds: number;
  empty: BacklogMeasure;
  deep: BacklogMeasure;
  tables: TableStat[];
}

export type StorageReport = SnapshotReport | BacklogReport | { kind: 'error'; message: string };

/** One system's row in the results. */
export interface StorageRow<R> {
  id: string;
  label: string;
  kind: 'sagabox' | 'peer';
  /** Run without the held snapshot (the baseline), when asked for. */
  baseline?: boolean;
  report?: R;
  error?: string;
}

export interface StorageResults {
  server: string;
  settings: { snapshotRate: number; snapshotMs: number; windowMs: number; backlog: number; phaseMs: number; trickleRate: number };
  snapshot: StorageRow<SnapshotReport>[];
  backlog: StorageRow<BacklogReport>[];
  notes: string[];
}
