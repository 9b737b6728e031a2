import type pg from 'pg';
import { withTransaction } from '../shared/checkout-client.js';
import { createDrainLoop, type DrainLoop } from '../shared/drain-loop.js';
import { SagaboxError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { backoffMs, checkInt, type RetryPolicy } from '../shared/retry-policy.js';
import { checkBackSql } from './check-back-sql.js';
import { validateTopic } from '../publish/topic-name.js';
import { errorText } from '../shared/error-text.js';
import { describeValue } from '../shared/describe-value.js';

/** Default number of times the relay asks a checker about one half message before dead-lettering it as `unresolved`. */
export const DEFAULT_MAX_CHECKS = 10;
/** Default interval, in milliseconds, at which a relay looks for half messages due for a check. */
export const DEFAULT_CHECK_INTERVAL_MS = 5_000;
/** Default wait, in milliseconds, for one checker answer before it counts as a failed check. */
export const DEFAULT_CHECK_TIMEOUT_MS = 30_000;
/** Default number of due half messages one relay checks at once (in one transaction). */
export const DEFAULT_CHECK_BATCH_SIZE = 10;
/** Default backoff between checks that did not resolve a half message: 5 s doubling to 5 min, jittered. */
export const DEFAULT_CHECK_BACKOFF: CheckBackoff = { baseDelayMs: 5_000, maxDelayMs: 300_000, jitter: true };

/** What a checker answers: the producer's action happened (`commit`), did not and will not (`rollback`), or cannot tell yet (`unknown`). */
export type HalfMessageVerdict = 'commit' | 'rollback' | 'unknown';

/** Every decision the check-back records (see the `half_message_decisions` table). */
export type HalfMessageCheckDecision = HalfMessageVerdict | 'check_failed' | 'no_checker' | 'unresolved';

/** A prepared half message as its checker sees it. */
export interface HalfMessage<P = unknown> {
  /** The message id (give it to the provider as the idempotency key). */
  id: string;
  /** Its topic: the checker registered for it is asked. */
  topic: string;
  /** Ordering key, or null. */
  key: string | null;
  /** The prepared payload. */
  payload: P;
  /** Its string headers. */
  headers: Record<string, string>;
  /** When it was prepared. */
  createdAt: Date;
}

/** What a checker gets besides the message. */
export interface HalfMessageCheckContext {
  /** Aborted when the check times out (`checkTimeoutMs`) or the relay stops: pass it to your HTTP client. */
  signal: AbortSignal;
  /** This check's number for this message: 1 on the first check. */
  attempt: number;
  /** The relay's logger, bound to the message id and topic. */
  logger: Logger;
}

/**
 * Answers, for a half message its producer neither committed nor rolled back in time,
 * whether the producer's action happened. It must ask the side that knows (the
 * payment provider, the other database) -- never guess. Throwing, or not answering
 * within `checkTimeoutMs`, counts like `unknown`: the relay asks again later.
 *
 * @example
 * const checkCapture: HalfMessageChecker<{ orderId: string }> = async (message, { signal }) => {
 *   const payment = await provider.findPayment({ idempotencyKey: message.id }, { signal });
 *   if (payment === null) return 'rollback';
 *   return payment.status === 'succeeded' ? 'commit' : payment.status === 'failed' ? 'rollback' : 'unknown';
 * };
 */
export type HalfMessageChecker<P = any> = (message: HalfMessage<P>, context: HalfMessageCheckContext) => Promise<HalfMessageVerdict>;

/** Delays between checks that did not resolve a half message (exponential, capped). */
export type CheckBackoff = Omit<RetryPolicy, 'maxAttempts'>;

/** The relay's check-back options (part of `RelayOptions`). */
export interface CheckBackOptions {
  /** Checkers by exact topic name. More can be added with `relay.onCheck(topic, checker)`. */
  checkers?: Readonly<Record<string, HalfMessageChecker>>;
  /** Checks per half message before it is dead-lettered as `unresolved`. Default {@link DEFAULT_MAX_CHECKS}. */
  maxChecks?: number;
  /**
   * Delay before asking again after `unknown`, a throw or a timeout, in milliseconds.
   * Default {@link DEFAULT_CHECK_BACKOFF}. With no checker for a topic, the message
   * waits `maxDelayMs` (at least `checkIntervalMs`) before the relay looks again.
   */
  checkBackoff?: Partial<CheckBackoff>;
  /** How often to look for due half messages, in milliseconds. Default {@link DEFAULT_CHECK_INTERVAL_MS}. */
  checkIntervalMs?: number;
  /** Longest wait for one checker answer, in milliseconds. Default {@link DEFAULT_CHECK_TIMEOUT_MS}. */
  checkTimeoutMs?: number;
  /** Due half messages checked at once. Default {@link DEFAULT_CHECK_BATCH_SIZE}. */
  checkBatchSize?: number;
}

/** Check-back options after {@link resolveCheckBackOptions}. */
export interface ResolvedCheckBackOptions {
  checkers: Map<string, HalfMessageChecker>;
  maxChecks: number;
  checkBackoff: CheckBackoff;
  checkIntervalMs: number;
  checkTimeoutMs: number;
  checkBatchSize: number;
}

/** Events of the check-back, emitted by the relay. */
export interface CheckBackEvents {
  /** A check-back decision was recorded (after its transaction committed). */
  halfMessageChecked: [{ id: string; topic: string; decision: HalfMessageCheckDecision; attempt: number }];
}

/** Checks check-back options, appending every problem to `problems`. */
export function resolveCheckBackOptions(options: CheckBackOptions, problems: string[]): ResolvedCheckBackOptions {
  checkInt(problems, 'maxChecks', options.maxChecks, 1, 1_000);
  checkInt(problems, 'checkIntervalMs', options.checkIntervalMs, 10, 3_600_000);
  checkInt(problems, 'checkTimeoutMs', options.checkTimeoutMs, 1, 3_600_000);
  checkInt(problems, 'checkBatchSize', options.checkBatchSize, 1, 1_000);
  if (options.checkBackoff !== undefined && (typeof options.checkBackoff !== 'object' || options.checkBackoff === null)) problems.push('checkBackoff must be an object');
  const checkBackoff = { ...DEFAULT_CHECK_BACKOFF, ...(typeof options.checkBackoff === 'object' ? options.checkBackoff : {}) };
  const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  if (!num(checkBackoff.baseDelayMs) || checkBackoff.baseDelayMs < 0) problems.push('checkBackoff.baseDelayMs must be a non-negative number');
  if (!num(checkBackoff.maxDelayMs) || !(checkBackoff.maxDelayMs >= (num(checkBackoff.baseDelayMs) ? checkBackoff.baseDelayMs : 0))) {
    problems.push('checkBackoff.maxDelayMs must be a number >= checkBackoff.baseDelayMs');
  }
  if (typeof checkBackoff.jitter !== 'boolean') problems.push('checkBackoff.jitter must be a boolean');
  const checkers = new Map<string, HalfMessageChecker>();
  if (options.checkers !== undefined && (typeof options.checkers !== 'object' || options.checkers === null)) {
    problems.push('checkers must be an object of topic -> checker function');
  } else {
    for (const [topic, checker] of Object.entries(options.checkers ?? {})) {
      try {
        validateTopic(topic);
      } catch (err) {
        problems.push(`checkers: ${(err as Error).message}`);
      }
      if (typeof checker !== 'function') problems.push(`checkers[${JSON.stringify(topic)}] must be a function`);
      else checkers.set(topic, checker);
    }
  }
  return {
    checkers,
    maxChecks: options.maxChecks ?? DEFAULT_MAX_CHECKS,
    checkBackoff,
    checkIntervalMs: options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS,
    checkTimeoutMs: options.checkTimeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS,
    checkBatchSize: options.checkBatchSize ?? DEFAULT_CHECK_BATCH_SIZE,
  };
}

/** What {@link createCheckBack} needs from its relay. */
export interface CheckBackDependencies {
  pool: pg.Pool;
  schema: string;
  /** The relay's name, recorded in decision details. */
  relayName: string;
  options: ResolvedCheckBackOptions;
  logger: Logger;
  /** A decision was recorded. */
  onDecision(event: CheckBackEvents['halfMessageChecked'][0]): void;
  /** A half message was dead-lettered as unresolved. */
  onDeadLettered(event: { id: string; topic: string; reason: string; error: string }): void;
  /** The outbox changed (a commit made a message deliverable, or a key was freed): wake the delivery loop. */
  onOutboxChanged(): void;
  /** A check-back batch failed as a whole (database trouble); the loop backs off. */
  onError(error: unknown): void;
}

/** The relay's check-back loop. See {@link createCheckBack}. */
export interface CheckBack {
  start(): void;
  /** Aborts the checks in flight (their messages stay as they were) and waits for the loop to finish. */
  stop(): Promise<void>;
  /** Checks one batch of due half messages now; resolves to the number claimed. */
  runOnce(): Promise<number>;
  /** Registers (or replaces) the checker of `topic`. */
  onCheck(topic: string, checker: HalfMessageChecker): void;
}

interface DueRow {
  seq: string;
  /** The row's ring slot, named beside its seq by the statements that decide it. */
  part: number;
  id: string;
  topic: string;
  key: string | null;
  payload: unknown;
  headers: Record<string, string>;
  checks: number;
  created_at: Date;
}

type Answer = { kind: 'verdict'; verdict: HalfMessageVerdict } | { kind: 'failed'; error: string } | { kind: 'no_checker' } | { kind: 'stopped' };

interface Decision {
  id: string;
  topic: string;
  decision: HalfMessageCheckDecision;
  source: 'checker' | 'relay';
  detail: string;
  attempt: number;
}

const VERDICTS: ReadonlySet<unknown> = new Set(['commit', 'rollback', 'unknown']);


/**
 * Creates the check-back loop a relay runs beside its delivery loop: it finds half
 * messages whose `check_at` has passed, asks the checker registered for each topic,
 * and records and applies the answer -- commit (deliverable now), rollback (removed),
 * or ask again later with backoff, dead-lettering as `unresolved` after `maxChecks`.
 *
 * One relay at a time per message: a batch is claimed `FOR UPDATE SKIP LOCKED` and
 * the transaction keeps those row locks while the checkers are asked, so no other
 * relay can claim the same message until the answer is applied (or the relay dies,
 * which drops its connection and the locks with it). We chose the held lock over a
 * lease (bumping `check_at` and asking outside a transaction) because a lease can
 * run out under a slow checker and let a second relay ask at the same time; the lock
 * cannot. The costs: one pooled connection in an open transaction for up to
 * `checkTimeoutMs` (keep the server's `idle_in_transaction_session_timeout` above it),
 * and a producer's commit or rollback of that message waits for the check to finish.
 * A checker still running after `checkTimeoutMs` has its signal aborted and its
 * answer ignored; the lock is released then, so a checker that ignores its signal
 * could overlap with the next check (which comes only after the backoff).
 */
export function createCheckBack(deps: CheckBackDependencies): CheckBack {
  const o = deps.options;
  const log = deps.logger.child({ component: 'check-back' });
  const sql = checkBackSql(deps.schema);
  let loop: DrainLoop | undefined;
  let stopping = new AbortController();

  const ask = (checker: HalfMessageChecker, row: DueRow, attempt: number, stop: AbortSignal): Promise<Answer> => {
    const controller = new AbortController();
    const message: HalfMessage = {
      id: row.id,
      topic: row.topic,
      key: row.key,
      payload: row.payload,
      headers: row.headers,
      createdAt: row.created_at,
    };
    const context: HalfMessageCheckContext = {
      signal: controller.signal,
      attempt,
      logger: log.child({ messageId: row.id, topic: row.topic }),
    };
    return new Promise<Answer>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (answer: Answer, abort: boolean): void => {
        clearTimeout(timer);
        stop.removeEventListener('abort', onStop);
        if (abort) controller.abort();
        resolve(answer);
      };
      const onStop = (): void => finish({ kind: 'stopped' }, true);
      if (stop.aborted) return onStop();
      stop.addEventListener('abort', onStop, { once: true });
      timer = setTimeout(() => finish({ kind: 'failed', error: `checker timed out after ${o.checkTimeoutMs} ms` }, true), o.checkTimeoutMs);
      Promise.resolve()
        .then(() => checker(message, context))
        .then(
          (verdict) =>
            finish(
              VERDICTS.has(verdict)
                ? { kind: 'verdict', verdict }
                : { kind: 'failed', error: `checker returned ${describeValue(verdict)}, not 'commit', 'rollback' or 'unknown'` },
              false,
            ),
          (err: unknown) => finish({ kind: 'failed', error: errorText(err, 1_000) }, false),
        );
    });
  };

  const runOnce = async (): Promise<number> => {
    const stop = stopping.signal;
    // The client sits idle in its transaction while checkers run, the likeliest moment
    // for its connection to die: withTransaction's checkout keeps that from crashing the process.
    const batch = await withTransaction(deps.pool, log, async (client) => {
      const { rows } = await client.query<DueRow>({ text: sql.claimDue, values: [o.checkBatchSize, null] });
      if (rows.length === 0) return undefined;
      // Asked concurrently: each checker is an independent call to some other system.
      const answers = await Promise.all(
        rows.map((row) => {
          const checker = o.checkers.get(row.topic);
          return checker ? ask(checker, row, row.checks + 1, stop) : Promise.resolve<Answer>({ kind: 'no_checker' });
        }),
      );
      const commits: string[] = [];
      const rollbacks: string[] = [];
      const later = { seqs: [] as string[], delays: [] as number[], counted: [] as number[] };
      const dead = { seqs: [] as string[], errors: [] as string[] };
      const decisions: Decision[] = [];
      const by = `relay ${deps.relayName}`;
      rows.forEach((row, i) => {
        const answer = answers[i]!;
        const attempt = row.checks + 1;
        const base = { id: row.id, topic: row.topic, attempt };
        if (answer.kind === 'stopped') return; // untouched: unlocked at COMMIT, due for the next relay
        if (answer.kind === 'no_checker') {
          // Never deliver or drop by guess: keep it prepared, look again much later, and
          // do not count it as a check (registering the checker is the fix).
          later.seqs.push(row.seq);
          later.delays.push(Math.max(o.checkBackoff.maxDelayMs, o.checkIntervalMs));
          later.counted.push(0);
          decisions.push({ ...base, attempt: row.checks, decision: 'no_checker', source: 'relay', detail: `no checker registered for topic ${row.topic} on ${by}` });
          return;
        }
        if (answer.kind === 'verdict' && answer.verdict !== 'unknown') {
          (answer.verdict === 'commit' ? commits : rollbacks).push(row.seq);
          decisions.push({ ...base, decision: answer.verdict, source: 'checker', detail: `check ${attempt} by ${by}` });
          return;
        }
        const failed = answer.kind === 'failed';
        const detail = failed ? answer.error : `check ${attempt} by ${by}`;
        decisions.push({ ...base, decision: failed ? 'check_failed' : 'unknown', source: 'checker', detail });
        if (attempt >= o.maxChecks) {
          const error = `unresolved after ${attempt} checks; last: ${failed ? answer.error : 'unknown'}`;
          dead.seqs.push(row.seq);
          dead.errors.push(error);
          decisions.push({ ...base, decision: 'unresolved', source: 'relay', detail: error });
        } else {
          later.seqs.push(row.seq);
          later.delays.push(backoffMs({ ...o.checkBackoff, maxAttempts: o.maxChecks }, attempt));
          later.counted.push(1);
        }
      });
      const partOf = new Map(rows.map((r) => [r.seq, r.part]));
      const parts = (seqs: readonly string[]): number[] => seqs.map((seq) => partOf.get(seq)!);
      if (commits.length > 0) await client.query(sql.commitChecked, [commits, parts(commits)]);
      if (rollbacks.length > 0) await client.query(sql.rollbackChecked, [rollbacks, parts(rollbacks)]);
      if (later.seqs.length > 0) await client.query(sql.checkLater, [later.seqs, parts(later.seqs), later.delays, later.counted]);
      if (dead.seqs.length > 0) await client.query(sql.deadLetterUnresolved, [dead.seqs, parts(dead.seqs), dead.errors]);
      if (decisions.length > 0) {
        await client.query(sql.recordDecisions, [
          decisions.map((d) => d.id),
          decisions.map((d) => d.topic),
          decisions.map((d) => d.decision),
          decisions.map((d) => d.source),
          decisions.map((d) => d.detail),
        ]);
      }
      return { rows, decisions, commits, rollbacks, later, dead };
    });
    if (!batch) return 0;
    const { rows, decisions, commits, rollbacks, later, dead } = batch;
    // Logged and emitted only once durable.
    for (const d of decisions) {
      const fields = { messageId: d.id, topic: d.topic, decision: d.decision, source: d.source, attempt: d.attempt, detail: d.detail };
      if (d.decision === 'unresolved') log.error(fields, 'half message unresolved after max checks; dead-lettered');
      else if (d.decision === 'check_failed' || d.decision === 'no_checker') log.warn(fields, 'half message check did not resolve it');
      else log.info(fields, 'half message checked');
      deps.onDecision({ id: d.id, topic: d.topic, decision: d.decision, attempt: d.attempt });
      if (d.decision === 'unresolved') deps.onDeadLettered({ id: d.id, topic: d.topic, reason: 'unresolved', error: d.detail });
    }
    if (commits.length + rollbacks.length + dead.seqs.length > 0) deps.onOutboxChanged();
    log.debug({ claimed: rows.length, committed: commits.length, rolledBack: rollbacks.length, later: later.seqs.length, dead: dead.seqs.length }, 'check-back batch');
    return rows.length;
  };

  return {
    runOnce,
    start() {
      if (loop) return;
      stopping = new AbortController();
      loop = createDrainLoop({
        run: async () => {
          const n = await runOnce();
          return { handled: n, full: n >= o.checkBatchSize };
        },
        pollIntervalMs: o.checkIntervalMs,
        lingerMs: 0,
        logger: log,
        onError: (error) => {
          log.error({ err: error }, 'check-back batch failed; backing off');
          deps.onError(error);
        },
      });
      loop.start();
    },
    async stop() {
      const running = loop;
      if (!running) return;
      loop = undefined;
      stopping.abort();
      await running.stop();
    },
    onCheck(topic, checker) {
      validateTopic(topic);
      if (typeof checker !== 'function') {
        throw new SagaboxError('INVALID_OPTIONS', `checker for topic ${topic} must be a function`, { details: { topic } });
      }
      o.checkers.set(topic, checker);
    },
  };
}
