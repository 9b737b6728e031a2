import { EventEmitter } from 'node:events';
import type pg from 'pg';
import { ROLLED_BACK_AT_COMMIT, type HandlerContext, type HandlerOutcome } from '@sagabox/core';
import { backoffMs, beginWithInboxRecord, CallContext, commitHandlingOrRolledBack, isHandlerOutcome, isThenable, startHandlerSpan, type HandlerSpan } from '@sagabox/core/extension';
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  JetStreamApiError,
  type ConsumerMessages,
  type JetStreamClient,
  type JsMsg,
} from '@nats-io/jetstream';
import { headers as natsHeaders, nanos } from '@nats-io/transport-node';
import { maintainStorage } from '@sagabox/core/admin';
import { holdConnection, type HeldConnection } from './nats-connection.js';
import {
  resolveJetStreamConsumerOptions,
  type JetStreamConsumer,
  type JetStreamConsumerEvents,
  type JetStreamConsumerOptions,
  type JetStreamMessage,
} from './jetstream-consumer-options.js';
import { readDelivery } from './jetstream-message.js';
import { deliveredHeaders, NATS_HEADERS, type DecodedHeaders } from './nats-headers.js';

export {
  DEFAULT_ACK_WAIT_MS,
  DEFAULT_INBOX_MAINTENANCE_INTERVAL_MS,
  DEFAULT_JETSTREAM_BATCH_SIZE,
  DEFAULT_JETSTREAM_RETRY,
  DEFAULT_JETSTREAM_STOP_TIMEOUT_MS,
  DEFAULT_MAX_ACK_PENDING,
  type JetStreamConsumer,
  type JetStreamConsumerEvents,
  type JetStreamConsumerOptions,
  type JetStreamHandler,
  type JetStreamMessage,
} from './jetstream-consumer-options.js';

const RETRY_BASE_MS = 100;
const RETRY_MAX_MS = 10_000;
const errorText = (err: unknown): string => (err instanceof Error ? `${err.name}: ${err.message}` : String(err)).slice(0, 2_000);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How a handler call that did not succeed ended: an outcome it returned, or a throw. */
type HandlerFailure = HandlerOutcome | { kind: 'threw'; error: unknown };

const handlerReturned = (span: HandlerSpan, value: unknown): HandlerOutcome | undefined => {
  span.end({ kind: 'returned', value }, undefined);
  return isHandlerOutcome(value) ? value : undefined;
};

const handlerThrew = (span: HandlerSpan, error: unknown): HandlerFailure => {
  span.end({ kind: 'threw', error }, undefined);
  return { kind: 'threw', error };
};

/** A delivery held by the consumer: due from `notBefore`, after `failures` failed handlings here. */
interface Held {
  msg: JsMsg;
  /** Its headers, read once on arrival (for the key) and then used for its first handling; dropped after. */
  headers: DecodedHeaders | undefined;
  /** Its `Sagabox-Key` header. */
  key: string | undefined;
  notBefore: number;
  failures: number;
  /** When it was last reported in progress (or arrived), for the keep-alive. */
  touchedAt: number;
}

interface Ready {
  held: Held;
  msg: JsMsg;
  message: JetStreamMessage;
}

/**
 * Consumes a JetStream durable consumer into PostgreSQL with the idempotent inbox. Each
 * batch of deliveries runs in one transaction that first records the messages' ids in
 * the inbox (`recordManyInInbox`) and then runs `handler(message, { client, db, ... })`
 * for each id seen for the first time; the messages are acked only after that
 * transaction commits. A consumer killed between its commit and its acks gets the
 * messages again and finds them in the inbox: no second effect.
 *
 * Flow control is JetStream's `max_ack_pending`. A handler that throws (or returns
 * `Outcome.retry`) rolls back; the others of its batch are then handled one transaction
 * each, and the failed message is retried here after a backoff, holding back its key's
 * later messages (per-key order through retries) while other keys flow; a keyed
 * message whose `Sagabox-Run-At` is ahead waits here the same way. After
 * `retry.maxAttempts` attempts (deliveries plus retries here) the message is terminated (`Outcome.deadLetter` at once): JetStream's dead-letter
 * mechanism, not sagabox's table, because the message belongs to the stream (other
 * consumers and NATS tools see it there) and because the broker's `max_deliver` (set to
 * `maxAttempts`) also stops a message that crashes the process before any failure could
 * be recorded. JetStream publishes an advisory for each
 * (`$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.<stream>.<durable>`, `...MAX_DELIVERIES...`);
 * `deadLetterSubject` also republishes the message with its reason.
 *
 * Database trouble (a failed BEGIN, inbox insert or COMMIT) is not a handler failure:
 * the batch is kept, held against redelivery with JetStream's in-progress acks, and
 * tried again with backoff, so an outage spends no delivery attempts.
 *
 * @example
 * const consumer = createJetStreamConsumer({
 *   servers: 'nats://127.0.0.1:4222', stream: 'ORDERS', durable: 'billing', pool,
 *   handler: async (message, { client }) => {
 *     await client.query('INSERT INTO invoices (order_id) VALUES ($1)', [message.payload.orderId]);
 *   },
 * });
 * await consumer.start();
 */
export function createJetStreamConsumer<P = unknown>(options: JetStreamConsumerOptions<P>): JetStreamConsumer {
  const o = resolveJetStreamConsumerOptions(options);
  const handler = options.handler as (m: JetStreamMessage, c: HandlerContext) => Promise<void | HandlerOutcome> | void | HandlerOutcome;
  const log = o.logger.child({ component: 'jetstream-consumer', consumer: o.consumer, stream: o.stream, durable: o.durable });
  const events = new EventEmitter<JetStreamConsumerEvents>();
  let held: HeldConnection | undefined;
  let js: JetStreamClient | undefined;
  let messages: ConsumerMessages | undefined;
  let running = false;
  let attaching: Promise<void> | undefined;
  let lanes: Promise<void>[] = [];
  let maintenance: NodeJS.Timeout | undefined;
  let maintaining: Promise<void> | undefined;
  // The inbox drops whole time partitions past retention (see maintainStorage) and has
  // its partitions made ahead of time. Off unless asked for: a worker on the same
  // database, or a cron job, does it, and a run at start competes with the first batches.
  const maintainTheInbox = async (): Promise<void> => {
    try {
      await maintainStorage(o.pool, { schema: o.schema, retention: { inboxMs: o.inboxRetentionMs }, logger: log });
    } catch (err) {
      log.warn({ err }, 'inbox maintenance failed; will try again');
    }
  };
  // Deliveries not yet taken, in stream order; a failed one goes back to the front to
  // wait for its retry there, ahead of its key's later messages.
  const buffer: Held[] = [];
  let keepAlive: NodeJS.Timeout | undefined;
  const busyKeys = new Set<string>();
  const waiters = new Set<() => void>();
  const wake = (): void => {
    for (const w of waiters) w();
    waiters.clear();
  };
  const emitError = (error: unknown): void => {
    if (events.listenerCount('error') > 0) events.emit('error', { error });
  };

  /**
   * Takes the next batch from the buffer in stream order. A message whose key another
   * lane is handling, or that waits for its retry, stays, and so does every later
   * message of that key: one key is handled in one lane at a time, in stream order,
   * also through retries. A message that failed before is taken alone, so it cannot
   * roll back other messages' handling again.
   */
  const take = (): Held[] => {
    const batch: Held[] = [];
    let blocked: Set<string> | undefined;
    const now = Date.now();
    // The messages left behind are moved down in place (`kept`), once per batch rather
    // than a splice per message taken.
    let kept = 0;
    let i = 0;
    while (i < buffer.length && batch.length < o.batchSize) {
      const m = buffer[i++]!;
      const key = m.key;
      if ((key !== undefined && (busyKeys.has(key) || blocked?.has(key))) || m.notBefore > now || (m.failures > 0 && batch.length > 0)) {
        if (key !== undefined) (blocked ??= new Set()).add(key);
        buffer[kept++] = m;
        continue;
      }
      if (key !== undefined) busyKeys.add(key);
      batch.push(m);
      if (m.failures > 0) break;
    }
    if (batch.length > 0) {
      while (i < buffer.length) buffer[kept++] = buffer[i++]!;
      buffer.length = kept;
    }
    return batch;
  };

  const deadLetter = async (msg: JsMsg, id: string, reason: string, error: string): Promise<void> => {
    if (o.deadLetterSubject && js) {
      const h = natsHeaders();
      for (const k of msg.headers?.keys() ?? []) {
        if (k.toLowerCase() === NATS_HEADERS.messageId.toLowerCase()) continue;
        for (const v of msg.headers!.values(k)) h.append(k, v);
      }
      h.set(NATS_HEADERS.messageId, id);
      h.set('Sagabox-Dead-Reason', reason);
      h.set('Sagabox-Dead-Error', error.replace(/[\r\n]+/g, ' '));
      h.set('Sagabox-Dead-Stream', msg.info.stream);
      h.set('Sagabox-Dead-Stream-Sequence', String(msg.info.streamSequence));
      // Published (and its PubAck awaited) before the term, so the message is never
      // in neither place; a failure here leaves it to be redelivered and tried again.
      await js.publish(o.deadLetterSubject, msg.data, { headers: h, msgID: `${id}:dead:${o.consumer}` });
    }
    msg.term();
    log.error({ messageId: id, subject: msg.subject, streamSequence: msg.info.streamSequence, reason, error }, 'message dead-lettered (terminated in JetStream)');
    events.emit('deadLettered', { id, subject: msg.subject, streamSequence: msg.info.streamSequence, reason, error });
  };

  /**
   * A failed handling. The message is retried here, not nak'ed: a nak would let the
   * key's later messages (delivered already, or soon) pass it. It goes back to the front
   * of the buffer, due after the backoff, holding back its key; the keep-alive keeps
   * JetStream from redelivering it meanwhile. Attempts are its deliveries before this
   * one plus its failures here.
   */
  const failed = async (r: Ready, error: unknown, delayMs: number | undefined): Promise<void> => {
    const attempts = r.msg.info.deliveryCount + r.held.failures;
    if (attempts >= o.retry.maxAttempts) {
      await deadLetter(r.msg, r.message.id, 'failed', errorText(error));
      return;
    }
    const delay = delayMs ?? backoffMs(o.retry, attempts);
    r.held.failures += 1;
    r.held.notBefore = Date.now() + delay;
    buffer.unshift(r.held);
    log.warn({ messageId: r.message.id, subject: r.msg.subject, attempts, delayMs: delay, err: error }, 'handler failed; retrying after a delay, holding back its key');
    events.emit('failed', { id: r.message.id, subject: r.msg.subject, attempts, delayMs: delay, error });
  };

  /** An outcome or a throw from the handler; settles the message (nak or term). */
  const settleFailure = async (r: Ready, outcome: HandlerFailure): Promise<void> => {
    if (outcome.kind === 'dead-letter') await deadLetter(r.msg, r.message.id, 'non_retryable', outcome.reason);
    else if (outcome.kind === 'retry') await failed(r, outcome.reason ?? 'handler asked to retry', outcome.delayMs);
    else await failed(r, outcome.error, undefined);
  };

  /**
   * Calls the handler under its span. A handler that returns a plain value (or throws)
   * gives its result at once, without a promise: a batch calls it 200 times in a row.
   * No handler timeout here (yet): the context's signal is never aborted.
   */
  const runHandler = (r: Ready, client: pg.PoolClient): HandlerFailure | undefined | Promise<HandlerFailure | undefined> => {
    const span = startHandlerSpan(r.message, o.durable, o.consumer);
    let out: unknown;
    try {
      out = span.run(() => handler(r.message, new CallContext(client, o.consumer, log)));
    } catch (error) {
      return handlerThrew(span, error);
    }
    return isThenable(out) ? Promise.resolve(out).then((value) => handlerReturned(span, value), (error: unknown) => handlerThrew(span, error)) : handlerReturned(span, out);
  };

  /** One message in its own transaction (after a batch failed). */
  const runOne = async (client: pg.PoolClient, r: Ready, settled: Set<JsMsg>): Promise<void> => {
    let outcome: HandlerFailure | undefined;
    try {
      // BEGIN goes out with the inbox record, in one round trip.
      const fresh = (await beginWithInboxRecord(client, { consumer: o.consumer, messageIds: [r.message.id], schema: o.schema })).has(r.message.id);
      outcome = fresh ? await runHandler(r, client) : undefined;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
    if (outcome) {
      await client.query('ROLLBACK');
      settled.add(r.msg);
      await settleFailure(r, outcome);
      return;
    }
    if (!(await commitHandlingOrRolledBack(client))) {
      // The handler caught a failed statement and returned: nothing it did was written.
      settled.add(r.msg);
      await settleFailure(r, { kind: 'threw', error: new Error(ROLLED_BACK_AT_COMMIT) });
      return;
    }
    settled.add(r.msg);
    events.emit('committed', { ids: [r.message.id], duplicates: 0 });
    r.msg.ack();
  };

  /**
   * The batch in one transaction. On a handler failure the rest go back to the buffer;
   * when a handler swallowed a failed statement, each runs in a transaction of its own.
   */
  const runBatch = async (ready: Ready[], settled: Set<JsMsg>): Promise<void> => {
    const client = await o.pool.connect();
    let broken = false;
    try {
      // A failure here leaves no transaction to end: the connection is discarded below.
      const fresh = await beginWithInboxRecord(client, { consumer: o.consumer, messageIds: [...new Set(ready.map((r) => r.message.id))], schema: o.schema });
      let failedAt = -1;
      let failure: HandlerFailure | undefined;
      let duplicates = 0;
      try {
        for (let i = 0; i < ready.length; i++) {
          const r = ready[i]!;
          // A second delivery of one id inside a batch finds it taken by the first.
          if (!fresh.delete(r.message.id)) {
            duplicates++;
            continue;
          }
          const called = runHandler(r, client);
          failure = called instanceof Promise ? await called : called;
          if (failure) {
            failedAt = i;
            break;
          }
        }
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      }
      // A handler that caught a failed statement and returned leaves the transaction
      // aborted: the next handler's statements fail (25P02), or COMMIT rolls back. Which
      // one did it is found by running each on its own.
      const aborted = failure?.kind === 'threw' && (failure.error as { code?: unknown } | null)?.code === '25P02';
      if (aborted) await client.query('ROLLBACK');
      if (aborted || (failedAt < 0 && !(await commitHandlingOrRolledBack(client)))) {
        // Alone in its batch, the message is the one that did it: it fails now, without
        // a second call of its handler for the same delivery.
        if (ready.length === 1) {
          settled.add(ready[0]!.msg);
          await settleFailure(ready[0]!, { kind: 'threw', error: new Error(ROLLED_BACK_AT_COMMIT) });
          return;
        }
        for (const r of ready) await runOne(client, r, settled);
        return;
      }
      if (failedAt < 0) {
        for (const r of ready) settled.add(r.msg);
        events.emit('committed', { ids: ready.map((r) => r.message.id), duplicates });
        for (const r of ready) r.msg.ack();
        return;
      }
      await client.query('ROLLBACK');
      // The failed message is settled on the outcome it already had (its handler is
      // not run twice for one delivery). The rest, rolled back with it, go back to the
      // front of the buffer in order, to be taken again as a batch: one key per batch,
      // so none of them is a later message of the failed one's key, which now waits.
      settled.add(ready[failedAt]!.msg);
      await settleFailure(ready[failedAt]!, failure!);
      const rest = ready.filter((r) => !settled.has(r.msg));
      for (const r of rest) settled.add(r.msg);
      buffer.unshift(...rest.map((r) => r.held));
      wake();
    } catch (err) {
      broken = true;
      throw err;
    } finally {
      // A connection that failed mid-transaction is not given back to the pool's idle set.
      client.release(broken ? true : undefined);
    }
  };

  const handleBatch = async (batch: Held[]): Promise<void> => {
    const now = Date.now();
    const ready: Ready[] = [];
    // Keyed messages that must wait (delayed, or a dead letter that could not be
    // published): back to the front of the buffer, in batch order, holding back their
    // keys. Handing one back to the stream (a nak with a delay) would let its key's
    // later messages, delivered already, pass it.
    const waiting: Held[] = [];
    const later = (held: Held, delayMs: number, key: string | undefined): void => {
      if (key === undefined) {
        held.msg.nak(delayMs);
        return;
      }
      held.notBefore = Date.now() + delayMs;
      held.touchedAt = Date.now();
      waiting.push(held);
    };
    for (const held of batch) {
      const msg = held.msg;
      const key = held.key;
      // A retry reads its headers again: the handler may have changed the first copy.
      const read = readDelivery(msg, o.durable, held.failures === 0 ? held.headers : undefined, held.failures);
      held.headers = undefined;
      if (!read.ok) {
        await deadLetter(msg, read.id, read.reason, read.error).catch((err: unknown) => {
          log.warn({ err, messageId: read.id }, 'dead-lettering failed; the message comes back');
          later(held, RETRY_MAX_MS, key);
        });
        continue;
      }
      if (read.expiresAt && read.expiresAt.getTime() <= now) {
        await deadLetter(msg, read.message.id, 'expired', `expired at ${read.expiresAt.toISOString()} before handling`).catch(() => later(held, RETRY_MAX_MS, key));
        continue;
      }
      if (read.runAt && read.runAt.getTime() > now) {
        // A delayed message waits here until it is due when it has a key (no delivery
        // used); a keyless one goes back to the stream for its delay (one delivery).
        later(held, read.runAt.getTime() - now, key);
        continue;
      }
      ready.push({ held, msg, message: read.message });
    }
    if (waiting.length > 0) buffer.unshift(...waiting);
    const settled = new Set<JsMsg>();
    // Keep the batch's messages from being redelivered while it runs or waits out an outage.
    const keepAlive = setInterval(() => {
      for (const r of ready) if (!settled.has(r.msg)) r.msg.working();
    }, Math.max(500, Math.floor(o.ackWaitMs / 3)));
    try {
      for (let errors = 0; ; ) {
        const left = ready.filter((r) => !settled.has(r.msg));
        if (left.length === 0) return;
        try {
          await runBatch(left, settled);
          return;
        } catch (error) {
          errors++;
          log.error({ err: error, count: left.length, errors }, 'batch failed before its handlers could finish; keeping it and retrying');
          emitError(error);
          if (!running) {
            // Stopping: hand the rest back for another consumer to take now.
            for (const r of ready) if (!settled.has(r.msg)) r.msg.nak();
            return;
          }
          await sleep(Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.min(errors - 1, 10)));
        }
      }
    } finally {
      clearInterval(keepAlive);
    }
  };

  const lane = async (): Promise<void> => {
    while (running) {
      const batch = take();
      if (batch.length === 0) {
        await new Promise<void>((resolve) => {
          waiters.add(resolve);
          // A key released by another lane makes held-back messages takeable.
          setTimeout(resolve, 200);
        });
        continue;
      }
      try {
        await handleBatch(batch);
      } catch (error) {
        log.error({ err: error }, 'unexpected error handling a batch');
        emitError(error);
      } finally {
        for (const m of batch) {
          if (m.key !== undefined) busyKeys.delete(m.key);
        }
        wake();
      }
    }
  };

  /** Connects, creates or updates the durable consumer, and starts pulling; retries until it works or stop() is called. */
  const attach = async (): Promise<void> => {
    held = holdConnection(options, o.name, log);
    const nc = await held.ready;
    for (let attempt = 1; running; attempt++) {
      try {
        const jsm = await jetstreamManager(nc);
        if (o.createConsumer) {
          const config = {
            ack_policy: AckPolicy.Explicit,
            ack_wait: nanos(o.ackWaitMs),
            max_ack_pending: o.maxAckPending,
            max_deliver: o.retry.maxAttempts,
          };
          try {
            await jsm.consumers.info(o.stream, o.durable);
            await jsm.consumers.update(o.stream, o.durable, config);
          } catch (err) {
            if (!(err instanceof JetStreamApiError) || !/consumer not found/i.test(err.message)) throw err;
            await jsm.consumers.add(o.stream, {
              ...config,
              durable_name: o.durable,
              deliver_policy: DeliverPolicy.All,
              ...(o.filterSubject ? { filter_subject: o.filterSubject } : {}),
            });
          }
        }
        js = jetstream(nc);
        const consumer = await js.consumers.get(o.stream, o.durable);
        if (!running) return;
        messages = await consumer.consume({
          max_messages: Math.min(o.maxAckPending, Math.max(100, o.batchSize * o.concurrency * 2)),
          callback: (m) => {
            const headers = deliveredHeaders(m);
            buffer.push({ msg: m, headers, key: headers.key || undefined, notBefore: 0, failures: 0, touchedAt: Date.now() });
            wake();
          },
        });
        log.info({ maxAckPending: o.maxAckPending, batchSize: o.batchSize, concurrency: o.concurrency }, 'JetStream consumer started');
        return;
      } catch (err) {
        if (attempt === 1 || attempt % 20 === 0) log.warn({ err, attempt }, 'cannot attach to the durable consumer yet; retrying');
        emitError(err);
        await sleep(Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.min(attempt - 1, 10)));
      }
    }
  };

  return {
    events,
    async start() {
      if (running) return;
      running = true;
      attaching = attach();
      await attaching;
      lanes = Array.from({ length: o.concurrency }, () => lane());
      // Messages waiting in the buffer (behind a busy or retrying key, or for their own
      // retry) are reported in progress, so JetStream does not redeliver them meanwhile.
      const touchEveryMs = Math.max(500, Math.floor(o.ackWaitMs / 3));
      keepAlive = setInterval(() => {
        const now = Date.now();
        for (const h of buffer) {
          if (now - h.touchedAt < touchEveryMs) continue;
          h.touchedAt = now;
          h.msg.working();
        }
      }, touchEveryMs);
      keepAlive.unref();
      if (o.inboxMaintenanceIntervalMs > 0) {
        const run = (): void => {
          maintaining ??= maintainTheInbox().finally(() => (maintaining = undefined));
        };
        run();
        maintenance = setInterval(run, o.inboxMaintenanceIntervalMs);
        maintenance.unref();
      }
    },
    async stop() {
      if (!running) return;
      running = false;
      clearInterval(maintenance);
      await maintaining;
      const h = held;
      // Closing the connection first ends a start() still waiting for the broker.
      if (!messages) await h?.close();
      await attaching?.catch(() => {});
      await messages?.close().catch(() => {});
      messages = undefined;
      wake();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        Promise.all(lanes).then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), o.stopTimeoutMs))),
      ]);
      clearTimeout(timer);
      if (timedOut) log.warn({ stopTimeoutMs: o.stopTimeoutMs }, 'JetStream consumer stop timed out waiting for its batch');
      clearInterval(keepAlive);
      // Delivered but not taken: hand back now rather than after ack_wait.
      for (const h of buffer.splice(0)) h.msg.nak();
      lanes = [];
      held = undefined;
      js = undefined;
      await h?.close();
      log.info({}, 'JetStream consumer stopped');
    },
  };
}
