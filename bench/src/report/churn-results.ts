/** The churn workload: what its parent asks the child for, and what comes back. */

/** sagabox's tables whose size and dead tuples the churn workload follows, partitions summed. */
export const CHURN_TABLES = ['outbox', 'queue_messages', 'inbox', 'dead_letters', 'sagas', 'saga_steps', 'half_message_decisions'] as const;
export type ChurnTable = (typeof CHURN_TABLES)[number];

export interface ChurnJob {
  url: string;
  /** Offered messages per second, half through the outbox and half through a direct route. */
  rate: number;
  /** Sagas started per second. */
  sagaRate: number;
  durationMs: number;
  windowMs: number;
  /** One handler call in `failEvery` (per path) returns a non-retryable outcome. */
  failEvery: number;
  /** Retention of inbox rows, dead letters, half-message decisions and finished sagas. */
  retentionMs: number;
  /** Width of a time partition; maintenance runs this often. */
  partitionMs: number;
  /** How far ahead maintenance creates partitions. */
  aheadMs: number;
  concurrency: number;
  /** How long to wait for stragglers after the producers stop. */
  drainTimeoutMs: number;
}

/** One table at a window's end: partitions (or the table alone) summed. */
export interface ChurnTableStat {
  /** pg_total_relation_size: heap, indexes and TOAST. */
  bytes: number;
  live: number;
  dead: number;
  /** Leaf partitions (1 for a plain table). */
  partitions: number;
}

/** One window of the run (by wall time from the producers' start). */
export interface ChurnWindow {
  fromS: number;
  /** Messages committed per second (both paths). */
  producedPerSecond: number;
  /** Handler calls per second on each queue. */
  handledRelayedPerSecond: number;
  handledDirectPerSecond: number;
  sagasStartedPerSecond: number;
  /** Sagas whose status became completed in the window, per second. */
  sagasCompletedPerSecond: number;
  /** COMMIT to handler start, of messages committed in the window. */
  relayedP50Ms: number;
  relayedP99Ms: number;
  directP50Ms: number;
  directP99Ms: number;
  /** Table statistics at the window's end. */
  tables: Record<ChurnTable, ChurnTableStat>;
}

export interface ChurnReport {
  kind: 'churn';
  offered: number;
  committed: number;
  achievedRate: number;
  /** Distinct messages whose handler ran. */
  handled: number;
  duplicates: number;
  /** Handler calls that returned the planned non-retryable outcome. */
  deadLettered: number;
  sagasStarted: number;
  sagasCompleted: number;
  /** Partitions that maintenance dropped and created, over the run. */
  partitionsDropped: number;
  partitionsCreated: number;
  /** Maintenance steps skipped (lock not granted in time) and runs that failed. */
  maintenanceSkipped: number;
  maintenanceErrors: string[];
  windows: ChurnWindow[];
}

export interface ChurnResults {
  server: string;
  settings: Omit<ChurnJob, 'url' | 'drainTimeoutMs'>;
  report?: ChurnReport;
  error?: string;
}
