import { EventEmitter } from 'node:events';
import type pg from 'pg';
import {
  DEFAULT_HANDLER_TIMEOUT_MS,
  DEFAULT_RETRY_POLICY,
  DEFAULT_SCHEMA,
  SagaboxError,
  silentLogger,
  type Handler,
  type Logger,
  type RetryPolicy,
  type WorkerEvents,
  ROLLED_BACK_AT_COMMIT,
} from '@sagabox/core';
import { assertNoProblems, backoffMs, beginWithInboxRecord, CallContext, commitHandlingOrRolledBack, callHandler, checkInt, isHandlerOutcome, quoteSchema, resolveRetryPolicy, startHandlerSpan, validateSchemaName } from '@sagabox/core/extension';
import { Connection, type AsyncMessage, type Publisher } from 'rabbitmq-client';
import { DEAD_LETTER_HEADERS, fromAmqp, type ReadDelivery } from './amqp-message.js';
import { openConnection, type RabbitMqConnectionOptions } from './connection.js';
import { createKeyedQueue, type Pending } from './keyed-queue.js';
import { createQueueSubscription, type Delivered, type QueueSubscription } from './queue-subscription.js';

/**
 * Default unacknowledged messages the broker sends ahead (AMQP `basic.qos` prefetch
 * count): enough for two batches in flight and two more waiting.
 */
export const DEFAULT_PREFETCH = 1_000;
/**
 * Default most messages handled in one PostgreSQL transaction. A batch takes what has
 * arrived, so batches are this large only under a backlog.
 */
export const DEFAULT_CONSUMER_BATCH_SIZE = 200;
/** Default transactions run at once, each on its own connection. */
export const DEFAULT_CONSUMER_CONCURRENCY = 2;
/** Default longest wait in `stop()` for the batch in flight, in milliseconds. */
export const DEFAULT_CONSUMER_STOP_TIMEOUT_MS = 10_000;

/** A binding the consumer declares: `exchange` (durable, type `topic`) to the queue with `routingKey` (`*`/`#` wildcards). */
export interface RabbitMqBinding {
  /** The exchange to bind the queue to. */
  exchange: string;
  /** The binding's routing key pattern (`*` and `#` wildcards). */
  routingKey: string;
}

/** Options of {@link createRabbitMqConsumer}. */
export interface RabbitMqConsumerOptions<P = unknown> extends RabbitMqConnectionOptions {
  /** Pool on the database of the inbox and of the handler's writes. */
  pool: pg.Pool;
  /** sagabox schema of that database. Default `'sagabox'`. */
  schema?: string;
  /** The RabbitMQ queue to consume. */
  queue: string;
  /**
   * Declare the queue (durable, no arguments) at start. Default true; set false to
   * consume a queue declared elsewhere as it is (one with arguments: quorum, a
   * dead-letter exchange, a length limit), which must then exist.
   */
  declareQueue?: boolean;
  /** Exchanges to declare and bind to the queue at start (and after every reconnect). Default none. */
  bindings?: readonly RabbitMqBinding[];
  /** Runs in the transaction that records the message in the inbox; same shape as `createWorker`'s. */
  handler: Handler<P>;
  /** Inbox identity: the effect happens once per (consumer, message id). Default: the queue name. */
  consumer?: string;
  /** Unacknowledged messages held at once (`basic.qos`). Default {@link DEFAULT_PREFETCH}. */
  prefetch?: number;
  /** Messages handled in one transaction. Default {@link DEFAULT_CONSUMER_BATCH_SIZE}. */
  batchSize?: number;
  /**
   * Batches handled at once, each in its own transaction on its own connection (the pool
   * needs as many); one key is never in two batches at once. Default {@link DEFAULT_CONSUMER_CONCURRENCY}.
   */
  concurrency?: number;
  /** Failed handling: retries with backoff while the message is held, then the dead-letter queue. Default {@link DEFAULT_RETRY_POLICY}. */
  retry?: Partial<RetryPolicy>;
  /** Queue that dead letters go to (declared durable at start). Default `<queue>.dead`. */
  deadLetterQueue?: string;
  /**
   * Longest run of one handler call, in milliseconds. Then its `signal` is aborted (reason:
   * a `HANDLER_TIMEOUT` error), its transaction is abandoned with its connection, and the
   * message is retried like a failure. Default `DEFAULT_HANDLER_TIMEOUT_MS` (the worker's).
   */
  handlerTimeoutMs?: number;
  /** Identifies this consumer in logs. Default `rabbitmq-consumer-<pid>`. */
  name?: string;
  /** Where the consumer logs (default: silent). */
  logger?: Logger;
  /** Longest wait in `stop()` for the batch in flight, in milliseconds. Default {@link DEFAULT_CONSUMER_STOP_TIMEOUT_MS}. */
  stopTimeoutMs?: number;
}

/** A running consumer; see {@link createRabbitMqConsumer}. */
export interface RabbitMqConsumer {
  /** The same typed events as a worker's: `handled`, `failed`, `deadLettered`, `error`. */
  readonly events: EventEmitter<WorkerEvents>;
  /** Connects, declares the queue and its bindings, and starts consuming. */
  start(): Promise<void>;
  /** Stops taking messages, waits for the batch in flight, hands unhandled ones back to the queue. */
  stop(): Promise<void>;
}

interface Delivery<P> {
  amqp: AsyncMessage;
  read: ReadDelivery<P>;
  delivered: Delivered;
}

/** Ends a timed-out handler's backend, unless it is idle already (closing its socket ended it). */
const TERMINATE_BUSY_BACKEND_SQL = `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = $1 AND pid <> pg_backend_pid() AND state <> 'idle'`;

const AMQP_NAME = /^[\w.:-]{1,255}$/;

/**
 * Consumes a RabbitMQ queue into PostgreSQL with the idempotent inbox. Messages are
 * handled in batches, each batch one transaction: the inbox rows of the batch are
 * inserted (one statement), the handler runs for every message not handled before,
 * the transaction commits, and only then are the messages acknowledged. A crash
 * before the ack makes the broker redeliver; the inbox row makes the redelivery do
 * nothing. Messages of one key are handled one at a time in arrival order, also
 * while one of them waits for a retry.
 *
 * A handler that throws (or returns `Outcome.retry`) rolls its batch back; the
 * message is retried with backoff while the consumer holds it, and after
 * `retry.maxAttempts` it is published, with the reason, to the dead-letter queue and
 * acknowledged. A delivery that cannot be read (no `message_id`, a body that is not
 * JSON, headers that are not strings) goes there at once, as `invalid`.
 *
 * @example
 * const consumer = createRabbitMqConsumer({
 *   url: 'amqp://guest:guest@127.0.0.1:5672',
 *   pool,
 *   queue: 'billing',
 *   bindings: [{ exchange: 'orders', routingKey: 'orders.#' }],
 *   handler: async (message, { client }) => {
 *     await client.query('INSERT INTO invoices (order_id) VALUES ($1)', [message.payload.orderId]);
 *   },
 * });
 * await consumer.start();
 */
export function createRabbitMqConsumer<P = unknown>(options: RabbitMqConsumerOptions<P>): RabbitMqConsumer {
  const problems: string[] = [];
  if (!options || typeof options.pool?.connect !== 'function') problems.push('pool must be a pg.Pool');
  let schema = DEFAULT_SCHEMA;
  try {
    schema = validateSchemaName(options?.schema ?? DEFAULT_SCHEMA);
  } catch (err) {
    problems.push((err as Error).message);
  }
  if (typeof options?.queue !== 'string' || !AMQP_NAME.test(options.queue)) problems.push('queue must be 1-255 letters, digits, _ . : or -');
  if (options?.deadLetterQueue !== undefined && (typeof options.deadLetterQueue !== 'string' || !AMQP_NAME.test(options.deadLetterQueue))) {
    problems.push('deadLetterQueue must be 1-255 letters, digits, _ . : or -');
  }
  if (typeof options?.handler !== 'function') problems.push('handler must be a function');
  if (options && options.url === undefined && !(options.connection instanceof Connection)) problems.push('give url or connection');
  checkInt(problems, 'prefetch', options?.prefetch, 1, 65_535);
  checkInt(problems, 'batchSize', options?.batchSize, 1, 10_000);
  checkInt(problems, 'concurrency', options?.concurrency, 1, 1_000);
  checkInt(problems, 'stopTimeoutMs', options?.stopTimeoutMs, 0, 3_600_000);
  checkInt(problems, 'handlerTimeoutMs', options?.handlerTimeoutMs, 1, 3_600_000);
  for (const [i, b] of (options?.bindings ?? []).entries()) {
    if (typeof b?.exchange !== 'string' || !AMQP_NAME.test(b.exchange)) problems.push(`bindings[${i}].exchange must be 1-255 letters, digits, _ . : or -`);
    if (typeof b?.routingKey !== 'string' || b.routingKey.length > 255) problems.push(`bindings[${i}].routingKey must be a string of at most 255 characters`);
  }
  const retry = resolveRetryPolicy(options?.retry, DEFAULT_RETRY_POLICY, problems);
  assertNoProblems('rabbitmq consumer', problems);

  const queue = options.queue;
  const consumerName = options.consumer ?? queue;
  const deadLetterQueue = options.deadLetterQueue ?? `${queue}.dead`;
  const prefetch = options.prefetch ?? DEFAULT_PREFETCH;
  const batchSize = options.batchSize ?? DEFAULT_CONSUMER_BATCH_SIZE;
  const concurrency = options.concurrency ?? DEFAULT_CONSUMER_CONCURRENCY;
  const stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_CONSUMER_STOP_TIMEOUT_MS;
  const handlerTimeoutMs = options.handlerTimeoutMs ?? DEFAULT_HANDLER_TIMEOUT_MS;
  const name = options.name ?? `rabbitmq-consumer-${process.pid}`;
  const log = (options.logger ?? silentLogger).child({ component: 'rabbitmq-consumer', consumer: consumerName, queue, name });
  const events = new EventEmitter<WorkerEvents>();
  const pending = createKeyedQueue<Delivery<P>>();
  let connection: Connection | undefined;
  let owned = false;
  let subscription: QueueSubscription | undefined;
  let deadLetters: Publisher | undefined;
  let started = false;
  let stopping = false;
  let lanes: Promise<void>[] = [];
  let pauseUntil = 0;

  const emitError = (error: unknown): void => {
    log.error({ err: error }, 'consumer batch failed; backing off');
    if (events.listenerCount('error') > 0) events.emit('error', { error });
  };

  const deadLetter = async (p: Pending<Delivery<P>>, reason: string, error: string): Promise<void> => {
    const d = p.item.amqp;
    const headers = {
      ...(d.headers ?? {}),
      [DEAD_LETTER_HEADERS.reason]: reason,
      [DEAD_LETTER_HEADERS.error]: error.slice(0, 2_000),
      [DEAD_LETTER_HEADERS.attempts]: p.attempts,
      [DEAD_LETTER_HEADERS.queue]: queue,
      [DEAD_LETTER_HEADERS.consumer]: consumerName,
    };
    const body = Buffer.isBuffer(d.body) ? d.body : Buffer.from(typeof d.body === 'string' ? d.body : JSON.stringify(d.body));
    // The copy keeps the original's properties but its TTL: a dead letter stays until someone looks.
    const { exchange: _e, routingKey: _r, consumerTag: _c, deliveryTag: _t, redelivered: _d, body: _b, expiration: _x, ...properties } = d;
    // Confirmed before the original is acked: a crash in between leaves a copy in both queues, never in none.
    await deadLetters!.send({ ...properties, headers, routingKey: deadLetterQueue, durable: true }, body);
    pending.remove(p);
    subscription?.ack([p.item.delivered]);
    const id = p.item.read.ok ? p.item.read.message.id : String(d.messageId);
    const topic = p.item.read.ok ? p.item.read.message.topic : d.routingKey;
    log.error({ messageId: id, topic, reason, attempts: p.attempts, error }, 'message dead-lettered by the consumer');
    events.emit('deadLettered', { id, topic, reason, error });
  };

  const failed = async (p: Pending<Delivery<P>>, error: string, delayMs: number | undefined, nonRetryable: boolean): Promise<void> => {
    if (!p.item.read.ok) return;
    p.attempts += 1;
    const m = p.item.read.message;
    if (nonRetryable) return deadLetter(p, 'non_retryable', error);
    if (p.attempts >= retry.maxAttempts) return deadLetter(p, 'failed', error);
    p.notBefore = Date.now() + (delayMs ?? backoffMs(retry, p.attempts));
    log.warn({ messageId: m.id, topic: m.topic, attempts: p.attempts, error }, 'handler failed; will retry');
    events.emit('failed', { id: m.id, topic: m.topic, attempts: p.attempts, error });
  };

  /**
   * Handles `batch` in one transaction. A handler that fails rolls all of it back: the
   * failing message counts an attempt, the others stay pending and are taken again by
   * the next batch (without the failed one's key, which now waits for its retry).
   */
  // Closing the socket ends an idle transaction at once; a backend busy with the timed-out
  // handler's query notices only when that query ends, holding its inbox row locks until
  // then, so it is terminated too.
  const terminateBackend = async (client: pg.PoolClient): Promise<void> => {
    const pid = (client as unknown as { processID?: number }).processID;
    if (typeof pid !== 'number') return;
    await options.pool
      .query(TERMINATE_BUSY_BACKEND_SQL, [pid])
      .catch((err: unknown) => log.warn({ err, pid }, "could not terminate the timed-out handler's backend; it ends when its query does"));
  };

  const runBatch = async (batch: Pending<Delivery<P>>[]): Promise<void> => {
    const client = await options.pool.connect();
    let broken: unknown;
    let failure: { at: Pending<Delivery<P>>; error: string; delayMs: number | undefined; nonRetryable: boolean } | undefined;
    let timedOut = false;
    let rolledBack = false;
    try {
      const ids = [...new Set(batch.map((p) => (p.item.read as { message: { id: string } }).message.id))];
      const fresh = await beginWithInboxRecord(client, { consumer: consumerName, messageIds: ids, schema });
      // One timer for the batch, re-armed for each handler call.
      let timer: NodeJS.Timeout | undefined;
      let onTimeout: (() => void) | undefined;
      try {
        for (const p of batch) {
          const m = (p.item.read as { message: { id: string } }).message;
          // A second copy in the same batch (a redelivery after a reconnect) is not fresh either.
          if (!fresh.delete(m.id)) continue;
          const message = { ...(p.item.read as Extract<ReadDelivery<P>, { ok: true }>).message, attempts: p.attempts + 1 };
          const context = new CallContext(client, consumerName, log);
          const span = startHandlerSpan(message, queue, consumerName);
          if (timer) timer.refresh();
          else timer = setTimeout(() => onTimeout?.(), handlerTimeoutMs);
          const call = await callHandler(() => span.run(() => options.handler(message, context)), (expire) => (onTimeout = expire));
          onTimeout = undefined;
          if (call.kind === 'timeout') {
            context.abort(new SagaboxError('HANDLER_TIMEOUT', `handler timed out after ${handlerTimeoutMs} ms`, { details: { messageId: m.id, handlerTimeoutMs } }));
          }
          span.end(call, context.abortReason);
          if (call.kind === 'timeout') {
            log.warn({ messageId: m.id, handlerTimeoutMs }, 'handler timed out; abandoning its transaction');
            timedOut = true;
            failure = { at: p, error: `SagaboxError [HANDLER_TIMEOUT]: the handler was still running after ${handlerTimeoutMs} ms (handlerTimeoutMs)`, delayMs: undefined, nonRetryable: false };
          } else if (call.kind === 'threw') {
            const err = call.error;
            failure = { at: p, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err), delayMs: undefined, nonRetryable: false };
            rolledBack = batch.length > 1 && (err as { code?: unknown } | null)?.code === '25P02';
          } else if (isHandlerOutcome(call.value)) {
            const outcome = call.value;
            failure = outcome.kind === 'retry'
              ? { at: p, error: outcome.reason ?? 'handler asked to retry', delayMs: outcome.delayMs, nonRetryable: false }
              : { at: p, error: outcome.reason, delayMs: undefined, nonRetryable: true };
          }
          if (failure) break;
        }
      } finally {
        clearTimeout(timer);
      }
      // A handler that caught a failed statement and returned leaves the transaction
      // aborted: the next handler's statements fail (25P02), or COMMIT rolls back.
      // Alone, the one that did it fails on its own; in a batch its items go alone.
      if (rolledBack) failure = undefined;
      // A timed-out handler may still be using the connection: it is closed below
      // instead of rolled back, and the server ends the transaction with it.
      if (rolledBack || failure) {
        if (!timedOut) await client.query('ROLLBACK');
      } else if (!(await commitHandlingOrRolledBack(client))) {
        if (batch.length > 1) rolledBack = true;
        else failure = { at: batch[0]!, error: ROLLED_BACK_AT_COMMIT, delayMs: undefined, nonRetryable: false };
      }
    } catch (err) {
      broken = err;
      if (!timedOut) await client.query('ROLLBACK').catch(() => {});
    } finally {
      client.release(broken instanceof Error ? broken : timedOut ? new Error('handler timed out: connection closed') : undefined);
    }
    if (timedOut) await terminateBackend(client);
    if (broken !== undefined) {
      // The database, not a handler: every message stays pending, the consumer pauses.
      pauseUntil = Date.now() + backoffMs({ ...retry, maxDelayMs: Math.min(retry.maxDelayMs, 30_000) }, 3);
      emitError(broken);
      return;
    }
    if (failure) return failed(failure.at, failure.error, failure.delayMs, failure.nonRetryable);
    if (rolledBack) {
      for (const p of batch) p.solo = true;
      log.warn({ count: batch.length }, 'a handler of the batch caught a failed statement and went on; handling its messages one by one');
      return;
    }
    pending.removeAll(batch);
    subscription?.ack(batch.map((p) => p.item.delivered));
    events.emit('handled', { count: batch.length });
    log.debug({ count: batch.length }, 'batch handled');
  };

  // The lane key: the message key, or else the id, so two copies of one message (a
  // redelivery) are never in two transactions at once and keep their arrival order.
  // Unreadable deliveries share one lane: they are dead-lettered in arrival order.
  const keyOfDelivery = (d: Delivery<P>): string => (d.read.ok ? d.read.message.key ?? `\u0000${d.read.message.id}` : '\u0001unreadable');

  // Lanes waiting for work: woken by every arrival, every finished batch (it may free a
  // key) and stop; a retry coming due wakes its lane by the lane's own timer.
  const waiters = new Set<() => void>();
  const wake = (): void => {
    for (const w of waiters) w();
    waiters.clear();
  };
  const waitForWork = (ms: number): Promise<void> =>
    new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        waiters.delete(done);
        resolve();
      };
      const t = setTimeout(done, Math.max(1, Math.min(ms, 1_000)));
      waiters.add(done);
    });

  /** One of `concurrency` loops: takes the next ready batch (keys free of other lanes) and handles it. */
  const lane = async (): Promise<void> => {
    while (!stopping) {
      const now = Date.now();
      if (now < pauseUntil) {
        await waitForWork(pauseUntil - now);
        continue;
      }
      let ready = pending.takeReady(batchSize, now, keyOfDelivery);
      // A retried message of a channel since closed is back in the queue already.
      const stale = ready.filter((p) => !subscription?.isCurrent(p.item.delivered));
      if (stale.length > 0) {
        pending.removeAll(stale);
        ready = ready.filter((p) => !stale.includes(p));
      }
      if (ready.length === 0) {
        await waitForWork(pending.nextDue(now) - now);
        continue;
      }
      try {
        for (const p of ready.filter((r) => !r.item.read.ok)) {
          await deadLetter(p, 'invalid', (p.item.read as { problem: string }).problem).catch((err: unknown) => {
            p.notBefore = Date.now() + 1_000;
            emitError(err);
          });
        }
        const valid = ready.filter((p) => p.item.read.ok);
        if (valid.length > 0) await runBatch(valid).catch(emitError);
      } finally {
        pending.release(ready);
        wake();
      }
    }
  };

  const onDelivery = (delivered: Delivered): void => {
    if (stopping) return subscription?.requeue(delivered);
    const amqp = delivered.message;
    const read = fromAmqp<P>(amqp, queue);
    const runAt = read.ok && read.runAt ? read.runAt.getTime() : 0;
    pending.push({ amqp, read, delivered }, runAt);
    wake();
  };

  return {
    events,
    async start() {
      if (started) return;
      started = true;
      stopping = false;
      ({ connection, owned } = openConnection(options, log));
      lanes = Array.from({ length: concurrency }, () => lane());
      deadLetters = connection.createPublisher({ confirm: true, maxAttempts: 2, queues: [{ queue: deadLetterQueue, durable: true }] });
      const exchanges = [...new Set((options.bindings ?? []).map((b) => b.exchange))].filter((e) => !e.startsWith('amq.'));
      subscription = createQueueSubscription({
        connection,
        queue,
        // The queue is declared on every (re)connect; passive only checks that it exists.
        declareQueue: options.declareQueue ?? true,
        exchanges,
        bindings: options.bindings ?? [],
        prefetch,
        // Every prefetched message is handed over at once: the keyed queue decides the order.
        onDelivery,
        onChannelLost: (channel) => {
          // Its messages not acknowledged are back in the queue; those not in a batch are dropped here.
          pending.removeWhere((p) => !p.busy && p.item.delivered.channel === channel);
        },
        onError: emitError,
        logger: log,
      });
      // Resolves once consuming, or once the first attempt failed (reconnects then run in the background).
      await subscription.start();
      log.info({ prefetch, batchSize, concurrency, deadLetterQueue }, 'rabbitmq consumer started');
    },
    async stop() {
      if (!started) return;
      started = false;
      stopping = true;
      wake();
      let t: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        Promise.all(lanes).then(() => false),
        new Promise<boolean>((r) => (t = setTimeout(() => r(true), stopTimeoutMs))),
      ]);
      clearTimeout(t);
      if (timedOut) log.warn({ stopTimeoutMs }, 'consumer stop timed out waiting for its batch');
      // Messages not handled go back to the queue, for this consumer's next start or
      // another: closing the channel returns every delivery not acknowledged.
      pending.drain();
      await subscription?.close();
      await deadLetters?.close().catch(() => {});
      if (owned) await connection?.close().catch(() => {});
      subscription = undefined;
      lanes = [];
      deadLetters = undefined;
      connection = undefined;
      log.info({}, 'rabbitmq consumer stopped');
    },
  };
}
