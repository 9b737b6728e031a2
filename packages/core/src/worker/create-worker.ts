import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { warnIfConnectUnbounded, withTransaction } from '../shared/checkout-client.js';
import { kyselyOnClient } from './client-kysely.js';
import { createDrainLoop, type DrainLoop } from '../shared/drain-loop.js';
import { isHandlerOutcome, type HandlerOutcome } from './handler-outcome.js';
import { createListener, type Listener } from '../shared/listener.js';
import { silentLogger } from '../shared/logger.js';
import { assertNoProblems, backoffMs, checkInt, DEFAULT_RETRY_POLICY, resolveRetryPolicy } from '../shared/retry-policy.js';
import { DEFAULT_SCHEMA, validateSchemaName } from '../shared/schema-name.js';
import { prepared } from '../shared/prepared.js';
import { queueSql } from './queue-sql.js';
import { maintainInbox } from '../retention/inbox-partitions.js';
import { validateQueueName } from '../publish/topic-name.js';
import { DEFAULT_STOP_TIMEOUT_MS } from '../relay/create-relay.js';

export * from './worker-options.js';
import {
  DEFAULT_INBOX_RETENTION_MS,
  DEFAULT_LEASE_MS,
  DEFAULT_WORKER_BATCH_SIZE,
  DEFAULT_WORKER_CONCURRENCY,
  DEFAULT_WORKER_POLL_INTERVAL_MS,
  type HandlerContext,
  type Message,
  type Worker,
  type WorkerEvents,
  type WorkerOptions,
} from './worker-options.js';
import { errorText } from '../shared/error-text.js';


interface ClaimedRow {
  seq: string;
  id: string;
  topic: string;
  key: string | null;
  group_key: string | null;
  payload: unknown;
  headers: Record<string, string>;
  priority: number;
  attempts: number;
  created_at: Date;
  expired: boolean | null;
}

/** The claim's rows: messages, or one row of NULLs (id null) when nothing was claimed. */
interface ClaimResultRow extends Omit<ClaimedRow, 'id'> {
  id: string | null;
  /** The batch was recorded in queue_leases (the queue has max_in_flight). */
  counted: boolean;
  /** A flow limit binds: when nothing was claimed, try again after this long. */
  wait_ms: number | null;
  /** From claimUnlimited, claimGlobal and claimReserved: false when the queue needs a heavier claim (its guard failed, nothing was claimed). */
  lean?: boolean;
  /** With lean = false: only because priority aging is due, which one full claim settles. */
  aging_only?: boolean;
  /** From claimGlobal: the slot's lease row is now a standing reservation (migration 0008). */
  reserve?: boolean;
  /** From claimGlobal: the queue's limits the grant ran under, and the tokens drawn for the slot. */
  max_in_flight?: number | null;
  rate?: number | null;
  allowance?: number;
}

/**
 * A worker slot's share of its queue's global limits, taken by a global claim while
 * they were far from binding (migration 0008): the slot claims with claimReserved,
 * without the queue lock, for as long as the queue's limits stay the ones below.
 */
interface SlotShare {
  /** The max_in_flight the slot's standing reservation was granted under (null: the queue had none). */
  maxInFlight: number | null;
  /** The rate the tokens were drawn under (null: the queue had none). */
  rate: number | null;
  /** Tokens drawn from the rate's bucket and not yet spent, spendable until `tokensUntil` (performance.now()). */
  tokens: number;
  tokensUntil: number;
}

/** How long a slot may spend tokens drawn ahead from a rate's bucket (see migration 0008). */
const ALLOWANCE_MS = 1_000;

/** A claimed batch's lease: its token, its slot's token, and whether it counts against max_in_flight. */
interface Lease {
  token: string;
  /** The claiming slot's queue_leases row, released with the ack when `counted`. */
  slot: string;
  counted: boolean;
}

type Verdict =
  | { kind: 'ack' }
  | { kind: 'retry'; delayMs: number; error: string }
  | { kind: 'dead'; reason: string; error: string };


class FastPathAbort extends Error {}

/**
 * How long a worker slot keeps to a heavier claim after the lean one found limits in
 * force (or priority aging due), before it tries the lean claim again.
 */
const HEAVY_CLAIM_SPELL_MS = 1_000;

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
 * When a handler throws, the batch is rolled back and handled again with a savepoint
 * per message, so only the failing message's effects are undone; it is retried with
 * backoff and dead-lettered after `retry.maxAttempts`.
 *
 * While a handler runs its row stays locked, so no lease renewal is needed for long
 * handlers; the lease only decides how soon a crashed worker's messages come back.
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
  const problems: string[] = [];
  if (!options || typeof options.pool?.connect !== 'function') problems.push('pool must be a pg.Pool');
  if (typeof options?.handler !== 'function') problems.push('handler must be a function');
  let schema = DEFAULT_SCHEMA;
  let queue = '';
  try {
    schema = validateSchemaName(options.schema ?? DEFAULT_SCHEMA);
  } catch (err) {
    problems.push((err as Error).message);
  }
  try {
    queue = validateQueueName(options.queue);
  } catch (err) {
    problems.push((err as Error).message);
  }
  checkInt(problems, 'concurrency', options.concurrency, 1, 1_000);
  checkInt(problems, 'batchSize', options.batchSize, 1, 10_000);
  checkInt(problems, 'leaseMs', options.leaseMs, 100, 86_400_000);
  checkInt(problems, 'pollIntervalMs', options.pollIntervalMs, 10, 3_600_000);
  checkInt(problems, 'inboxRetentionMs', options.inboxRetentionMs, 0, 10 * 365 * 86_400_000);
  checkInt(problems, 'inboxPurgeIntervalMs', options.inboxPurgeIntervalMs, 0, 86_400_000);
  if (options.consumer !== undefined && (typeof options.consumer !== 'string' || options.consumer.length === 0 || options.consumer.length > 255)) {
    problems.push('consumer must be a string of 1-255 characters');
  }
  const retry = resolveRetryPolicy(options.retry, DEFAULT_RETRY_POLICY, problems);
  assertNoProblems('worker', problems);

  const pool = options.pool;
  const consumer = options.consumer ?? queue;
  const useInbox = options.inbox ?? true;
  const concurrency = options.concurrency ?? DEFAULT_WORKER_CONCURRENCY;
  const batchSize = options.batchSize ?? DEFAULT_WORKER_BATCH_SIZE;
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
  const name = options.name ?? `worker-${process.pid}-${randomUUID().slice(0, 8)}`;
  const handler = options.handler;
  const log = (options.logger ?? silentLogger).child({ component: 'worker', worker: name, queue, schema });
  warnIfConnectUnbounded(options.pool, log);
  const sql = queueSql(schema);
  // Three claims, lightest first (see queue-sql.ts): no limit in force; global limits
  // only; everything (group limits, aging). The lighter two claim nothing when their
  // guard fails, and the slot moves on to the next.
  // A slot holding its share of global limits far from binding (0008) claims with a
  // fourth, claimReserved, until the share runs out or the limits change.
  const claimTexts = {
    lean: sql.claimUnlimited(batchSize),
    reserved: sql.claimReserved(batchSize),
    global: sql.claimGlobal(batchSize),
    full: sql.claim(batchSize),
  };
  const shares = new Map<string, SlotShare>();
  const shareUsable = (share: SlotShare | undefined): share is SlotShare =>
    share !== undefined && (share.rate === null || (share.tokens >= batchSize && performance.now() < share.tokensUntil));
  const slotTokens: string[] = [];
  const events = new EventEmitter<WorkerEvents>();
  const loops: DrainLoop[] = [];
  let nextLoop = 0;
  // Until `until`, claims start with the heavier claim `kind` (see HEAVY_CLAIM_SPELL_MS).
  let spell: { kind: 'global' | 'full'; until: number } = { kind: 'full', until: 0 };
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

  const toMessage = (r: ClaimedRow): Message<P> => ({
    id: r.id,
    queue,
    topic: r.topic,
    key: r.key,
    payload: r.payload as P,
    headers: r.headers ?? {},
    attempts: r.attempts,
    createdAt: r.created_at,
    priority: r.priority,
    group: r.group_key,
  });

  const contextFor = (client: pg.PoolClient): HandlerContext => {
    let db: Kysely<any> | undefined;
    return {
      client,
      consumer,
      logger: log,
      get db() {
        return (db ??= kyselyOnClient(client));
      },
    };
  };

  const failureVerdict = (r: ClaimedRow, err: unknown): Verdict => {
    const error = errorText(err);
    if (r.attempts >= retry.maxAttempts) return { kind: 'dead', reason: 'failed', error };
    return { kind: 'retry', delayMs: backoffMs(retry, r.attempts), error };
  };

  const outcomeVerdict = (r: ClaimedRow, outcome: HandlerOutcome): Verdict => {
    if (outcome.kind === 'dead-letter') return { kind: 'dead', reason: 'non_retryable', error: outcome.reason };
    const error = outcome.reason ?? 'handler asked to retry';
    if (r.attempts >= retry.maxAttempts) return { kind: 'dead', reason: 'failed', error };
    return { kind: 'retry', delayMs: outcome.delayMs ?? backoffMs(retry, r.attempts), error };
  };

  /** Applies the verdicts of one batch inside its transaction. */
  const settle = async (client: pg.PoolClient, rows: ClaimedRow[], verdicts: Map<string, Verdict>, lease: Lease): Promise<void> => {
    const ack: string[] = [];
    const retryIds: string[] = [];
    const retryDelays: number[] = [];
    const retryErrors: string[] = [];
    const dead: { r: ClaimedRow; reason: string; error: string }[] = [];
    for (const r of rows) {
      const v = verdicts.get(r.id);
      if (!v) continue;
      if (v.kind === 'ack') ack.push(r.id);
      else if (v.kind === 'retry') {
        retryIds.push(r.id);
        retryDelays.push(v.delayMs);
        retryErrors.push(v.error);
      } else dead.push({ r, reason: v.reason, error: v.error });
    }
    if (lease.counted) await client.query(prepared(sql.ackAndRelease, [queue, ack, lease.slot]));
    else if (ack.length > 0) await client.query(prepared(sql.ack, [queue, ack]));
    if (retryIds.length > 0) await client.query(sql.retryLater, [queue, retryIds, retryDelays, retryErrors]);
    if (dead.length > 0) {
      await client.query(sql.deadLetter, [queue, dead.map((d) => d.r.id), dead.map((d) => d.reason), dead.map((d) => d.error)]);
    }
  };

  /** Verdicts that need no handler: expired and (with topics) invalid payloads. */
  const precheck = async (rows: ClaimedRow[]): Promise<Map<string, Verdict>> => {
    const verdicts = new Map<string, Verdict>();
    for (const r of rows) {
      if (r.expired) {
        verdicts.set(r.id, { kind: 'dead', reason: 'expired', error: 'expired before it was handled' });
        continue;
      }
      if (options.topics) {
        try {
          r.payload = await options.topics.validate(r.topic, r.payload);
        } catch (err) {
          verdicts.set(r.id, { kind: 'dead', reason: 'invalid', error: errorText(err) });
        }
      }
    }
    return verdicts;
  };

  /** The claimed rows still under our lease (`valid`: what the fence returned). */
  const keepFenced = (rows: ClaimedRow[], valid: readonly string[]): ClaimedRow[] => {
    if (valid.length === rows.length) return rows;
    const ids = new Set(valid);
    log.warn({ lost: rows.length - valid.length }, 'lease lost before handling; leaving those messages to their new owner');
    return rows.filter((r) => ids.has(r.id));
  };

  const fence = async (client: pg.PoolClient, rows: ClaimedRow[], token: string): Promise<ClaimedRow[]> => {
    const { rows: valid } = await client.query<{ id: string }>(prepared(sql.fence, [queue, rows.map((r) => r.id), token]));
    return keepFenced(rows, valid.map((v) => v.id));
  };

  /** Fast path: the whole batch in one transaction, no savepoints. Throws FastPathAbort to fall back. */
  const handleBatch = async (client: pg.PoolClient, claimed: ClaimedRow[], lease: Lease, pre: Map<string, Verdict>) => {
    const todoIds = useInbox ? claimed.filter((r) => !pre.has(r.id)).map((r) => r.id) : [];
    const allIds = claimed.map((r) => r.id);
    // Nothing known before handling (the usual batch): every message is to be acked
    // unless a handler fails or returns an outcome, which aborts this path anyway, so
    // the first statement fences, records and acks at once (see takeAndInbox).
    const takeAll = pre.size === 0;
    const { rows: [result] } = await client.query<{ fenced: string[]; fresh: string[] }>(
      takeAll
        ? prepared(sql.takeAndInbox, [queue, allIds, lease.token, consumer, todoIds, lease.counted ? lease.slot : null])
        : prepared(sql.fenceAndInbox, [queue, allIds, lease.token, consumer, todoIds]),
    );
    const rows = keepFenced(claimed, result!.fenced);
    const fresh = useInbox ? new Set(result!.fresh) : undefined;
    const verdicts = new Map<string, Verdict>();
    const todo: ClaimedRow[] = [];
    for (const r of rows) {
      const v = pre.get(r.id);
      if (v) verdicts.set(r.id, v);
      else todo.push(r);
    }
    const ctx = contextFor(client);
    for (const r of todo) {
      if (fresh && !fresh.has(r.id)) {
        log.debug({ messageId: r.id }, 'already in the inbox; acking without handling');
        verdicts.set(r.id, { kind: 'ack' });
        continue;
      }
      let outcome: unknown;
      try {
        outcome = await handler(toMessage(r), ctx);
      } catch (err) {
        throw new FastPathAbort('handler failed', { cause: err });
      }
      if (isHandlerOutcome(outcome)) throw new FastPathAbort('handler returned an outcome');
      verdicts.set(r.id, { kind: 'ack' });
    }
    if (!takeAll) await settle(client, rows, verdicts, lease);
    return rows;
  };

  /** Slow path: a savepoint per message, so one failure undoes only its own effects. */
  const handleOneByOne = async (client: pg.PoolClient, claimed: ClaimedRow[], lease: Lease, pre: Map<string, Verdict>) => {
    const rows = await fence(client, claimed, lease.token);
    const verdicts = new Map<string, Verdict>();
    const ctx = contextFor(client);
    for (const r of rows) {
      const v = pre.get(r.id);
      if (v) {
        verdicts.set(r.id, v);
        continue;
      }
      await client.query('SAVEPOINT sagabox_message');
      try {
        if (useInbox) {
          const { rowCount } = await client.query(prepared(sql.inboxInsertOne, [consumer, r.id]));
          if (rowCount === 0) {
            await client.query('RELEASE SAVEPOINT sagabox_message');
            verdicts.set(r.id, { kind: 'ack' });
            continue;
          }
        }
        const outcome = await handler(toMessage(r), ctx);
        if (isHandlerOutcome(outcome)) {
          await client.query('ROLLBACK TO SAVEPOINT sagabox_message');
          verdicts.set(r.id, outcomeVerdict(r, outcome));
        } else {
          await client.query('RELEASE SAVEPOINT sagabox_message');
          verdicts.set(r.id, { kind: 'ack' });
        }
      } catch (err) {
        await client.query('ROLLBACK TO SAVEPOINT sagabox_message');
        verdicts.set(r.id, failureVerdict(r, err));
      }
    }
    await settle(client, rows, verdicts, lease);
    return { rows, verdicts };
  };

  const inTransaction = <T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> =>
    withTransaction(pool, log, fn, (err) => err instanceof FastPathAbort);

  /** The share a global claim's grant gave the slot (limits far from binding: a reserved batch and/or tokens drawn ahead), if any. */
  const shareGranted = (row: ClaimResultRow | undefined): SlotShare | undefined => {
    if (!row || !(row.reserve || row.max_in_flight === null) || !(row.rate === null || (row.allowance ?? 0) > 0)) return undefined;
    return { maxInFlight: row.max_in_flight ?? null, rate: row.rate ?? null, tokens: row.allowance ?? 0, tokensUntil: performance.now() + ALLOWANCE_MS };
  };

  /**
   * Claims and handles one batch; `waitMs` is set when a flow limit held the claim back.
   * `reserve`: the batch size the slot may hold as a standing reservation (0: never, as
   * for runOnce, which has no stop to hand it back).
   */
  const claimAndHandle = async (slot: string, reserve: number): Promise<{ claimed: number; waitMs: number | null }> => {
    const token = randomUUID();
    const values = [queue, token, name, leaseMs];
    const share = shares.get(slot);
    const run = async (kind: keyof typeof claimTexts): Promise<ClaimResultRow[]> => {
      const params = kind === 'lean' ? values
        : kind === 'reserved' ? [...values, slot, share!.maxInFlight, share!.rate]
          : kind === 'global' ? [...values, slot, reserve]
            : [...values, slot];
      return (await pool.query<ClaimResultRow>(prepared(claimTexts[kind], params))).rows;
    };
    let kind: keyof typeof claimTexts = shareUsable(share) ? 'reserved' : performance.now() >= spell.until ? 'lean' : spell.kind;
    let result = await run(kind);
    // Its guard failed (a limit in force, aging due, or, for the share, limits changed):
    // the next heavier claim, and keep to it for a while.
    while (kind !== 'full' && result[0]?.lean === false) {
      if (result[0].aging_only) {
        // Aging is due (once a priorityAgingMs): one full claim does it, and the next
        // claim is light again. The full claim rewrites the slot's lease row, so a
        // share is taken again afterwards (below).
        kind = 'full';
      } else if (kind === 'reserved') {
        log.debug({ claim: 'global' }, 'flow limits changed: the slot takes its share again');
        kind = 'global';
      } else {
        kind = kind === 'lean' ? 'global' : 'full';
        if (spell.kind !== kind) log.debug({ claim: kind }, 'flow limits in force: claiming with a heavier statement');
        spell = { kind, until: performance.now() + HEAVY_CLAIM_SPELL_MS };
      }
      result = await run(kind);
    }
    const claimed = result.filter((r): r is ClaimResultRow & ClaimedRow => r.id !== null);
    // The slot's share: spent by a reserved claim, taken by a global claim that got one,
    // gone after any other claim.
    if (kind === 'reserved') share!.tokens -= claimed.length;
    else {
      const taken = kind === 'global' ? shareGranted(claimed[0]) : undefined;
      if (taken) shares.set(slot, taken);
      else shares.delete(slot);
    }
    if (claimed.length === 0) return { claimed: 0, waitMs: result[0]?.wait_ms ?? null };
    const lease: Lease = { token, slot, counted: claimed[0]!.counted };
    claimed.sort((a, b) => b.priority - a.priority || (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1));
    const pre = await precheck(claimed);
    let verdicts: Map<string, Verdict> | undefined;
    try {
      await inTransaction((client) => handleBatch(client, claimed, lease, pre));
    } catch (err) {
      if (!(err instanceof FastPathAbort)) throw err;
      log.debug({ err: err.cause ?? err }, 'a handler failed; handling the batch one by one');
      ({ verdicts } = await inTransaction((client) => handleOneByOne(client, claimed, lease, pre)));
    }
    // A slot of a queue with max_in_flight just freed up: let this process's idle loops try.
    if (lease.counted) for (const l of loops) l.wake();
    let handledCount = 0;
    for (const r of claimed) {
      const v: Verdict | undefined = verdicts ? verdicts.get(r.id) : pre.get(r.id) ?? { kind: 'ack' };
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
    return { claimed: claimed.length, waitMs: null };
  };

  // runOnce may be called concurrently: each call runs as a slot of its own, taken from
  // those earlier calls left free, so calls one after another reuse one queue_leases row.
  const spareSlots: string[] = [];
  const runOnce = async (): Promise<number> => {
    const slot = spareSlots.pop() ?? randomUUID();
    try {
      return (await claimAndHandle(slot, 0)).claimed;
    } finally {
      spareSlots.push(slot);
    }
  };

  // Retention drops whole time partitions of the inbox (see maintainInbox), so the
  // inbox leaves no dead tuples behind; it also creates the partitions ahead of time.
  const purgeInbox = async (): Promise<void> => {
    const retentionMs = options.inboxRetentionMs ?? DEFAULT_INBOX_RETENTION_MS;
    try {
      await maintainInbox(pool, { schema, retentionMs, logger: log });
    } catch (err) {
      log.warn({ err }, 'inbox maintenance failed; will try again');
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
      await pool.query(sql.ensureQueues, [[queue]]).catch((err) => log.warn({ err }, 'could not register the queue yet'));
      for (let i = 0; i < concurrency; i++) {
        // The slot's token: one batch at a time, so one queue_leases row (see queue-sql.ts).
        const slot = randomUUID();
        slotTokens.push(slot);
        loops.push(
          createDrainLoop({
            run: async () => {
              const { claimed, waitMs } = await claimAndHandle(slot, batchSize);
              if (claimed >= batchSize) wakeOne();
              return { handled: claimed, full: claimed >= batchSize, ...(waitMs === null ? {} : { retryInMs: waitMs }) };
            },
            pollIntervalMs: options.pollIntervalMs ?? DEFAULT_WORKER_POLL_INTERVAL_MS,
            // Publishers send at most one NOTIFY per 2 ms (notifyThrottleMs), so a message
            // committed just after a notified one may come without a hint: a slot that
            // has just worked looks again 4 and 8 ms later before waiting for the poll.
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
      if (options.listen ?? true) {
        listener = createListener({
          connection: pool.options,
          pool,
          channels: [sql.queueChannel],
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
      for (const l of loops) l.start();
      const purgeEvery = options.inboxPurgeIntervalMs ?? 600_000;
      if (purgeEvery > 0) {
        purgeTimer = setInterval(() => void purgeBuckets().then(() => (useInbox ? purgeInbox() : undefined)), purgeEvery);
        purgeTimer.unref();
        if (useInbox) void purgeInbox();
      }
      log.info({ consumer, concurrency, batchSize, inbox: useInbox }, 'worker started');
    },
    async stop() {
      if (!started) return;
      started = false;
      if (purgeTimer) clearInterval(purgeTimer);
      const stopping = Promise.all([...loops.map((l) => l.stop()), listener?.stop()]);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        stopping.then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), stopTimeoutMs))),
      ]);
      clearTimeout(timer);
      loops.length = 0;
      if (timedOut) log.warn({ stopTimeoutMs }, 'worker stop timed out waiting for batches in flight');
      // No batch in flight: the slots' standing reservations (if any) end now. After a
      // timeout a batch may still run, so they run out with their leases instead.
      else if (slotTokens.length > 0) {
        await pool.query(sql.releaseSlots, [queue, slotTokens]).catch((err) => log.warn({ err }, 'could not release reservations; they run out with their leases'));
      }
      slotTokens.length = 0;
      shares.clear();
      log.info({}, 'worker stopped');
    },
  };
}
