import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { warnIfConnectUnbounded } from '../shared/checkout-client.js';
import { createDrainLoop, type DrainLoop } from '../shared/drain-loop.js';
import { createListener, type Listener } from '../shared/listener.js';
import { maintainStorage } from '../retention/maintain-storage.js';
import { queueSql } from './queue-sql.js';
import { queueChannel } from '../shared/channels.js';
import { registerQueues } from '../relay/create-queue-destination.js';
import { createBatchHandler } from './batch-handler.js';
import { createClaimer } from './claimer.js';
import { createRingRotation } from '../shared/ring-rotation.js';
import { createTrickleVacuum } from './trickle-vacuum.js';
import type { Verdict } from './verdict.js';
import { SagaboxError } from '../shared/errors.js';
import { waitForDatabase } from '../shared/wait-for-database.js';
import { SCHEDULED_AHEAD_MS } from '../shared/scheduled.js';

export * from './worker-options.js';
import { resolveWorkerOptions, type Worker, type WorkerEvents, type WorkerOptions } from './worker-options.js';

/**
 * Creates a worker: competing consumers of one queue with an idempotent inbox.
 *
 * A batch is claimed with `FOR UPDATE SKIP LOCKED` under a lease, then handled in one
 * transaction: the leased rows are locked (fenced by the lease token, so a worker whose
 * lease expired and was taken over does nothing), their ids go into the inbox (an id
 * already there is acked without running the handler), the handler runs with the
 * transaction's connection, and the ack (DELETE) commits with the handler's writes.
 * (When nothing about the batch is known before handling, the usual case, the first
 * statement does all of fence, inbox and DELETE at once: the deleted rows stay locked
 * until the transaction ends, and a failing handler rolls the DELETE back.)
 * When a handler throws, returns an outcome or times out (`handlerTimeoutMs`), the
 * batch's transaction is rolled back (on a timeout: its connection closed) and the
 * other messages are handled again in transactions of up to 32, each handler under a
 * savepoint of its own, so only the failing message's effects are undone and a poison
 * message costs its batch a few commits; it is retried with backoff and
 * dead-lettered after `retry.maxAttempts` (reason `failed`, `timeout` or, for
 * `Outcome.deadLetter`, `non_retryable`).
 *
 * While a handler runs its row stays locked, so no lease renewal is needed for long
 * handlers; the lease only decides how soon a crashed worker's messages come back.
 *
 * @throws {InvalidOptionsError} `INVALID_OPTIONS` listing every problem with the options.
 *
 * @example
 * const worker = createWorker({
 *   pool, queue: 'billing', concurrency: 4,
 *   handler: async (message, { client }) => {
 *     await client.query('INSERT INTO invoices (order_id) VALUES ($1)', [message.payload.orderId]);
 *   },
 * });
 * await worker.start();
 */
export function createWorker<P = unknown>(options: WorkerOptions<P>): Worker {
  const o = resolveWorkerOptions(options);
  const { pool, queue, batchSize } = o;
  const log = o.logger.child({ component: 'worker', worker: o.name, queue, schema: o.schema });
  warnIfConnectUnbounded(pool, log);
  const sql = queueSql(o.schema);
  const claimer = createClaimer({ pool, schema: o.schema, queue, name: o.name, leaseMs: o.leaseMs, batchSize, maxBatchSize: o.maxBatchSize, concurrency: o.concurrency,
    // Rows are readied SCHEDULED_AHEAD_MS before they are due, so a sweep at least every
    // half of that readies each in time; a longer poll interval sweeps at each poll.
    sweepEveryMs: Math.min(o.pollIntervalMs, SCHEDULED_AHEAD_MS / 2), logger: log });
  const trickleVacuum = o.trickleVacuum ? createTrickleVacuum({ pool, schema: o.schema, logger: log }) : undefined;
  const rotation = createRingRotation({ pool, logger: log, ring: 'queue_messages', rotate: sql.rotate });
  const events = new EventEmitter<WorkerEvents>();
  const batches = createBatchHandler({ ...o, logger: log, onHandlerCall: (call) => events.emit('handlerCalled', call) });
  const loops: DrainLoop[] = [];
  let nextLoop = 0;
  // One hint wakes one idle slot, not all of them: on a small machine ten slots
  // claiming at once for one new message cost more latency than they save. A slot
  // that claims a full batch wakes the next one (see run below), so a backlog still
  // spreads over every slot.
  const wakeOne = (): void => {
    for (let i = 0; i < loops.length; i++) {
      const l = loops[(nextLoop + i) % loops.length]!;
      if (l.idle) {
        nextLoop = (nextLoop + i + 1) % loops.length;
        l.wake();
        return;
      }
    }
  };
  let listener: Listener | undefined;
  let purgeTimer: NodeJS.Timeout | undefined;
  let started = false;
  let starting: AbortController | undefined;

  /** Claims and handles one batch; `waitMs` is set when a flow limit held the claim back. */
  const claimAndHandle = async (slot: string, looping: boolean): Promise<{ claimed: number; full: boolean; waitMs: number | null }> => {
    const claim = await claimer.claim(slot, looping);
    if (!('lease' in claim)) {
      if (looping) claimer.handled(slot, { size: claim.size, claimed: 0, elapsedMs: 0 });
      return { claimed: 0, full: false, waitMs: claim.waitMs };
    }
    const { rows, lease } = claim;
    const began = performance.now();
    const verdicts = await batches.handle(rows, lease);
    if (looping) claimer.handled(slot, { size: claim.size, claimed: rows.length, elapsedMs: performance.now() - began });
    // A slot of a queue with max_in_flight just freed up: let this process's idle loops try.
    if (lease.counted) for (const l of loops) l.wake();
    let handledCount = 0;
    for (const r of rows) {
      const v: Verdict | undefined = verdicts.get(r.id);
      if (!v) continue; // lease lost: another worker owns it now
      if (v.kind === 'ack') handledCount++;
      else if (v.kind === 'retry') {
        log.warn({ messageId: r.id, topic: r.topic, attempts: r.attempts, error: v.error }, 'handler failed; will retry');
        events.emit('failed', { id: r.id, topic: r.topic, attempts: r.attempts, error: v.error });
      } else {
        log.error({ messageId: r.id, topic: r.topic, attempts: r.attempts, reason: v.reason, error: v.error }, 'message dead-lettered');
        events.emit('deadLettered', { id: r.id, topic: r.topic, reason: v.reason, error: v.error });
      }
    }
    if (handledCount > 0) events.emit('handled', { count: handledCount });
    return { claimed: rows.length, full: rows.length >= claim.size, waitMs: null };
  };

  // runOnce may be called concurrently: each call runs as a slot of its own, taken from
  // those earlier calls left free, so calls one after another reuse one queue_leases row.
  const spareSlots: string[] = [];
  const runOnce = async (): Promise<number> => {
    const slot = spareSlots.pop() ?? randomUUID();
    try {
      return (await claimAndHandle(slot, false)).claimed;
    } finally {
      spareSlots.push(slot);
    }
  };

  // Retention drops whole time partitions of the inbox (see maintainStorage), so the
  // inbox leaves no dead tuples behind; it also creates the partitions of every
  // retained table ahead of time. The other tables expire only where an operator
  // sets their retention (sagabox storage maintain).
  const purgeInbox = async (): Promise<void> => {
    try {
      await maintainStorage(pool, { schema: o.schema, retention: { inboxMs: o.inboxRetentionMs }, logger: log });
    } catch (err) {
      log.warn({ err }, 'storage maintenance failed; will try again');
    }
  };

  const purgeBuckets = async (): Promise<void> => {
    await pool.query(sql.purgeBuckets, [queue]).catch((err) => log.warn({ err }, 'bucket purge failed; will try again'));
    await pool.query(sql.purgeLeases, [queue]).catch((err) => log.warn({ err }, 'lease purge failed; will try again'));
  };

  return {
    events,
    runOnce,
    async start() {
      if (started) return;
      started = true;
      starting = new AbortController();
      try {
        await waitForDatabase(pool, { waitMs: o.waitForDatabaseMs, logger: log, signal: starting.signal });
      } catch (err) {
        started = false;
        throw err;
      } finally {
        starting = undefined;
      }
      await registerQueues(pool, o.schema, [queue]).catch((err) => log.warn({ err }, 'could not register the queue yet'));
      for (let i = 0; i < o.concurrency; i++) {
        // The slot's token: one batch at a time, so one queue_leases row (see claim-sql.ts).
        const slot = randomUUID();
        loops.push(
          createDrainLoop({
            run: async () => {
              const { claimed, full, waitMs } = await claimAndHandle(slot, true);
              if (claimed >= batchSize) wakeOne();
              rotation.afterClaim(claimed);
              await trickleVacuum?.afterClaim(claimed, full);
              return { handled: claimed, full, ...(waitMs === null ? {} : { retryInMs: waitMs }) };
            },
            pollIntervalMs: o.pollIntervalMs,
            // Publishers send at most one NOTIFY per 2 ms (notifyThrottleMs; 10 ms while
            // their publishes come less than 1 ms apart, when these looks keep finding
            // work), so a message committed just after a notified one may come without a
            // hint: a slot that has just worked looks again 4 and 8 ms later before
            // waiting for the poll.
            lingerMs: 4,
            lingerChecks: 2,
            logger: log,
            onError: (error) => {
              log.error({ err: error }, 'worker batch failed; backing off');
              if (events.listenerCount('error') > 0) events.emit('error', { error });
            },
          }),
        );
      }
      if (o.listen) {
        listener = createListener({
          connection: pool.options,
          pool,
          channels: [queueChannel(o.schema)],
          onNotify: (_channel, payload) => {
            if (payload === queue) wakeOne();
          },
          onReconnect: () => {
            for (const l of loops) l.wake();
          },
          logger: log,
        });
        await listener.start();
      }
      const purgeEvery = o.inboxPurgeIntervalMs;
      // The inbox's current time partition must exist before the first claim: an id
      // routed to inbox_other while maintenance attaches its partition fails its batch.
      if (purgeEvery > 0 && o.inbox) await purgeInbox();
      for (const l of loops) l.start();
      if (purgeEvery > 0) {
        purgeTimer = setInterval(() => void purgeBuckets().then(() => (o.inbox ? purgeInbox() : undefined)), purgeEvery);
        purgeTimer.unref();
      }
      log.info({ consumer: o.consumer, concurrency: o.concurrency, batchSize, maxBatchSize: o.maxBatchSize, inbox: o.inbox, handlerTimeoutMs: o.handlerTimeoutMs }, 'worker started');
    },
    async stop() {
      if (!started) return;
      started = false;
      starting?.abort(new SagaboxError('DATABASE_UNREACHABLE', 'worker stopped before the database answered'));
      if (purgeTimer) clearInterval(purgeTimer);
      const stopping = Promise.all([...loops.map((l) => l.stop()), listener?.stop()]).then(() => rotation.idle());
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        stopping.then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), o.stopTimeoutMs))),
      ]);
      clearTimeout(timer);
      loops.length = 0;
      if (timedOut) log.warn({ stopTimeoutMs: o.stopTimeoutMs }, 'worker stop timed out waiting for batches in flight');
      // Claimed messages no slot took: their leases end now rather than when they run out.
      await claimer.release().catch((err) => log.warn({ err }, 'could not release buffered messages; they come back when their leases run out'));
      log.info({}, 'worker stopped');
    },
  };
}
