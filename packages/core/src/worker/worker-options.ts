import type { EventEmitter } from 'node:events';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import type { TopicRegistry } from '../publish/define-topics.js';
import type { HandlerOutcome } from './handler-outcome.js';
import type { Logger } from '../shared/logger.js';
import type { RetryPolicy } from '../shared/retry-policy.js';

/** Default number of batches a worker handles at once. */
export const DEFAULT_WORKER_CONCURRENCY = 1;
/** Default messages claimed per batch (handled in one transaction). */
export const DEFAULT_WORKER_BATCH_SIZE = 10;
/** Default lease, in milliseconds: how long a dead worker's messages wait before others may take them. */
export const DEFAULT_LEASE_MS = 30_000;
/** Default poll interval of a worker, in milliseconds. */
export const DEFAULT_WORKER_POLL_INTERVAL_MS = 1_000;
/** Default inbox retention, in milliseconds (7 days). */
export const DEFAULT_INBOX_RETENTION_MS = 7 * 24 * 3_600_000;

/** A message as a handler sees it. */
export interface Message<P = unknown> {
  id: string;
  queue: string;
  topic: string;
  key: string | null;
  payload: P;
  headers: Record<string, string>;
  /** This delivery's number: 1 on the first try. */
  attempts: number;
  /** When the producer published it. */
  createdAt: Date;
  /** Priority when claimed (the published one, raised by aging while it waited). */
  priority: number;
  /** Flow-control group given at publish, or null. */
  group: string | null;
}

/** What a handler gets besides the message. Everything it writes through `client` or `db` commits with the ack. */
export interface HandlerContext {
  /** The transaction's connection. Do not COMMIT or ROLLBACK it. */
  client: pg.PoolClient;
  /** A kysely instance on the same transaction (created on first use). */
  readonly db: Kysely<any>;
  consumer: string;
  logger: Logger;
}

/** A message handler. Return nothing to ack, an {@link HandlerOutcome} to retry or dead-letter, or throw to retry with backoff. */
export type Handler<P = unknown> = (message: Message<P>, context: HandlerContext) => Promise<void | HandlerOutcome> | void | HandlerOutcome;

/** Options of {@link createWorker}. */
export interface WorkerOptions<P = unknown> {
  /** Pool on the queue's database; needs `concurrency + 1` connections. */
  pool: pg.Pool;
  schema?: string;
  queue: string;
  handler: Handler<P>;
  /** Inbox identity: handling is deduplicated per (consumer, message id). Default: the queue name. */
  consumer?: string;
  /** Record handled ids in the inbox so a redelivered message has no second effect. Default true. */
  inbox?: boolean;
  /** Batches handled at once, each on its own connection. Default {@link DEFAULT_WORKER_CONCURRENCY}. */
  concurrency?: number;
  /**
   * Messages claimed per batch. A batch is one transaction: handlers run one after the
   * other in it and commit together (fast). Use 1 for slow handlers. Default {@link DEFAULT_WORKER_BATCH_SIZE}.
   */
  batchSize?: number;
  /** Lease length, in milliseconds. Default {@link DEFAULT_LEASE_MS}. */
  leaseMs?: number;
  pollIntervalMs?: number;
  listen?: boolean;
  retry?: Partial<RetryPolicy>;
  /** Validate payloads at consume; a failing one is dead-lettered as `invalid`. */
  topics?: TopicRegistry;
  inboxRetentionMs?: number;
  /** How often to purge old inbox rows (and refilled group token buckets), in milliseconds (0: never). Default 600,000. */
  inboxPurgeIntervalMs?: number;
  name?: string;
  logger?: Logger;
  stopTimeoutMs?: number;
}

/** Events a worker emits; none is ever thrown. */
export interface WorkerEvents {
  handled: [{ count: number }];
  failed: [{ id: string; topic: string; attempts: number; error: unknown }];
  deadLettered: [{ id: string; topic: string; reason: string; error: string }];
  error: [{ error: unknown }];
}

/** A running worker. See {@link createWorker}. */
export interface Worker {
  readonly events: EventEmitter<WorkerEvents>;
  start(): Promise<void>;
  /** Stops claiming and waits (up to `stopTimeoutMs`) for batches in flight. */
  stop(): Promise<void>;
  /** Claims and handles one batch now; resolves to the number claimed. For tools and tests. */
  runOnce(): Promise<number>;
}
