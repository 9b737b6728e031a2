import type pg from 'pg';
import { assertNoProblems, validateQueueName, validateSchemaName } from '@sagabox/core/extension';
import {
  createWorker,
  silentLogger,
  type Handler,
  type Logger,
  type QueueRoute,
  type RetryPolicy,
  type Worker,
  type WorkerEvents,
} from '@sagabox/core';
import type { EventEmitter } from 'node:events';
import { applySagaMessage, type DefinitionIndex } from './apply-saga-message.js';
import { isSagaDefinition, type SagaDefinition } from './define-saga.js';
import { DEFAULT_SAGA_QUEUE, resolveSagaTopics, sagaRoutes, type SagaTopicOptions } from './saga-topics.js';

/** Default consumer name (inbox identity) of the orchestrator. */
export const DEFAULT_ORCHESTRATOR_CONSUMER = 'saga-orchestrator';
/** Default wait before a message of a saga type or version this orchestrator lacks is tried again, in milliseconds. */
export const DEFAULT_UNKNOWN_VERSION_RETRY_DELAY_MS = 30_000;

/** Options of {@link createOrchestrator}. */
export interface OrchestratorOptions extends SagaTopicOptions {
  /** Pool on the orchestrator's database (the one with the `sagas` table, where sagas are started). */
  pool: pg.Pool;
  /** Every saga definition this orchestrator runs, all versions still in flight included. */
  definitions: readonly SagaDefinition[];
  /** Queue of replies and control messages. Default {@link DEFAULT_SAGA_QUEUE}. */
  queue?: string;
  /** Inbox identity. Default {@link DEFAULT_ORCHESTRATOR_CONSUMER}. */
  consumer?: string;
  /** Batches handled at once. Default 1. */
  concurrency?: number;
  /** Messages per batch transaction. Default 10. */
  batchSize?: number;
  /** Lease of claimed messages, in milliseconds: how soon a killed orchestrator's messages are taken by another. Default 30,000. */
  leaseMs?: number;
  /** Poll interval of the worker, in milliseconds. Default 1,000. */
  pollIntervalMs?: number;
  /** LISTEN for queue hints. Default true. */
  listen?: boolean;
  /** Retry of transitions that throw (database errors, throwing local steps). The worker's default if omitted. */
  retry?: Partial<RetryPolicy>;
  /** Wait before a message of an unknown saga type or version is tried again, in ms. Default {@link DEFAULT_UNKNOWN_VERSION_RETRY_DELAY_MS}. */
  unknownVersionRetryDelayMs?: number;
  /** Where the orchestrator logs (default: silent). */
  logger?: Logger;
  /** Longest wait in `stop()` for transitions in flight, in milliseconds. */
  stopTimeoutMs?: number;
  /**
   * How long `start()` waits for an unreachable PostgreSQL (retrying with backoff and a
   * `warn` line) before it rejects with `DATABASE_UNREACHABLE`, in milliseconds. Default
   * forever; 0 fails fast.
   */
  waitForDatabaseMs?: number;
  /**
   * Longest a transition (local steps included) may run, in milliseconds: then its
   * transaction is rolled back, its connection closed, the local step's `signal`
   * aborted, and the message retried (dead-lettered as `timeout` after the last attempt).
   * The worker's default if omitted (see `WorkerOptions.handlerTimeoutMs`).
   */
  handlerTimeoutMs?: number;
}

/** A running orchestrator; see {@link createOrchestrator}. */
export interface Orchestrator {
  /** The worker's events (`handled`, `failed`, `deadLettered`, `error`). */
  readonly events: EventEmitter<WorkerEvents>;
  /** Relay routes that bring replies and control messages to this orchestrator's queue. */
  readonly routes: readonly QueueRoute[];
  /** The queue the orchestrator consumes replies and control messages from. */
  readonly queue: string;
  /**
   * The transition handler the orchestrator's worker runs, for replies that arrive
   * another way: give it to a broker consumer (for example `createRabbitMqConsumer`)
   * with the consumer name {@link DEFAULT_ORCHESTRATOR_CONSUMER} (or yours) so one
   * inbox deduplicates both paths.
   */
  readonly handler: Handler;
  /** Starts the orchestrator's worker on its queue. */
  start(): Promise<void>;
  /** Stops taking messages and waits for transitions in flight. */
  stop(): Promise<void>;
  /** Handles one batch now; resolves to the number of messages claimed. For tools and tests. */
  runOnce(): Promise<number>;
}

/** Indexes definitions by type and version; reports duplicates. */
function indexDefinitions(definitions: readonly SagaDefinition[] | undefined, problems: string[]): DefinitionIndex {
  const index = new Map<string, Map<number, SagaDefinition>>();
  if (!Array.isArray(definitions) || definitions.length === 0) {
    problems.push('definitions must be a non-empty array of defineSaga(...) results');
    return index;
  }
  for (const d of definitions) {
    if (!isSagaDefinition(d)) {
      problems.push('definitions must be defineSaga(...) results');
      continue;
    }
    let versions = index.get(d.name);
    if (!versions) index.set(d.name, (versions = new Map()));
    if (versions.has(d.version)) problems.push(`saga ${JSON.stringify(d.name)} version ${d.version} is given twice`);
    versions.set(d.version, d);
  }
  return index;
}

/**
 * Creates the saga orchestrator: a worker on the orchestrator's queue that applies every
 * reply, timeout and control message as one transaction — inbox dedupe (by the worker),
 * saga row locked `FOR UPDATE`, state and history updated, the next command or
 * compensation written to the outbox. Run as many as you like; a killed one loses
 * nothing (its transaction rolls back and the message comes back after its lease).
 *
 * The orchestrator does not move messages: run a relay on its database with
 * `orchestrator.routes` (plus routes or destinations for the participants' command
 * topics), and relays on participants' databases that deliver replies here.
 *
 * @example
 * const orchestrator = createOrchestrator({ pool, definitions: [orderSagaV1, orderSagaV2], logger });
 * const relay = createRelay({
 *   pool,
 *   routes: orchestrator.routes,
 *   destinations: [createQueueDestination({ pool: inventoryPool, routes: [{ topic: 'inventory.*', queue: 'inventory' }] })],
 * });
 * await relay.start();
 * await orchestrator.start();
 */
export function createOrchestrator(options: OrchestratorOptions): Orchestrator {
  if (typeof options !== 'object' || options === null) assertNoProblems('orchestrator', ['options must be an object with a pool and definitions']);
  const problems: string[] = [];
  if (!options || typeof options.pool?.connect !== 'function') problems.push('pool must be a pg.Pool');
  const definitions = indexDefinitions(options?.definitions, problems);
  let topics = { schema: 'sagabox', replyTopic: '', controlTopic: '' };
  let queue = DEFAULT_SAGA_QUEUE;
  try {
    topics = resolveSagaTopics({ ...options, schema: validateSchemaName(options.schema ?? 'sagabox') });
  } catch (err) {
    problems.push((err as Error).message);
  }
  try {
    queue = validateQueueName(options.queue ?? DEFAULT_SAGA_QUEUE);
  } catch (err) {
    problems.push((err as Error).message);
  }
  const retryDelay = options.unknownVersionRetryDelayMs ?? DEFAULT_UNKNOWN_VERSION_RETRY_DELAY_MS;
  if (!(typeof retryDelay === 'number' && retryDelay >= 0 && Number.isFinite(retryDelay))) {
    problems.push('unknownVersionRetryDelayMs must be a non-negative number');
  }
  assertNoProblems('orchestrator', problems);

  const logger = (options.logger ?? silentLogger).child({ component: 'saga-orchestrator', queue });
  const handler: Handler = (message, ctx) =>
    applySagaMessage(message, { client: ctx.client, queue, abortSource: ctx, topics, definitions, logger, unknownVersionRetryDelayMs: retryDelay });
  const worker: Worker = createWorker({
    pool: options.pool,
    schema: topics.schema,
    queue,
    consumer: options.consumer ?? DEFAULT_ORCHESTRATOR_CONSUMER,
    ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
    ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
    ...(options.pollIntervalMs !== undefined ? { pollIntervalMs: options.pollIntervalMs } : {}),
    ...(options.leaseMs !== undefined ? { leaseMs: options.leaseMs } : {}),
    ...(options.listen !== undefined ? { listen: options.listen } : {}),
    ...(options.retry !== undefined ? { retry: options.retry } : {}),
    ...(options.stopTimeoutMs !== undefined ? { stopTimeoutMs: options.stopTimeoutMs } : {}),
    ...(options.waitForDatabaseMs !== undefined ? { waitForDatabaseMs: options.waitForDatabaseMs } : {}),
    ...(options.handlerTimeoutMs !== undefined ? { handlerTimeoutMs: options.handlerTimeoutMs } : {}),
    logger,
    handler,
  });
  return {
    events: worker.events,
    routes: sagaRoutes({ ...topics, queue }),
    queue,
    handler,
    start: () => worker.start(),
    stop: () => worker.stop(),
    runOnce: () => worker.runOnce(),
  };
}
