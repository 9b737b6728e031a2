import type pg from 'pg';
import type { TopicRegistry } from '../publish/define-topics.js';
import { SagaboxError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { prepared } from '../shared/prepared.js';
import { pipelined } from '../shared/pipelined.js';
import type { RetryPolicy } from '../shared/retry-policy.js';
import { CallContext } from './call-context.js';
import { isHandlerOutcome } from './handler-outcome.js';
import { batchSql } from './batch-sql.js';
import { describeFailure, failureVerdict, outcomeVerdict, type Verdict } from './verdict.js';
import { beginTransaction, type WorkerTransaction } from './worker-transaction.js';
import type { Handler, HandlerCall, HandlerContext, Message } from './worker-options.js';
import { callHandler, startHandlerSpan, type HandlerCallResult } from './handler-span.js';

/** A row a claim returned. */
export interface ClaimedRow {
  seq: string;
  id: string;
  /** The leased version's ctid: the handling transaction finds the row by it (see takeAndInbox). */
  ctid: string;
  /** The ring slot (partition of queue_messages) the row was claimed in. */
  part: number;
  topic: string;
  key: string | null;
  group_key: string | null;
  payload: unknown;
  headers: Record<string, string>;
  priority: number;
  attempts: number;
  /** created_at in milliseconds since the epoch. */
  created_ms: number;
  expired: boolean | null;
  /** Milliseconds from the message's due time (its publish, or its scheduled run time) to the claim. */
  since_due_ms: number;
}

/** A claimed batch's lease: its token, its slot's token, and whether it counts against max_in_flight. */
export interface Lease {
  token: string;
  /** The claiming slot's queue_leases row, released with the batch when `counted`. */
  slot: string;
  counted: boolean;
}

/** Options of {@link createBatchHandler}: the resolved worker options it needs. */
export interface BatchHandlerOptions {
  pool: pg.Pool;
  schema: string;
  queue: string;
  consumer: string;
  inbox: boolean;
  handler: Handler<any>;
  handlerTimeoutMs: number;
  retry: RetryPolicy;
  topics: TopicRegistry | undefined;
  logger: Logger;
  /** Told of every handler call once it ended (the worker's `handlerCalled` event). */
  onHandlerCall?: (call: HandlerCall) => void;
}

/** Handles claimed batches; see {@link createBatchHandler}. */
export interface BatchHandler {
  /**
   * Handles a claimed batch and records every message's verdict. Resolves to the
   * verdicts of the messages still under the lease (a message whose lease was taken
   * over is left to its new owner and has none). Throws only when the database fails.
   */
  handle(claimed: ClaimedRow[], lease: Lease): Promise<Map<string, Verdict>>;
}

/**
 * Claim order: priority first, then publish order. `seq` is a bigint as its decimal
 * text, positive and without leading zeros, so a shorter text is a smaller number.
 */
function byClaimOrder(a: ClaimedRow, b: ClaimedRow): number {
  return b.priority - a.priority || a.seq.length - b.seq.length || (a.seq < b.seq ? -1 : 1);
}

const ACK: Verdict = { kind: 'ack' };

/**
 * Messages per transaction, each under a savepoint, once a batch's first transaction
 * failed: the server keeps 64 subtransactions per transaction in shared memory, past
 * which every snapshot taken anywhere reads pg_subtrans.
 */
const SAVEPOINT_CHUNK = 32;
const SAVEPOINT = 'SAVEPOINT sagabox_message';
const RELEASE = 'RELEASE SAVEPOINT sagabox_message';
const ROLLBACK_TO = 'ROLLBACK TO SAVEPOINT sagabox_message';

/**
 * The handler timeout of one transaction's calls, which run one after another: one timer
 * for the transaction rather than one per call (a timer set and cleared per message
 * cost more than a no-op handler). When it fires before the running call's deadline (it
 * was set for an earlier call), it is set again for the time that call has left, so each
 * call still gets `timeoutMs` from its start.
 */
interface Watchdog {
  /** Starts the deadline of a call: `expire` runs when the call is still watched `timeoutMs` from now. */
  watch(expire: () => void): void;
  /** The call ended. */
  unwatch(): void;
  /** The transaction ended: clears the timer. */
  stop(): void;
}

function createWatchdog(timeoutMs: number): Watchdog {
  let timer: NodeJS.Timeout | undefined;
  let deadline = 0;
  let expire: (() => void) | undefined;
  const check = (): void => {
    timer = undefined;
    if (!expire) return;
    const left = deadline - performance.now();
    if (left > 0) {
      timer = setTimeout(check, left);
      return;
    }
    const fire = expire;
    expire = undefined;
    fire();
  };
  return {
    watch(fn) {
      deadline = performance.now() + timeoutMs;
      expire = fn;
      timer ??= setTimeout(check, timeoutMs);
    },
    unwatch() {
      expire = undefined;
    },
    stop() {
      clearTimeout(timer);
      timer = undefined;
      expire = undefined;
    },
  };
}

/**
 * The batch handler. A batch is first handled in one transaction (fence, inbox, every
 * handler, ack: one commit for the batch). When a handler fails, asks for a retry,
 * returns something unusable or times out, its verdict is known and recorded, and the
 * transaction is rolled back (or abandoned, on a timeout), taking the work of the
 * messages handled before it along; so it is when a statement fails. The batch's other
 * messages are then handled again in transactions of up to {@link SAVEPOINT_CHUNK}, each
 * handler under a savepoint of its own, so one message never holds another back and a
 * poison message costs its batch a few commits, not one per message. A message that
 * fails in a way no handler reported (a statement of its transaction, its commit) gets
 * that failure as its verdict, handled alone when its transaction failed as a whole.
 * Every verdict is recorded; attempts never pass `retry.maxAttempts`.
 */
export function createBatchHandler(o: BatchHandlerOptions): BatchHandler {
  const { pool, queue, consumer, retry } = o;
  const sql = batchSql(o.schema);
  const log = o.logger;
  const timeoutText = `SagaboxError [HANDLER_TIMEOUT]: the handler was still running after ${o.handlerTimeoutMs} ms (handlerTimeoutMs); its transaction was rolled back and its connection closed`;

  const toMessage = (r: ClaimedRow): Message => ({
    id: r.id,
    queue,
    topic: r.topic,
    key: r.key,
    payload: r.payload,
    headers: r.headers ?? {},
    attempts: r.attempts,
    createdAt: new Date(r.created_ms),
    priority: r.priority,
    group: r.group_key,
  });

  /**
   * Runs the handler for one message under the timeout; never throws. `receivedAt`: when
   * the batch reached the handler (undefined when the message's wait was reported already).
   */
  const call = async (r: ClaimedRow, client: pg.PoolClient, watchdog: Watchdog, receivedAt: number | undefined): Promise<HandlerCallResult> => {
    const ctx = new CallContext(client, consumer, log);
    const began = performance.now();
    const span = startHandlerSpan(r, queue, consumer);
    const result = await callHandler(() => span.run(() => o.handler(toMessage(r), ctx)), (expire) => watchdog.watch(expire));
    watchdog.unwatch();
    if (result.kind === 'timeout') {
      ctx.abort(new SagaboxError('HANDLER_TIMEOUT', `handler timed out after ${o.handlerTimeoutMs} ms`, { details: { messageId: r.id, handlerTimeoutMs: o.handlerTimeoutMs } }));
      log.warn({ messageId: r.id, topic: r.topic, handlerTimeoutMs: o.handlerTimeoutMs }, 'handler timed out; ending its transaction');
    }
    const outcome = span.end(result, ctx.abortReason);
    o.onHandlerCall?.({
      id: r.id,
      topic: r.topic,
      attempts: r.attempts,
      // Since its due time: its wait at the claim, then in the worker until this batch began.
      waitedMs: receivedAt === undefined || r.attempts !== 1 ? undefined : Math.max(0, r.since_due_ms + began - receivedAt),
      durationMs: performance.now() - began,
      outcome,
    });
    return result;
  };

  /** The verdict of a finished call, or undefined for a plain return (ack). */
  const verdictOf = (r: ClaimedRow, c: HandlerCallResult): Verdict | undefined => {
    if (c.kind === 'timeout') return failureVerdict(r.attempts, timeoutText, retry, 'timeout');
    if (c.kind === 'threw') return failureVerdict(r.attempts, describeFailure(c.error), retry);
    if (isHandlerOutcome(c.value)) return outcomeVerdict(r.attempts, c.value, retry);
    return undefined;
  };

  /** The verdict of a message whose transaction failed after its handler returned: a statement, or its commit. */
  const statementVerdict = (r: ClaimedRow, err: unknown): Verdict => {
    const swallowed = (err as { code?: unknown } | null)?.code === '25P02' || /rolled back at commit/.test(String((err as Error)?.message));
    const text = describeFailure(err);
    return failureVerdict(r.attempts, swallowed ? `a statement of the handler failed and the handler went on without rethrowing it, so its transaction could not commit: ${text}` : text, retry);
  };

  /** Verdicts that need no handler: expired, invalid payloads (with topics), attempts used up. */
  const precheck = async (rows: ClaimedRow[]): Promise<Map<string, Verdict>> => {
    const verdicts = new Map<string, Verdict>();
    for (const r of rows) {
      if (r.expired) {
        verdicts.set(r.id, { kind: 'dead', reason: 'expired', error: 'expired before it was handled' });
      } else if (r.attempts > retry.maxAttempts) {
        // Its attempts are used up: maxAttempts was lowered since its earlier attempts,
        // or an attempt ended with no verdict recorded (a crash or a lost connection while
        // handling, e.g. a message whose handler kills the process). The row cannot say
        // which, so the text names both.
        verdicts.set(r.id, {
          kind: 'dead',
          reason: 'failed',
          error: `claimed for attempt ${r.attempts} with maxAttempts ${retry.maxAttempts}: no attempts left (maxAttempts was lowered since its earlier attempts, or an earlier attempt ended without a result because the worker stopped or lost its connection while handling)`,
        });
      } else if (o.topics) {
        try {
          r.payload = await o.topics.validate(r.topic, r.payload);
        } catch (err) {
          verdicts.set(r.id, { kind: 'dead', reason: 'invalid', error: describeFailure(err) });
        }
      }
    }
    return verdicts;
  };

  /**
   * After takeAndInbox found fewer rows by ctid than were claimed: takes the others by id
   * in the same transaction (a rotation may have moved them since the claim) and returns
   * both statements' result as one, in takeAndInbox's form.
   */
  const takeMoved = async (
    client: pg.PoolClient,
    claimed: ClaimedRow[],
    first: { fenced: string[]; fresh: string[] | null },
    lease: Lease,
  ): Promise<{ fenced: string[] | null; fresh: string[] | null }> => {
    const taken = new Set(first.fenced);
    const missing = claimed.filter((r) => !taken.has(r.id)).map((r) => r.id);
    const { rows: [moved] } = await client.query<{ fenced: string[] | null; fresh: string[] | null }>(
      prepared(sql.takeMovedAndInbox, [queue, missing, lease.token, consumer, o.inbox]),
    );
    const movedFenced = moved!.fenced ?? missing;
    const fenced = [...first.fenced, ...movedFenced];
    const fresh = first.fresh === null && moved!.fresh === null ? null : [...(first.fresh ?? first.fenced), ...(moved!.fresh ?? movedFenced)];
    return { fenced: fenced.length === claimed.length ? null : fenced, fresh };
  };

  /** The claimed rows still under our lease (`valid`: what the fence returned). */
  const keepFenced = (rows: ClaimedRow[], valid: readonly string[]): ClaimedRow[] => {
    if (valid.length === rows.length) return rows;
    const ids = new Set(valid);
    log.warn({ lost: rows.length - valid.length }, 'lease lost before handling; leaving those messages to their new owner');
    return rows.filter((r) => ids.has(r.id));
  };

  /** Records verdicts inside the transaction that fenced `rows`. */
  const settle = async (client: pg.PoolClient, rows: ClaimedRow[], verdicts: Map<string, Verdict>, release: string | null): Promise<void> => {
    const ack: string[] = [];
    const retryIds: string[] = [];
    const retryDelays: number[] = [];
    const retryErrors: string[] = [];
    const dead: { id: string; reason: string; error: string }[] = [];
    for (const r of rows) {
      const v = verdicts.get(r.id);
      if (!v) continue;
      if (v.kind === 'ack') ack.push(r.id);
      else if (v.kind === 'retry') {
        retryIds.push(r.id);
        retryDelays.push(v.delayMs);
        retryErrors.push(v.error);
      } else dead.push({ id: r.id, reason: v.reason, error: v.error });
    }
    if (release !== null) await client.query(prepared(sql.ackAndRelease, [queue, ack, release]));
    else if (ack.length > 0) await client.query(prepared(sql.ack, [queue, ack]));
    if (retryIds.length > 0) await client.query(sql.retryLater, [queue, retryIds, retryDelays, retryErrors]);
    if (dead.length > 0) await client.query(sql.deadLetter, [queue, dead.map((d) => d.id), dead.map((d) => d.reason), dead.map((d) => d.error)]);
  };

  /** Fences `rows` and records their known verdicts, in a transaction of its own; returns the verdicts recorded. */
  const record = async (rows: ClaimedRow[], verdicts: Map<string, Verdict>, lease: Lease): Promise<Map<string, Verdict>> => {
    const recorded = new Map<string, Verdict>();
    if (rows.length === 0) return recorded;
    const { tx, first: { rows: valid } } = await beginTransaction<{ id: string }>(pool, log, prepared(sql.fence, [queue, rows.map((r) => r.id), lease.token]));
    try {
      const fenced = keepFenced(rows, valid.map((v) => v.id));
      await settle(tx.client, fenced, verdicts, null);
      await tx.commit();
      for (const r of fenced) recorded.set(r.id, verdicts.get(r.id)!);
      return recorded;
    } catch (err) {
      await tx.rollback();
      throw err;
    }
  };

  /**
   * The whole batch in one transaction. Resolves to the verdicts when it committed, or
   * to what is known when it did not: `failed`, the verdict of the message whose
   * handler ended it (none when a statement failed), and `called`, the messages it went
   * through up to that one.
   */
  const inOneTransaction = async (
    claimed: ClaimedRow[],
    lease: Lease,
    pre: Map<string, Verdict>,
    receivedAt: number,
  ): Promise<{ committed: true; verdicts: Map<string, Verdict> } | { committed: false; failed?: { id: string; verdict: Verdict }; called: Set<string> }> => {
    // Nothing known before handling (the usual batch): every message is to be acked
    // unless a handler fails, which ends this transaction anyway, so the first
    // statement fences, records and acks at once (see takeAndInbox).
    const takeAll = pre.size === 0;
    let tx: WorkerTransaction;
    let result: { fenced: string[] | null; fresh: string[] | null } | undefined;
    try {
      // Each null when it is the whole of its input (see fencedAndFresh in batch-sql.ts).
      ({ tx, first: { rows: [result] } } = await beginTransaction<{ fenced: string[] | null; fresh: string[] | null }>(
        pool,
        log,
        takeAll
          ? prepared(sql.takeAndInbox(slotsOf(claimed)), [
              queue, claimed.map((r) => r.id), lease.token, consumer, o.inbox, lease.counted ? lease.slot : null,
              claimed.map((r) => r.ctid), claimed.map((r) => r.part),
            ])
          : prepared(sql.fenceAndInbox, [queue, claimed.map((r) => r.id), lease.token, consumer, o.inbox ? claimed.filter((r) => !pre.has(r.id)).map((r) => r.id) : []]),
      ));
    } catch (err) {
      // Its connection is already discarded; as when any statement of the batch fails,
      // the messages go one by one (where a database that is away stops the batch).
      log.warn({ err, messages: claimed.length }, 'batch transaction failed; handling its messages one by one');
      return { committed: false, called: new Set() };
    }
    const watchdog = createWatchdog(o.handlerTimeoutMs);
    let abandoned = false;
    /** The fenced rows, and how many of them this transaction went through. */
    let rows: ClaimedRow[] = [];
    let called = 0;
    try {
      const short = result!.fenced;
      if (takeAll && short !== null) result = await takeMoved(tx.client, claimed, { fenced: short, fresh: result!.fresh }, lease);
      rows = result!.fenced === null ? claimed : keepFenced(claimed, result!.fenced);
      const fresh = o.inbox && result!.fresh !== null ? new Set(result!.fresh) : undefined;
      const verdicts = new Map<string, Verdict>();
      for (const r of rows) {
        called++;
        const known = pre.get(r.id);
        if (known) {
          verdicts.set(r.id, known);
          continue;
        }
        if (fresh && !fresh.has(r.id)) {
          log.debug({ messageId: r.id }, 'already in the inbox; acking without handling');
          verdicts.set(r.id, ACK);
          continue;
        }
        const c = await call(r, tx.client, watchdog, receivedAt);
        if (c.kind === 'threw' && (c.error as { code?: unknown } | null)?.code === '25P02') {
          // The transaction was aborted already, maybe by an earlier handler that swallowed
          // a failed statement: no verdict here; handled alone, each message gets its own.
          await tx.rollback();
          return { committed: false, called: new Set(rows.slice(0, called).map((c) => c.id)) };
        }
        const verdict = verdictOf(r, c);
        if (verdict) {
          if (c.kind === 'timeout') {
            abandoned = true;
            await tx.abandon();
          } else await tx.rollback();
          return { committed: false, failed: { id: r.id, verdict }, called: new Set(rows.slice(0, called).map((c) => c.id)) };
        }
        verdicts.set(r.id, ACK);
      }
      if (!takeAll) await settle(tx.client, rows, verdicts, lease.counted ? lease.slot : null);
      await tx.commit();
      return { committed: true, verdicts };
    } catch (err) {
      if (!abandoned) await tx.rollback();
      log.warn({ err, messages: claimed.length }, 'batch transaction failed; handling its messages one by one');
      return { committed: false, called: new Set(rows.slice(0, called).map((c) => c.id)) };
    } finally {
      watchdog.stop();
    }
  };

  /**
   * One message in a transaction of its own; resolves to its verdict, or undefined when
   * its lease was lost. `receivedAt` as for `call`.
   */
  const alone = async (r: ClaimedRow, lease: Lease, receivedAt: number | undefined): Promise<Verdict | undefined> => {
    let tx: WorkerTransaction | undefined;
    const watchdog = createWatchdog(o.handlerTimeoutMs);
    let verdict: Verdict | undefined;
    try {
      // BEGIN goes out with the fence, in one round trip.
      const begun = await beginTransaction<{ id: string }>(pool, log, prepared(sql.fence, [queue, [r.id], lease.token]));
      tx = begun.tx;
      if (begun.first.rows.length === 0) {
        await tx.rollback();
        keepFenced([r], []);
        return undefined;
      }
      if (o.inbox) {
        const { rowCount } = await tx.client.query(prepared(sql.inboxInsertOne, [consumer, r.id]));
        if (rowCount === 0) {
          await tx.client.query(prepared(sql.ack, [queue, [r.id]]));
          await tx.commit();
          return { kind: 'ack' };
        }
      }
      const c = await call(r, tx.client, watchdog, receivedAt);
      verdict = verdictOf(r, c);
      if (verdict === undefined) {
        await tx.client.query(prepared(sql.ack, [queue, [r.id]]));
        await tx.commit();
        return { kind: 'ack' };
      }
      if (c.kind === 'timeout') await tx.abandon();
      else await tx.rollback();
    } catch (err) {
      // No transaction and no answer from the server: the connection failed before BEGIN
      // (the lease runs out and the message comes back).
      if (tx === undefined && !isServerError(err)) throw err;
      // A statement or the commit failed: the handler's writes went with the transaction.
      await tx?.rollback();
      verdict = statementVerdict(r, err);
    } finally {
      watchdog.stop();
    }
    return (await record([r], new Map([[r.id, verdict]]), lease)).get(r.id);
  };

  /**
   * Up to {@link SAVEPOINT_CHUNK} messages of a batch whose first transaction did not
   * commit, in one transaction, each handler under a savepoint of its own: a failing
   * handler rolls back to it, taking its inbox row and writes along and no one else's,
   * and a handler that swallowed a failed statement is found when its savepoint will not
   * release. Few enough savepoints that the server's per-transaction cache of
   * subtransactions never overflows (which would slow every snapshot in the database).
   * When the transaction itself fails (a timeout, which ends it; a statement; its
   * commit), the verdict known is recorded and the others are handled alone.
   * `receivedAt` as for `call`, per message.
   */
  const inChunk = async (rows: ClaimedRow[], lease: Lease, receivedAt: (r: ClaimedRow) => number | undefined, verdicts: Map<string, Verdict>): Promise<void> => {
    let tx: WorkerTransaction | undefined;
    let fenced: ClaimedRow[] = rows;
    const watchdog = createWatchdog(o.handlerTimeoutMs);
    const known = new Map<string, Verdict>();
    let failed: { id: string; verdict: Verdict } | undefined;
    try {
      const begun = await beginTransaction<{ id: string }>(pool, log, prepared(sql.fence, [queue, rows.map((r) => r.id), lease.token]));
      tx = begun.tx;
      fenced = keepFenced(rows, begun.first.rows.map((v) => v.id));
      for (const r of fenced) {
        if (o.inbox) {
          const [, inbox] = await pipelined(tx.client, [SAVEPOINT, prepared(sql.inboxInsertOne, [consumer, r.id])]);
          if (inbox!.rowCount === 0) {
            await tx.client.query(RELEASE);
            known.set(r.id, ACK);
            continue;
          }
        } else await tx.client.query(SAVEPOINT);
        const c = await call(r, tx.client, watchdog, receivedAt(r));
        let verdict = verdictOf(r, c);
        if (c.kind === 'timeout') {
          failed = { id: r.id, verdict: verdict! };
          const ended = tx;
          tx = undefined;
          await ended.abandon();
          break;
        }
        if (verdict === undefined) {
          try {
            await tx.client.query(RELEASE);
            known.set(r.id, ACK);
            continue;
          } catch (err) {
            if ((err as { code?: unknown } | null)?.code !== '25P02') throw err;
            verdict = statementVerdict(r, err);
          }
        }
        await tx.client.query(ROLLBACK_TO);
        known.set(r.id, verdict);
      }
      if (tx !== undefined) {
        await settle(tx.client, fenced, known, null);
        await tx.commit();
        for (const [id, v] of known) verdicts.set(id, v);
        return;
      }
    } catch (err) {
      // No transaction and no answer from the server: the connection failed before BEGIN.
      if (tx === undefined && failed === undefined && !isServerError(err)) throw err;
      await tx?.rollback();
      log.warn({ err, messages: rows.length }, 'batch transaction failed; handling its messages one by one');
    } finally {
      watchdog.stop();
    }
    if (failed !== undefined) {
      const f = failed;
      for (const [id, v] of await record(fenced.filter((r) => r.id === f.id), new Map([[f.id, f.verdict]]), lease)) verdicts.set(id, v);
    }
    for (const r of fenced) {
      if (r.id === failed?.id) continue;
      const v = await alone(r, lease, receivedAt(r));
      if (v) verdicts.set(r.id, v);
    }
  };

  return {
    async handle(claimed, lease) {
      const receivedAt = performance.now();
      claimed.sort(byClaimOrder);
      const pre = await precheck(claimed);
      const first = await inOneTransaction(claimed, lease, pre, receivedAt);
      if (first.committed) return first.verdicts;
      const known = new Map(pre);
      if (first.failed) known.set(first.failed.id, first.failed.verdict);
      const verdicts = await record(claimed.filter((r) => known.has(r.id)), known, lease);
      const rest = claimed.filter((r) => !known.has(r.id));
      const waited = (r: ClaimedRow) => (first.called.has(r.id) ? undefined : receivedAt);
      for (let i = 0; i < rest.length; i += SAVEPOINT_CHUNK) await inChunk(rest.slice(i, i + SAVEPOINT_CHUNK), lease, waited, verdicts);
      // The batch is over: it stops counting against max_in_flight.
      if (lease.counted) await pool.query(prepared(sql.releaseBatch, [queue, lease.slot]));
      return verdicts;
    },
  };
}

/** The ring slots a batch was claimed from, each once, in order. */
function slotsOf(rows: readonly ClaimedRow[]): number[] {
  return [...new Set(rows.map((r) => r.part))].sort((a, b) => a - b);
}

/** An error the server answered with (node-postgres's DatabaseError carries a severity), not a failed connection. */
function isServerError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && typeof (err as { severity?: unknown }).severity === 'string';
}
