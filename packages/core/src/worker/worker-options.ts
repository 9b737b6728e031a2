import type { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import type { TopicRegistry } from '../publish/define-topics.js';
import { validateQueueName } from '../publish/topic-name.js';
import type { HandlerOutcome } from './handler-outcome.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { assertNoProblems, checkInt, DEFAULT_RETRY_POLICY, resolveRetryPolicy, type RetryPolicy } from '../shared/retry-policy.js';
import { DEFAULT_SCHEMA, validateSchemaName } from '../shared/schema-name.js';
import { checkWaitForDatabaseMs, DEFAULT_WAIT_FOR_DATABASE_MS } from '../shared/wait-for-database.js';

/** Default number of batches a worker handles at once. */
export const DEFAULT_WORKER_CONCURRENCY = 1;
/** Default messages claimed per batch (handled in one transaction) while there is no backlog. */
export const DEFAULT_WORKER_BATCH_SIZE = 10;
/**
 * Default largest batch when `batchSize` is not given: while claims keep coming back
 * full (a backlog), a slot's claim size doubles from {@link DEFAULT_WORKER_BATCH_SIZE}
 * up to this (see {@link WorkerOptions.maxBatchSize}).
 */
export const DEFAULT_WORKER_MAX_BATCH_SIZE = 400;
/** Default lease, in milliseconds: how long a dead worker's messages wait before others may take them. */
export const DEFAULT_LEASE_MS = 30_000;
/** Default poll interval of a worker, in milliseconds. */
export const DEFAULT_WORKER_POLL_INTERVAL_MS = 1_000;
/** Default inbox retention, in milliseconds (7 days). */
export const DEFAULT_INBOX_RETENTION_MS = 7 * 24 * 3_600_000;
/** Default interval of the inbox (and flow-control bookkeeping) purge, in milliseconds (10 minutes). */
export const DEFAULT_INBOX_PURGE_INTERVAL_MS = 600_000;
/** Default time a worker's `stop()` waits for batches in flight, in milliseconds. */
export const DEFAULT_WORKER_STOP_TIMEOUT_MS = 10_000;
/**
 * Default handler timeout, in milliseconds, with the default lease: a handler still
 * running after this long is aborted and its batch's transaction ended (see
 * {@link WorkerOptions.handlerTimeoutMs}). With another `leaseMs`, the default is
 * five sixths of it.
 */
export const DEFAULT_HANDLER_TIMEOUT_MS = 25_000;

/** A message as a handler sees it. */
export interface Message<P = unknown> {
  /** The message id (UUIDv7 unless the producer chose one): the inbox deduplicates by it. */
  id: string;
  /** The queue it was claimed from. */
  queue: string;
  /** The topic it was published under. */
  topic: string;
  /** Ordering key: messages with the same key are handled one at a time in commit order; null for none. */
  key: string | null;
  /** The published payload, parsed from JSON. */
  payload: P;
  /** String headers (traceparent, correlation-id, reply-to, ...). */
  headers: Record<string, string>;
  /** This delivery's number: 1 on the first try. */
  attempts: number;
  /** When the producer published it. */
  createdAt: Date;
  /** The priority it was published with. */
  priority: number;
  /** Flow-control group given at publish, or null. */
  group: string | null;
}

/** What a handler gets besides the message. Everything it writes through `client` or `db` commits with the ack. */
export interface HandlerContext {
  /** The transaction's connection. Do not COMMIT or ROLLBACK it. */
  client: pg.PoolClient;
  /**
   * Aborted when the handler has run for `handlerTimeoutMs`: by then its transaction has
   * been ended and its connection closed, so stop work (pass it to `fetch` and the like).
   * Its `reason` is a `SagaboxError` with code `HANDLER_TIMEOUT`.
   */
  signal: AbortSignal;
  /** A kysely instance on the same transaction (created on first use). */
  readonly db: Kysely<any>;
  /** The inbox identity this handler runs as (the worker's `consumer`). */
  consumer: string;
  /** The worker's logger, a child with this message's id, topic and queue. */
  logger: Logger;
}

/** A message handler. Return nothing to ack, an {@link HandlerOutcome} to retry or dead-letter, or throw to retry with backoff. */
export type Handler<P = unknown> = (message: Message<P>, context: HandlerContext) => Promise<void | HandlerOutcome> | void | HandlerOutcome;

/** Options of {@link createWorker}. */
export interface WorkerOptions<P = unknown> {
  /** Pool on the queue's database; needs `concurrency + 1` connections. */
  pool: pg.Pool;
  /** Schema of sagabox's tables. Default `DEFAULT_SCHEMA` (`sagabox`). */
  schema?: string;
  /** The queue to consume (1-255 characters of letters, digits, `_.:-`). */
  queue: string;
  /** Called once per message, inside the transaction that records it in the inbox and acks it. */
  handler: Handler<P>;
  /** Inbox identity: handling is deduplicated per (consumer, message id). Default: the queue name. */
  consumer?: string;
  /** Record handled ids in the inbox so a redelivered message has no second effect. Default true. */
  inbox?: boolean;
  /** Batches handled at once, each on its own connection. Default {@link DEFAULT_WORKER_CONCURRENCY}. */
  concurrency?: number;
  /**
   * Messages claimed per batch (1 to 10,000). A batch is one transaction: handlers run
   * one after the other in it and commit together (fast). Use 1 for slow handlers.
   * Default {@link DEFAULT_WORKER_BATCH_SIZE}, growing to `maxBatchSize` under a backlog.
   */
  batchSize?: number;
  /**
   * Largest batch (1 to 10,000, at least `batchSize`). While a slot's claims come back
   * full and its batches take under a second, its next claim takes twice as many, up to
   * this; a claim that comes back short (the backlog is gone) brings it back to
   * `batchSize`, a batch slower than a second halves it. Fewer, larger claims cost the database less per message; a
   * trickle still goes one small claim at a time. A keyed backlog with fewer free keys
   * than the slots would claim caps the sizes lower for a while (docs/operations.md,
   * "Keys and concurrency"). Applies to queues with no flow limit
   * in force (limited queues claim `batchSize`). Default {@link DEFAULT_WORKER_MAX_BATCH_SIZE}
   * when `batchSize` is not given, else `batchSize` (fixed batches).
   */
  maxBatchSize?: number;
  /**
   * Lease length, in milliseconds (100 to one day): how long a crashed worker's messages
   * wait before other workers may take them. A running handler keeps its message's row
   * locked, so a live worker needs no renewal. Default {@link DEFAULT_LEASE_MS}.
   */
  leaseMs?: number;
  /**
   * How long one handler call may run, in milliseconds (10 to one day). On timeout the
   * handler's `signal` is aborted, the batch's transaction is ended by closing its
   * connection (so a handler that ignores the signal holds no row lock and no
   * connection idle in transaction), the message is retried with backoff and, after
   * `retry.maxAttempts`, dead-lettered with reason `timeout`; the batch's other messages
   * are handled again, as after any failure (see {@link createWorker}). May exceed `leaseMs` (the row lock keeps the message).
   * Default {@link DEFAULT_HANDLER_TIMEOUT_MS}, or five sixths of `leaseMs` when that is given.
   */
  handlerTimeoutMs?: number;
  /** Poll interval, in milliseconds (10 to one hour): the guarantee behind LISTEN's hints. Default {@link DEFAULT_WORKER_POLL_INTERVAL_MS}. */
  pollIntervalMs?: number;
  /** Wake on the relay's NOTIFY hints (needs a session connection). Default true. */
  listen?: boolean;
  /**
   * While its claims come back short (a trickle), VACUUM queue_messages every 100
   * handled messages, at most once a second and only while the table is under 4 MiB.
   * Runs only when the worker's role may vacuum the table. Off by default: the ring of
   * queue_messages, emptied by truncation, keeps a trickle's table bounded, and these
   * vacuums held that back (see docs/operations.md). Default false.
   */
  trickleVacuum?: boolean;
  /** Retries of failing messages. Default {@link DEFAULT_RETRY_POLICY}. */
  retry?: Partial<RetryPolicy>;
  /** Validate payloads at consume; a failing one is dead-lettered as `invalid`. */
  topics?: TopicRegistry;
  /** How long handled ids stay in the inbox, in milliseconds. Default {@link DEFAULT_INBOX_RETENTION_MS}. */
  inboxRetentionMs?: number;
  /** How often to purge old inbox rows (and refilled group token buckets), in milliseconds (0: never). Default {@link DEFAULT_INBOX_PURGE_INTERVAL_MS}. */
  inboxPurgeIntervalMs?: number;
  /** This worker's name in leases and logs. Default `worker-<pid>-<random>`. */
  name?: string;
  /** A pino-compatible logger. Default: silent. */
  logger?: Logger;
  /** How long `stop()` waits for batches in flight, in milliseconds (0 to one hour). Default {@link DEFAULT_WORKER_STOP_TIMEOUT_MS}. */
  stopTimeoutMs?: number;
  /**
   * How long `start()` waits for an unreachable PostgreSQL, retrying with backoff and a
   * `warn` line, before it rejects with `DATABASE_UNREACHABLE`, in milliseconds.
   * Default forever (`DEFAULT_WAIT_FOR_DATABASE_MS`); 0 fails fast.
   */
  waitForDatabaseMs?: number;
}

/** {@link WorkerOptions} checked and completed with defaults by {@link resolveWorkerOptions}. */
export interface ResolvedWorkerOptions<P = unknown> {
  pool: pg.Pool;
  schema: string;
  queue: string;
  handler: Handler<P>;
  consumer: string;
  inbox: boolean;
  concurrency: number;
  batchSize: number;
  maxBatchSize: number;
  leaseMs: number;
  handlerTimeoutMs: number;
  pollIntervalMs: number;
  listen: boolean;
  trickleVacuum: boolean;
  retry: RetryPolicy;
  topics: TopicRegistry | undefined;
  inboxRetentionMs: number;
  inboxPurgeIntervalMs: number;
  name: string;
  logger: Logger;
  stopTimeoutMs: number;
  waitForDatabaseMs: number;
}

/**
 * Checks worker options and fills in the defaults, without side effects. Every problem
 * is reported at once.
 * @throws {InvalidOptionsError} `INVALID_OPTIONS` listing each problem (also for
 *   `undefined` or a non-object).
 * @example resolveWorkerOptions({ pool, queue: 'billing', handler }).handlerTimeoutMs // 25000
 */
export function resolveWorkerOptions<P = unknown>(options: WorkerOptions<P>): ResolvedWorkerOptions<P> {
  const problems: string[] = [];
  const given = (typeof options === 'object' && options !== null ? options : {}) as Partial<WorkerOptions<P>>;
  if (given !== options) problems.push('options must be an object');
  if (typeof given.pool?.connect !== 'function') problems.push('pool must be a pg.Pool');
  if (typeof given.handler !== 'function') problems.push('handler must be a function');
  let schema = DEFAULT_SCHEMA;
  let queue = '';
  try {
    schema = validateSchemaName(given.schema ?? DEFAULT_SCHEMA);
  } catch (err) {
    problems.push((err as Error).message);
  }
  try {
    queue = validateQueueName(given.queue as string);
  } catch (err) {
    problems.push((err as Error).message);
  }
  checkInt(problems, 'concurrency', given.concurrency, 1, 1_000);
  checkInt(problems, 'batchSize', given.batchSize, 1, 10_000);
  checkInt(problems, 'maxBatchSize', given.maxBatchSize, 1, 10_000);
  if (typeof given.maxBatchSize === 'number' && given.maxBatchSize < (given.batchSize ?? DEFAULT_WORKER_BATCH_SIZE)) {
    problems.push('maxBatchSize must be at least batchSize');
  }
  checkInt(problems, 'leaseMs', given.leaseMs, 100, 86_400_000);
  checkInt(problems, 'handlerTimeoutMs', given.handlerTimeoutMs, 10, 86_400_000);
  checkInt(problems, 'pollIntervalMs', given.pollIntervalMs, 10, 3_600_000);
  checkInt(problems, 'inboxRetentionMs', given.inboxRetentionMs, 0, 10 * 365 * 86_400_000);
  checkInt(problems, 'inboxPurgeIntervalMs', given.inboxPurgeIntervalMs, 0, 86_400_000);
  checkInt(problems, 'stopTimeoutMs', given.stopTimeoutMs, 0, 3_600_000);
  checkWaitForDatabaseMs(problems, given.waitForDatabaseMs);
  if (given.consumer !== undefined && (typeof given.consumer !== 'string' || given.consumer.length === 0 || given.consumer.length > 255)) {
    problems.push('consumer must be a string of 1-255 characters');
  }
  if (given.name !== undefined && (typeof given.name !== 'string' || given.name.length === 0 || given.name.length > 255)) {
    problems.push('name must be a string of 1-255 characters');
  }
  for (const flag of ['inbox', 'listen', 'trickleVacuum'] as const) {
    if (given[flag] !== undefined && typeof given[flag] !== 'boolean') problems.push(`${flag} must be a boolean`);
  }
  if (given.topics !== undefined && typeof (given.topics as { validate?: unknown } | null)?.validate !== 'function') {
    problems.push('topics must come from defineTopics(...)');
  }
  if (given.logger !== undefined && typeof (given.logger as { child?: unknown } | null)?.child !== 'function') {
    problems.push('logger must be pino-compatible (with child())');
  }
  if (given.retry !== undefined && (typeof given.retry !== 'object' || given.retry === null)) problems.push('retry must be an object');
  const retry = resolveRetryPolicy(typeof given.retry === 'object' && given.retry !== null ? given.retry : undefined, DEFAULT_RETRY_POLICY, problems);
  assertNoProblems('worker', problems);
  const leaseMs = given.leaseMs ?? DEFAULT_LEASE_MS;
  return {
    pool: given.pool!,
    schema,
    queue,
    handler: given.handler!,
    consumer: given.consumer ?? queue,
    inbox: given.inbox ?? true,
    concurrency: given.concurrency ?? DEFAULT_WORKER_CONCURRENCY,
    batchSize: given.batchSize ?? DEFAULT_WORKER_BATCH_SIZE,
    maxBatchSize: given.maxBatchSize ?? (given.batchSize === undefined ? DEFAULT_WORKER_MAX_BATCH_SIZE : given.batchSize),
    leaseMs,
    handlerTimeoutMs: given.handlerTimeoutMs ?? (given.leaseMs === undefined ? DEFAULT_HANDLER_TIMEOUT_MS : Math.max(10, Math.floor((leaseMs * 5) / 6))),
    pollIntervalMs: given.pollIntervalMs ?? DEFAULT_WORKER_POLL_INTERVAL_MS,
    listen: given.listen ?? true,
    trickleVacuum: given.trickleVacuum ?? false,
    retry,
    topics: given.topics,
    inboxRetentionMs: given.inboxRetentionMs ?? DEFAULT_INBOX_RETENTION_MS,
    inboxPurgeIntervalMs: given.inboxPurgeIntervalMs ?? DEFAULT_INBOX_PURGE_INTERVAL_MS,
    name: given.name ?? `worker-${process.pid}-${randomUUID().slice(0, 8)}`,
    logger: given.logger ?? silentLogger,
    stopTimeoutMs: given.stopTimeoutMs ?? DEFAULT_WORKER_STOP_TIMEOUT_MS,
    waitForDatabaseMs: given.waitForDatabaseMs ?? DEFAULT_WAIT_FOR_DATABASE_MS,
  };
}

/**
 * How a handler call ended: `ok` (it returned; the message is acked once its
 * transaction commits), `retry` or `dead-letter` (it returned that {@link Outcome}),
 * `error` (it threw) or `timeout` (it ran past `handlerTimeoutMs`).
 */
export type HandlerCallOutcome = 'ok' | 'retry' | 'dead-letter' | 'error' | 'timeout';

/** One handler call, as the worker's `handlerCalled` event reports it. */
export interface HandlerCall {
  /** The message's id. */
  id: string;
  /** The message's topic. */
  topic: string;
  /** This attempt's number (1 on the first). */
  attempts: number;
  /**
   * On a message's first attempt, milliseconds from when it was due -- its publish (the
   * outbox row's `created_at`, the producer transaction's start), or its scheduled run
   * time -- to the handler's start: the commit-to-handler latency. Undefined on retries,
   * whose wait is the backoff.
   */
  waitedMs: number | undefined;
  /** How long the handler ran, in milliseconds (up to the timeout when it timed out). */
  durationMs: number;
  /** How the call ended; see {@link HandlerCallOutcome}. */
  outcome: HandlerCallOutcome;
}

/** Events a worker emits; none is ever thrown. */
export interface WorkerEvents {
  /** A batch was handled and committed (count: messages acked). */
  handled: [{ count: number }];
  /** A handler failed (threw, asked to retry, returned something unusable, or timed out); the message will be retried. */
  failed: [{ id: string; topic: string; attempts: number; error: unknown }];
  /** A message was dead-lettered (attempts exhausted, a dead-letter outcome, or invalid). */
  deadLettered: [{ id: string; topic: string; reason: string; error: string }];
  /** A claim or commit failed (e.g. the database is down); the worker backs off and goes on. */
  error: [{ error: unknown }];
  /**
   * A handler call ended, whatever its outcome. Once per call: when a failure in a batch
   * makes the worker handle the batch's other messages again, they are called again.
   * For metrics (see `@sagabox/telemetry`).
   */
  handlerCalled: [HandlerCall];
}

/** A running worker. See {@link createWorker}. */
export interface Worker {
  /** Lifecycle and outcome events; see {@link WorkerEvents}. */
  readonly events: EventEmitter<WorkerEvents>;
  /** Starts claiming (waits for the database up to `waitForDatabaseMs`); idempotent. */
  start(): Promise<void>;
  /** Stops claiming and waits (up to `stopTimeoutMs`) for batches in flight. */
  stop(): Promise<void>;
  /** Claims and handles one batch now; resolves to the number claimed. For tools and tests. */
  runOnce(): Promise<number>;
}
