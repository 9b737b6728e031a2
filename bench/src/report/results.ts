import type { MemoryReport } from '../harness/child-protocol.js';
import type { Environment } from '../harness/environment.js';
import type { LatencySummary } from '../harness/latency.js';
import type { ChurnResults } from './churn-results.js';
import type { StorageResults } from './storage-results.js';

interface Row {
  id: string;
  label: string;
  kind: 'sagabox' | 'peer' | 'floor';
  /** Set when the variant failed; the other fields may then be missing. */
  error?: string;
}

export interface ProduceRow extends Row {
  commits?: number;
  commitsPerSecond?: number;
  /** commits/s of each interleaved round, to show the spread. */
  roundRates?: number[];
  /** CPU per commit over all rounds, in µs: the publishing process's and PostgreSQL's backends'. */
  cpuPerCommit?: { nodeUs: number; postgresUs?: number };
}

export interface DrainRow extends Row {
  messages?: number;
  handled?: number;
  duplicates?: number;
  elapsedMs?: number;
  /** expected / elapsed; when timed out, handled / elapsed (a lower bound). */
  messagesPerSecond?: number;
  timedOut?: boolean;
  memory?: MemoryReport;
  /** CPU time of the database's PostgreSQL backends during the drain, in ms per 1,000 messages (only when the server runs on this machine). */
  postgresCpuMsPer1000?: number;
}

export interface LatencyRow extends Row {
  produced?: number;
  handled?: number;
  duplicates?: number;
  achievedRate?: number;
  latency?: LatencySummary;
  memory?: MemoryReport;
}

export interface Results {
  environment: Environment;
  mode: 'quick' | 'full';
  settings: {
    w1Clients: number;
    w1DurationMs: number;
    w1WarmupMs: number;
    w1Rounds: number;
    w2Messages: number;
    w2Concurrency: number;
    w3Rate: number;
    w3DurationMs: number;
  };
  sagaboxSkipped?: string;
  w1: ProduceRow[];
  w2: DrainRow[];
  w2r: DrainRow[];
  w3: LatencyRow[];
  /** Saga throughput (sagabox only). */
  saga?: SagaResult;
  /** The same sagas on direct routes: no relay. */
  sagaDirect?: SagaResult;
  /** Held snapshot and deep backlog, when run. */
  storage?: StorageResults;
  /** sagabox alone under sustained load with retention acting, when run. */
  churn?: ChurnResults;
  /** The RabbitMQ bridge beside RabbitMQ's own client, when run. */
  rabbitmq?: BridgeResult;
  /** The NATS JetStream bridge beside the NATS client, when run. */
  nats?: BridgeResult;
  notes: string[];
  totalSeconds?: number;
  /** 1-minute load average before and after the run: other work on the machine skews everything. */
  loadAverage?: { before: number; after: number };
}

/** One saga throughput run. */
export interface SagaResult {
  sagas: number;
  completed: number;
  elapsedMs: number;
  sagasPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  timedOut: boolean;
  error?: string;
}

/** A broker bridge beside the broker's own client: messages per second each way, and the ratios. */
export interface BridgeResult {
  messages: number;
  /** The client publishing with confirms (the broker's limit here). */
  clientPublishPerSecond: number;
  /** outbox -> relay -> broker. */
  relayPerSecond: number;
  relayRatio: number;
  /** Two relays on the same outbox. */
  twoRelaysPerSecond?: number;
  twoRelaysRatio?: number;
  /** A client consumer that acks every message. */
  plainConsumerPerSecond: number;
  /** broker -> inbox consumer (transaction with the inbox, ack after commit). */
  inboxConsumerPerSecond: number;
  consumerRatio: number;
  error?: string;
}
