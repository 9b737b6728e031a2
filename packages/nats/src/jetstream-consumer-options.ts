import type { EventEmitter } from 'node:events';
import type pg from 'pg';
import {
  DEFAULT_INBOX_RETENTION_MS,
  DEFAULT_SCHEMA,
  silentLogger,
  type HandlerContext,
  type HandlerOutcome,
  type Logger,
  type Message,
  type RetryPolicy,
} from '@sagabox/core';
import { assertNoProblems, checkInt, resolveRetryPolicy, validateSchemaName } from '@sagabox/core/extension';
import type { NatsConnectionSource } from './nats-connection.js';
import { checkConnectionSource } from './create-jetstream-destination.js';

/** Default most messages delivered and not yet acked (JetStream's `max_ack_pending`): the consumer's flow control. */
export const DEFAULT_MAX_ACK_PENDING = 1_000;
/**
 * Default most messages handled in one PostgreSQL transaction. A batch takes what has
 * arrived, so batches are this large only under a backlog.
 */
export const DEFAULT_JETSTREAM_BATCH_SIZE = 200;
/** Default transactions run at once, each on its own connection. */
export const DEFAULT_JETSTREAM_CONCURRENCY = 2;
/** Default time JetStream waits for an ack before redelivering, in milliseconds (`ack_wait`). */
export const DEFAULT_ACK_WAIT_MS = 30_000;
/** Default retries of a failing handler: naks with this backoff, then the dead letter after `maxAttempts` deliveries. */
export const DEFAULT_JETSTREAM_RETRY: RetryPolicy = { maxAttempts: 10, baseDelayMs: 1_000, maxDelayMs: 60_000, jitter: true };
/**
 * Default interval of the inbox's retention run (`maintainStorage`), in milliseconds: 0,
 * never. Storage maintenance is a worker's job (or `sagabox storage maintain` from cron,
 * docs/operations.md), as for the RabbitMQ consumer; set 600,000 (the worker's 10 minutes)
 * when this consumer is the only process on its database.
 */
export const DEFAULT_INBOX_MAINTENANCE_INTERVAL_MS = 0;
/** Default longest wait of `stop()` for the batch in flight, in milliseconds. */
export const DEFAULT_JETSTREAM_STOP_TIMEOUT_MS = 10_000;

/** A message consumed from JetStream, as its handler sees it: core's {@link Message} plus where it lives in the stream. */
export interface JetStreamMessage<P = unknown> extends Message<P> {
  /** The NATS subject it was published on. */
  subject: string;
  /** The JetStream stream the message was read from. */
  stream: string;
  /** Its sequence number in the stream. */
  streamSequence: number;
}

/**
 * A handler of JetStream messages: core's worker handler shape, so a saga
 * `participant(...)` handler plugs in as is. Return nothing to ack, an `Outcome` to
 * retry or dead-letter, or throw to retry with backoff. Everything written through
 * `context.client` commits with the message's inbox row, before the ack.
 */
export type JetStreamHandler<P = unknown> = (message: JetStreamMessage<P>, context: HandlerContext) => Promise<void | HandlerOutcome> | void | HandlerOutcome;

/** Options of {@link createJetStreamConsumer}: `servers` to connect, or a `connection` you own. */
export type JetStreamConsumerOptions<P = unknown> = NatsConnectionSource & {
  /** Pool on the database of the inbox and the handler's writes; needs `concurrency` connections. */
  pool: pg.Pool;
  /** sagabox schema of the inbox. Default `'sagabox'`. */
  schema?: string;
  /** The stream to consume. */
  stream: string;
  /** The durable consumer's name on the stream. */
  durable: string;
  handler: JetStreamHandler<P>;
  /** Inbox identity: handling is deduplicated per (consumer, message id). Default: `durable`. */
  consumer?: string;
  /**
   * Create the durable consumer at `start`, or update it to these settings (explicit
   * acks, `ack_wait`, `max_ack_pending`, `max_deliver` = `retry.maxAttempts`). Default
   * true; false binds to a durable someone else manages.
   */
  createConsumer?: boolean;
  /** The subject (wildcards allowed) the durable takes, when it is created here. Default: every subject of the stream. */
  filterSubject?: string;
  /** Most messages delivered and not acked: flow control. Default {@link DEFAULT_MAX_ACK_PENDING}. */
  maxAckPending?: number;
  /** Messages handled per transaction. Default {@link DEFAULT_JETSTREAM_BATCH_SIZE}. */
  batchSize?: number;
  /** Transactions run at once, each on its own connection; one key is never in two at once. Default {@link DEFAULT_JETSTREAM_CONCURRENCY}. */
  concurrency?: number;
  /** How long JetStream waits for an ack before redelivering, in milliseconds. Default {@link DEFAULT_ACK_WAIT_MS}. */
  ackWaitMs?: number;
  /** Handler failures: nak with backoff, dead letter after `maxAttempts` deliveries. Default {@link DEFAULT_JETSTREAM_RETRY}. */
  retry?: Partial<RetryPolicy>;
  /**
   * Subject where a dead-lettered message is published (with `Sagabox-Dead-Reason` and
   * `Sagabox-Dead-Error` headers, awaited PubAck) before it is terminated. Default: none,
   * the message is only terminated (JetStream's advisory names it; it stays in a stream
   * with limits retention).
   */
  deadLetterSubject?: string;
  /** How long handled ids stay in the inbox, in milliseconds. Default: core's `DEFAULT_INBOX_RETENTION_MS` (7 days). */
  inboxRetentionMs?: number;
  /**
   * How often this consumer runs the inbox's retention (`maintainStorage`, also at
   * start), in milliseconds; 0 never. Default {@link DEFAULT_INBOX_MAINTENANCE_INTERVAL_MS}
   * (never: a worker on the database, or a cron job, maintains storage).
   */
  inboxMaintenanceIntervalMs?: number;
  /** Identifies this consumer in logs and on its connection. Default `jetstream-<durable>`. */
  name?: string;
  logger?: Logger;
  /** Longest wait in `stop()` for the batch in flight, in milliseconds. Default {@link DEFAULT_JETSTREAM_STOP_TIMEOUT_MS}. */
  stopTimeoutMs?: number;
};

/** Events of a JetStream consumer; none is ever thrown. */
export interface JetStreamConsumerEvents {
  /** A batch's transaction committed; its messages are acked right after. */
  committed: [{ ids: string[]; duplicates: number }];
  /** A handler failed; the message is nak'ed with `delayMs`. */
  failed: [{ id: string; subject: string; attempts: number; delayMs: number; error: unknown }];
  /** A message was given up: terminated in JetStream (and published to `deadLetterSubject` if set). */
  deadLettered: [{ id: string; subject: string; streamSequence: number; reason: string; error: string }];
  /** A batch could not run (database or broker trouble); it is kept and tried again with backoff. */
  error: [{ error: unknown }];
}

/** A running JetStream consumer. See {@link createJetStreamConsumer}. */
export interface JetStreamConsumer {
  /** Events of the consumer's life (see JetStreamConsumerEvents). */
  readonly events: EventEmitter<JetStreamConsumerEvents>;
  /** Connects, creates or binds the durable consumer, and starts handling. */
  start(): Promise<void>;
  /** Stops pulling, finishes the batch in flight (within `stopTimeoutMs`), hands back unhandled messages. */
  stop(): Promise<void>;
}

/** Consumer options after {@link resolveJetStreamConsumerOptions}: defaults filled in, every value checked. */
export interface ResolvedJetStreamConsumerOptions {
  pool: pg.Pool;
  schema: string;
  stream: string;
  durable: string;
  consumer: string;
  createConsumer: boolean;
  filterSubject: string | undefined;
  maxAckPending: number;
  batchSize: number;
  concurrency: number;
  ackWaitMs: number;
  retry: RetryPolicy;
  deadLetterSubject: string | undefined;
  inboxRetentionMs: number;
  inboxMaintenanceIntervalMs: number;
  name: string;
  logger: Logger;
  stopTimeoutMs: number;
}

// Stream and consumer names: JetStream forbids whitespace, '.', '*', '>', path separators.
const JS_NAME = /^[^\s.*>/\\]{1,255}$/;
const SUBJECT = /^[^\s.]+(\.[^\s.]+)*$/;
const LITERAL_SUBJECT = /^[^\s.*>]+(\.[^\s.*>]+)*$/;

/** Checks consumer options, reporting every problem at once. */
export function resolveJetStreamConsumerOptions<P>(options: JetStreamConsumerOptions<P>): ResolvedJetStreamConsumerOptions {
  const problems: string[] = [];
  const o = (options ?? {}) as Partial<JetStreamConsumerOptions<P>>;
  checkConnectionSource(o as Partial<NatsConnectionSource>, problems);
  if (typeof o.pool?.connect !== 'function') problems.push('pool must be a pg.Pool');
  let schema = DEFAULT_SCHEMA;
  try {
    schema = validateSchemaName(o.schema ?? DEFAULT_SCHEMA);
  } catch (err) {
    problems.push((err as Error).message);
  }
  if (typeof o.stream !== 'string' || !JS_NAME.test(o.stream)) problems.push(`stream must be a JetStream stream name, got ${JSON.stringify(o.stream)}`);
  if (typeof o.durable !== 'string' || !JS_NAME.test(o.durable)) problems.push(`durable must be a JetStream consumer name, got ${JSON.stringify(o.durable)}`);
  if (typeof o.handler !== 'function') problems.push('handler must be a function');
  if (o.consumer !== undefined && (typeof o.consumer !== 'string' || o.consumer.length === 0 || o.consumer.length > 255)) problems.push('consumer must be 1-255 characters');
  if (o.filterSubject !== undefined && (typeof o.filterSubject !== 'string' || !SUBJECT.test(o.filterSubject))) problems.push('filterSubject must be a NATS subject');
  if (o.deadLetterSubject !== undefined && (typeof o.deadLetterSubject !== 'string' || !LITERAL_SUBJECT.test(o.deadLetterSubject))) {
    problems.push('deadLetterSubject must be a NATS subject without wildcards');
  }
  checkInt(problems, 'maxAckPending', o.maxAckPending, 1, 1_000_000);
  checkInt(problems, 'batchSize', o.batchSize, 1, 10_000);
  checkInt(problems, 'concurrency', o.concurrency, 1, 1_000);
  checkInt(problems, 'ackWaitMs', o.ackWaitMs, 1_000, 86_400_000);
  checkInt(problems, 'stopTimeoutMs', o.stopTimeoutMs, 0, 3_600_000);
  checkInt(problems, 'inboxRetentionMs', o.inboxRetentionMs, 1_000, 10 * 365 * 86_400_000);
  checkInt(problems, 'inboxMaintenanceIntervalMs', o.inboxMaintenanceIntervalMs, 0, 86_400_000);
  const retry = resolveRetryPolicy(o.retry, DEFAULT_JETSTREAM_RETRY, problems);
  assertNoProblems('jetstream consumer', problems);
  return {
    pool: o.pool!,
    schema,
    stream: o.stream!,
    durable: o.durable!,
    consumer: o.consumer ?? o.durable!,
    createConsumer: o.createConsumer ?? true,
    filterSubject: o.filterSubject,
    maxAckPending: o.maxAckPending ?? DEFAULT_MAX_ACK_PENDING,
    batchSize: o.batchSize ?? DEFAULT_JETSTREAM_BATCH_SIZE,
    concurrency: o.concurrency ?? DEFAULT_JETSTREAM_CONCURRENCY,
    ackWaitMs: o.ackWaitMs ?? DEFAULT_ACK_WAIT_MS,
    retry,
    deadLetterSubject: o.deadLetterSubject,
    inboxRetentionMs: o.inboxRetentionMs ?? DEFAULT_INBOX_RETENTION_MS,
    inboxMaintenanceIntervalMs: o.inboxMaintenanceIntervalMs ?? DEFAULT_INBOX_MAINTENANCE_INTERVAL_MS,
    name: o.name ?? `jetstream-${o.durable}`,
    logger: o.logger ?? silentLogger,
    stopTimeoutMs: o.stopTimeoutMs ?? DEFAULT_JETSTREAM_STOP_TIMEOUT_MS,
  };
}
