import { EventEmitter } from 'node:events';
import type pg from 'pg';
import {
  createCheckBack,
  resolveCheckBackOptions,
  type CheckBackEvents,
  type CheckBackOptions,
  type HalfMessageChecker,
  type ResolvedCheckBackOptions,
} from '../half-messages/check-back.js';
import { checkoutClient, warnIfConnectUnbounded } from '../shared/checkout-client.js';
import { createDrainLoop, type DrainLoop } from '../shared/drain-loop.js';
import type { Destination, RelayedMessage } from './destination.js';
import { createQueueDestination, type QueueRoute } from './create-queue-destination.js';
import { InvalidOptionsError, isSagaboxError, SagaboxError } from '../shared/errors.js';
import { createListener, type Listener } from '../shared/listener.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { assertNoProblems, backoffMs, checkInt, resolveRetryPolicy, type RetryPolicy } from '../shared/retry-policy.js';
import { DEFAULT_SCHEMA, validateSchemaName } from '../shared/schema-name.js';
import { outboxRowProblem } from './outbox-row-problem.js';
import { outboxChannel } from '../shared/channels.js';
import { relaySql } from './relay-sql.js';
import { startDeliverySpans } from './delivery-spans.js';
import { prepared } from '../shared/prepared.js';
import { pipelined, type PipelinedStatement } from '../shared/pipelined.js';
import { CLAIM_PLAN_BY_INDEX, CLAIM_PLAN_DONE } from '../shared/claim-plan.js';
import { createClaimSizeCap } from '../shared/claim-size-cap.js';
import { createRingRotation } from '../shared/ring-rotation.js';
import { errorText } from '../shared/error-text.js';
import { checkWaitForDatabaseMs, DEFAULT_WAIT_FOR_DATABASE_MS, retryWhileUnreachable, waitForDatabase } from '../shared/wait-for-database.js';

/** Default messages claimed per relay batch. */
export const DEFAULT_RELAY_BATCH_SIZE = 200;
/**
 * Default batches one relay has in flight at once: while the broker confirms one batch,
 * the next is claimed (and the one before is removed and committed).
 */
export const DEFAULT_RELAY_BATCHES_IN_FLIGHT = 2;
/** The smallest claim a relay makes while a keyed backlog caps its claims (see claim-size-cap.ts). */
const RELAY_CLAIM_FLOOR = 10;
/** Default polling interval of the relay when no NOTIFY wakes it, in milliseconds. */
export const DEFAULT_RELAY_POLL_INTERVAL_MS = 1_000;
/** Default retry policy of failed deliveries. */
export const DEFAULT_RELAY_RETRY: RetryPolicy = { maxAttempts: 20, baseDelayMs: 500, maxDelayMs: 60_000, jitter: true };
/** Default time `stop()` waits for the batch in flight, in milliseconds. */
export const DEFAULT_STOP_TIMEOUT_MS = 10_000;

/** Options of {@link createRelay}; the half-message check-back options are in {@link CheckBackOptions}. */
export interface RelayOptions extends CheckBackOptions {
  /** Pool on the database that holds the outbox. Needs `batchesInFlight` + 1 connections (one listens). */
  pool: pg.Pool;
  /** sagabox schema. Default `'sagabox'`. */
  schema?: string;
  /** Where messages go. */
  destinations?: readonly Destination[];
  /** Shorthand for one queue destination in the outbox's own database. */
  routes?: readonly QueueRoute[];
  /** Messages claimed per batch. Default {@link DEFAULT_RELAY_BATCH_SIZE}. */
  batchSize?: number;
  /**
   * Batches in flight at once, each in its own transaction on its own connection: under
   * a backlog the next batch is claimed while the previous one is delivered. Per-key
   * order holds as with several relays (a key's next message is claimable only once the
   * previous one has left the outbox). 1 delivers one batch at a time. Default
   * {@link DEFAULT_RELAY_BATCHES_IN_FLIGHT}.
   */
  batchesInFlight?: number;
  /** Poll interval, in milliseconds, for when no NOTIFY arrives. Default {@link DEFAULT_RELAY_POLL_INTERVAL_MS}. */
  pollIntervalMs?: number;
  /** LISTEN for publish hints. Default true; set false behind a transaction-pooling PgBouncer (polling only). */
  listen?: boolean;
  /** Failed deliveries: retries with backoff, then the dead letters. */
  retry?: Partial<RetryPolicy>;
  /**
   * What to do with a message none of this relay's destinations matches:
   * - `'hold'` (default): leave it in the outbox for a relay that knows its topic
   *   (another service's relay, or a newer version in a rolling deploy) and look at it
   *   again later: after a tenth of its age, from 1 s to 60 s. It is reported (an
   *   `unroutable` event, a `warn` line per topic at most once a minute, and the
   *   row's `last_error`) and never dead-lettered by this relay;
   * - `'dead-letter'`: dead-letter it as `unroutable`. Only for a relay that is the
   *   one and only relay of its outbox and knows every topic;
   * - `'drop'`: delete it.
   * See docs/routing.md.
   */
  onUnroutable?: 'hold' | 'dead-letter' | 'drop';
  /** Identifies this relay in logs. Default `relay-<pid>`. */
  name?: string;
  /** pino-compatible logger. Default: silent. */
  logger?: Logger;
  /** Longest wait in `stop()` for the batch in flight, in milliseconds. Default 10,000. */
  stopTimeoutMs?: number;
  /**
   * How long `start()` waits for an unreachable PostgreSQL, retrying with backoff and a
   * `warn` line, before it rejects with `DATABASE_UNREACHABLE`, in milliseconds.
   * Default {@link DEFAULT_WAIT_FOR_DATABASE_MS} (forever); 0 fails fast.
   */
  waitForDatabaseMs?: number;
}

/** Events a relay emits; none of them is ever thrown. */
export interface RelayEvents extends CheckBackEvents {
  /** A batch reached a destination and left the outbox (count: messages). */
  delivered: [{ count: number; destination: string }];
  /** A delivery failed; the message is retried with backoff. */
  retry: [{ id: string; topic: string; attempts: number; error: string }];
  /** A message was dead-lettered (attempts exhausted, expired or invalid). */
  deadLettered: [{ id: string; topic: string; reason: string; error: string }];
  /** A message no destination of this relay matches was left in the outbox (`onUnroutable: 'hold'`). */
  unroutable: [{ id: string; topic: string; heldForMs: number }];
  /** A claim or commit failed (e.g. the database is down); the relay backs off and goes on. */
  error: [{ error: unknown }];
}

/** A running relay. See {@link createRelay}. */
export interface Relay {
  /** Typed events: `delivered`, `retry`, `deadLettered`, `error`. */
  readonly events: EventEmitter<RelayEvents>;
  /** Starts the loop (waits for the database up to `waitForDatabaseMs`); idempotent. */
  start(): Promise<void>;
  /** Stops claiming, finishes the batch in flight (within `stopTimeoutMs`), closes its LISTEN session. */
  stop(): Promise<void>;
  /** Runs one claim-and-deliver batch now; resolves to the number of messages claimed. For tools and tests. */
  runOnce(): Promise<number>;
  /**
   * Registers (or replaces) the checker asked about half messages of `topic` whose
   * producer neither committed nor rolled back within their `checkAfterMs`.
   * @example relay.onCheck('payments.captured', async (m) => (await provider.find(m.id)) ? 'commit' : 'rollback');
   */
  onCheck(topic: string, checker: HalfMessageChecker): void;
  /** Checks one batch of due half messages now; resolves to the number claimed. For tools and tests. */
  runChecksOnce(): Promise<number>;
}

interface ClaimedRow {
  seq: string;
  /** The row's ring slot, which the statements finishing it name beside its seq. */
  part: number;
  id: string;
  topic: string;
  key: string | null;
  payload: string;
  headers: string;
  /** Milliseconds since the epoch (float8), as the three times below. */
  run_at_ms: number | null;
  expires_at_ms: number | null;
  attempts: number;
  created_at_ms: number;
  priority: number;
  group_key: string | null;
}

interface ResolvedRelayOptions {
  pool: pg.Pool;
  schema: string;
  destinations: readonly Destination[];
  batchSize: number;
  batchesInFlight: number;
  pollIntervalMs: number;
  listen: boolean;
  retry: RetryPolicy;
  onUnroutable: 'hold' | 'dead-letter' | 'drop';
  name: string;
  logger: Logger;
  stopTimeoutMs: number;
  waitForDatabaseMs: number;
  checkBack: ResolvedCheckBackOptions;
}

/** Problems with a destination given in `destinations`, which the relay calls blindly later. */
function destinationProblems(d: unknown, i: number): string[] {
  if (typeof d !== 'object' || d === null) return [`destinations[${i}] must be a Destination object`];
  const x = d as Partial<Record<keyof Destination, unknown>>;
  const problems: string[] = [];
  if (typeof x.name !== 'string' || x.name.length === 0) problems.push(`destinations[${i}].name must be a non-empty string`);
  if (typeof x.matches !== 'function') problems.push(`destinations[${i}].matches must be a function`);
  if (typeof x.deliver !== 'function') problems.push(`destinations[${i}].deliver must be a function`);
  if (x.external !== undefined && typeof x.external !== 'boolean') problems.push(`destinations[${i}].external must be a boolean when given`);
  for (const k of ['start', 'stop'] as const) {
    if (x[k] !== undefined && typeof x[k] !== 'function') problems.push(`destinations[${i}].${k} must be a function when given`);
  }
  return problems;
}

/** Checks relay options, reporting every problem at once. */
export function resolveRelayOptions(input: RelayOptions): ResolvedRelayOptions {
  if (typeof input !== 'object' || input === null) assertNoProblems('relay', ['options must be an object with a pool and routes or destinations']);
  const options = input;
  const problems: string[] = [];
  if (typeof options.pool?.connect !== 'function') problems.push('pool must be a pg.Pool');
  let schema = DEFAULT_SCHEMA;
  try {
    schema = validateSchemaName(options.schema ?? DEFAULT_SCHEMA);
  } catch (err) {
    problems.push((err as Error).message);
  }
  checkInt(problems, 'batchSize', options.batchSize, 1, 10_000);
  checkInt(problems, 'batchesInFlight', options.batchesInFlight, 1, 16);
  checkInt(problems, 'pollIntervalMs', options.pollIntervalMs, 10, 3_600_000);
  checkInt(problems, 'stopTimeoutMs', options.stopTimeoutMs, 0, 3_600_000);
  const destinations: Destination[] = [];
  if (options.destinations !== undefined && !Array.isArray(options.destinations)) problems.push('destinations must be an array');
  else {
    for (const [i, d] of (options.destinations ?? []).entries()) {
      const found = destinationProblems(d, i);
      if (found.length === 0) destinations.push(d);
      else problems.push(...found);
    }
  }
  if (options.routes !== undefined && !Array.isArray(options.routes)) problems.push('routes must be an array');
  else if (options.routes) {
    try {
      destinations.push(createQueueDestination({ routes: options.routes, schema }));
    } catch (err) {
      if (err instanceof InvalidOptionsError) problems.push(...err.problems.map((p) => `routes: ${p}`));
      else problems.push(String(err));
    }
  }
  if (destinations.length === 0 && !options.routes && problems.length === 0) problems.push('give routes or destinations');
  if (options.onUnroutable !== undefined && !['hold', 'dead-letter', 'drop'].includes(options.onUnroutable)) {
    problems.push("onUnroutable must be 'hold', 'dead-letter' or 'drop'");
  }
  if (options.listen !== undefined && typeof options.listen !== 'boolean') problems.push('listen must be a boolean');
  if (options.name !== undefined && (typeof options.name !== 'string' || options.name.length === 0)) problems.push('name must be a non-empty string');
  checkWaitForDatabaseMs(problems, options.waitForDatabaseMs);
  const retry = resolveRetryPolicy(options.retry, DEFAULT_RELAY_RETRY, problems);
  const checkBack = resolveCheckBackOptions(options, problems);
  assertNoProblems('relay', problems);
  return {
    pool: options.pool,
    schema,
    destinations,
    batchSize: options.batchSize ?? DEFAULT_RELAY_BATCH_SIZE,
    batchesInFlight: options.batchesInFlight ?? DEFAULT_RELAY_BATCHES_IN_FLIGHT,
    pollIntervalMs: options.pollIntervalMs ?? DEFAULT_RELAY_POLL_INTERVAL_MS,
    listen: options.listen ?? true,
    retry,
    onUnroutable: options.onUnroutable ?? 'hold',
    name: options.name ?? `relay-${process.pid}`,
    logger: options.logger ?? silentLogger,
    stopTimeoutMs: options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS,
    waitForDatabaseMs: options.waitForDatabaseMs ?? DEFAULT_WAIT_FOR_DATABASE_MS,
    checkBack,
  };
}

const MIN_HOLD_MS = 1_000;
const MAX_HOLD_MS = 60_000;

/**
 * How long an unroutable message is left before it is claimed again: a tenth of its
 * age, from 1 s to 60 s. A fresh one (a rolling deploy) is soon offered to the other
 * relays; one nobody routes costs a row update a minute, not one per poll.
 */
function holdMs(ageMs: number): number {
  return Math.round(Math.min(MAX_HOLD_MS, Math.max(MIN_HOLD_MS, ageMs / 10)));
}

function toRelayed(r: ClaimedRow): RelayedMessage {
  return {
    seq: r.seq,
    id: r.id,
    topic: r.topic,
    key: r.key,
    payload: r.payload,
    headers: r.headers,
    runAt: r.run_at_ms === null ? null : new Date(r.run_at_ms),
    expiresAt: r.expires_at_ms === null ? null : new Date(r.expires_at_ms),
    attempts: r.attempts,
    createdAt: new Date(r.created_at_ms),
    priority: r.priority,
    group: r.group_key,
  };
}


/**
 * Creates a relay: it moves committed outbox messages to their destinations.
 *
 * It wakes on LISTEN (a hint sent by `publish`) and polls every `pollIntervalMs` as the
 * guarantee. Each batch is claimed with `FOR UPDATE SKIP LOCKED` in one transaction
 * that also removes the delivered rows, so any number of relays can run against one
 * outbox, and a relay killed mid-batch leaves its rows to the others (its delivery
 * may be repeated; destinations deduplicate by message id). Messages with the same
 * key leave one at a time in commit order. A failing delivery is retried with
 * backoff, then dead-lettered; the relay never stops for one bad message.
 *
 * @example
 * const relay = createRelay({ pool, routes: [{ topic: 'orders.*', queue: 'billing' }], logger });
 * await relay.start();
 * // ...
 * await relay.stop();
 */
export function createRelay(options: RelayOptions): Relay {
  const o = resolveRelayOptions(options);
  const log = o.logger.child({ component: 'relay', relay: o.name, schema: o.schema });
  warnIfConnectUnbounded(o.pool, log);
  const sql = relaySql(o.schema);
  const rotation = createRingRotation({ pool: o.pool, logger: log, ring: 'outbox', rotate: sql.rotate });
  const events = new EventEmitter<RelayEvents>();
  let loop: DrainLoop | undefined;
  let listener: Listener | undefined;
  let started = false;
  let starting: AbortController | undefined;

  const emitError = (error: unknown): void => {
    log.error({ err: error }, 'relay batch failed; backing off');
    if (events.listenerCount('error') > 0) events.emit('error', { error });
  };
  // Half messages: a second loop beside delivery (see check-back.ts).
  const checkBack = createCheckBack({
    pool: o.pool,
    schema: o.schema,
    relayName: o.name,
    options: o.checkBack,
    logger: log,
    onDecision: (e) => events.emit('halfMessageChecked', e),
    onDeadLettered: (e) => events.emit('deadLettered', e),
    onOutboxChanged: () => loop?.wake(),
    onError: (error) => {
      if (events.listenerCount('error') > 0) events.emit('error', { error });
    },
  });

  const deliverIsolated = async (
    client: pg.PoolClient,
    dest: Destination,
    batch: RelayedMessage[],
    failures: Map<string, string>,
  ): Promise<void> => {
    // A destination that writes nothing through the client has nothing to roll back.
    const savepoint = dest.external !== true;
    if (savepoint) await client.query('SAVEPOINT sagabox_deliver');
    const spans = startDeliverySpans(dest.name, batch);
    try {
      await dest.deliver(batch, { client });
      if (savepoint) await client.query('RELEASE SAVEPOINT sagabox_deliver');
      spans.end();
      events.emit('delivered', { count: batch.length, destination: dest.name });
      return;
    } catch (err) {
      spans.end(err);
      // A broker that is down or unreachable fails every message alike: the whole batch
      // goes back to the outbox untouched (no attempt counted) and the loop backs off,
      // instead of spending each message's attempts on an outage.
      if (isSagaboxError(err, 'BROKER_UNREACHABLE')) throw err;
      if (savepoint) await client.query('ROLLBACK TO SAVEPOINT sagabox_deliver');
      if (batch.length === 1) {
        failures.set(batch[0]!.seq, `${dest.name}: ${errorText(err)}`);
        return;
      }
      log.warn({ err, destination: dest.name, count: batch.length }, 'batch delivery failed; retrying one by one');
    }
    for (const m of batch) await deliverIsolated(client, dest, [m], failures);
  };

  /**
   * Delivers claimed rows inside their claim's transaction; what to report once it has
   * committed, and the writes (removals, retries, holds, dead letters) to commit with it.
   */
  const relayRows = async (client: pg.PoolClient, rows: ClaimedRow[]) => {
    if (rows.length === 0) return { claimed: 0, delivered: 0, retried: 0, dead: [], held: [], writes: [] };
    const now = Date.now();
    const partOf = new Map(rows.map((r) => [r.seq, r.part]));
    const parts = (seqs: readonly string[]): number[] => seqs.map((seq) => partOf.get(seq)!);
    const dead: { seq: string; id: string; topic: string; reason: string; error: string }[] = [];
    const held: { m: RelayedMessage; heldForMs: number }[] = [];
    const perDestination = new Map<Destination, RelayedMessage[]>();
    const live: RelayedMessage[] = [];
    for (const row of rows) {
      const m = toRelayed(row);
      const problem = outboxRowProblem(row);
      if (problem !== null) {
        dead.push({ seq: m.seq, id: m.id, topic: m.topic, reason: 'invalid', error: problem });
        continue;
      }
      if (m.expiresAt && m.expiresAt.getTime() <= now) {
        dead.push({ seq: m.seq, id: m.id, topic: m.topic, reason: 'expired', error: `expired at ${m.expiresAt.toISOString()} before delivery` });
        continue;
      }
      const targets = o.destinations.filter((d) => d.matches(m.topic));
      if (targets.length === 0) {
        if (o.onUnroutable === 'dead-letter') {
          dead.push({ seq: m.seq, id: m.id, topic: m.topic, reason: 'unroutable', error: `no destination matches topic ${m.topic}` });
        } else if (o.onUnroutable === 'hold') {
          held.push({ m, heldForMs: holdMs(now - m.createdAt.getTime()) });
        } else {
          live.push(m);
        }
        continue;
      }
      live.push(m);
      for (const d of targets) {
        let list = perDestination.get(d);
        if (!list) perDestination.set(d, (list = []));
        list.push(m);
      }
    }
    const failures = new Map<string, string>();
    for (const [dest, batch] of perDestination) await deliverIsolated(client, dest, batch, failures);

    const delivered = live.filter((m) => !failures.has(m.seq)).map((m) => m.seq);
    const retrySeqs: string[] = [];
    const retryDelays: number[] = [];
    const retryErrors: string[] = [];
    for (const m of live) {
      const error = failures.get(m.seq);
      if (error === undefined) continue;
      const attempts = m.attempts + 1;
      if (attempts >= o.retry.maxAttempts) {
        dead.push({ seq: m.seq, id: m.id, topic: m.topic, reason: 'failed', error });
      } else {
        retrySeqs.push(m.seq);
        retryDelays.push(backoffMs(o.retry, attempts));
        retryErrors.push(error);
        events.emit('retry', { id: m.id, topic: m.topic, attempts, error });
        log.warn({ messageId: m.id, topic: m.topic, attempts, error }, 'delivery failed; will retry');
      }
    }
    // Not run here: the caller sends them together with the COMMIT, in one round trip.
    const writes: PipelinedStatement[] = [];
    if (delivered.length > 0) {
      const bySlot = new Map<number, string[]>();
      for (const seq of delivered) {
        const slot = partOf.get(seq)!;
        const seqs = bySlot.get(slot);
        if (seqs) seqs.push(seq);
        else bySlot.set(slot, [seq]);
      }
      for (const [slot, seqs] of bySlot) writes.push(prepared(sql.deleteDelivered[slot]!, [seqs]));
    }
    if (retrySeqs.length > 0) writes.push({ text: sql.retryLater, values: [retrySeqs, parts(retrySeqs), retryDelays, retryErrors] });
    if (held.length > 0) {
      const seqs = held.map((h) => h.m.seq);
      writes.push({ text: sql.holdUnroutable, values: [seqs, parts(seqs), held.map((h) => h.heldForMs), `no route for this topic on relay ${o.name}`] });
    }
    if (dead.length > 0) {
      // Failed deliveries count the attempt that just failed; expired/unroutable do not.
      const failed = dead.filter((d) => d.reason === 'failed');
      const other = dead.filter((d) => d.reason !== 'failed');
      for (const [group, extra] of [[failed, 1], [other, 0]] as const) {
        if (group.length === 0) continue;
        const seqs = group.map((d) => d.seq);
        writes.push({ text: sql.deadLetter, values: [seqs, parts(seqs), group.map((d) => d.reason), group.map((d) => d.error), extra] });
      }
    }
    return { claimed: rows.length, delivered: delivered.length, retried: retrySeqs.length, dead, held, writes };
  };

  // One warn line per unknown topic a minute: a topic nobody routes comes back every
  // hold, and its count is in the outbox stats anyway.
  const reportedAt = new Map<string, number>();
  const shouldReportTopic = (topic: string): boolean => {
    const now = Date.now();
    const last = reportedAt.get(topic);
    if (last !== undefined && now - last < 60_000) return false;
    if (reportedAt.size >= 1_000) reportedAt.clear();
    reportedAt.set(topic, now);
    return true;
  };

  interface Claimed {
    client: pg.PoolClient;
    release(err?: Error): void;
    rows: ClaimedRow[];
    /** The claim's size. */
    asked: number;
  }

  // A keyed backlog gives one row per key at a time, and a claim asking for more reads
  // the whole outbox looking for them: claims keep to what the last short one showed.
  const claimSize = createClaimSizeCap({ floor: Math.min(RELAY_CLAIM_FLOOR, o.batchSize), max: o.batchSize, parallel: o.batchesInFlight, logger: log });
  /** Rows of the batches claimed and not yet committed. */
  let rowsInFlight = 0;

  /** Opens a transaction and claims a batch in it; {@link finishBatch} delivers it and commits. */
  const claimBatch = async (): Promise<Claimed> => {
    const { client, release } = await checkoutClient(o.pool, log);
    const asked = claimSize.apply(o.batchSize);
    const held = rowsInFlight;
    try {
      const [, , claimed] = await pipelined(client, ['BEGIN', CLAIM_PLAN_BY_INDEX, prepared(sql.claim, [asked, null]), CLAIM_PLAN_DONE]);
      const rows = claimed!.rows as ClaimedRow[];
      claimSize.learn(asked, rows.length, held);
      return { client, release, rows, asked };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      release(err as Error);
      throw err;
    }
  };

  /** Delivers a claimed batch, removes it from the outbox, commits; resolves to the number claimed. */
  const finishBatch = async ({ client, release, rows }: Claimed): Promise<number> => {
    let batch: Awaited<ReturnType<typeof relayRows>>;
    try {
      batch = await relayRows(client, rows);
      // A write that fails aborts the transaction and the COMMIT behind it answers
      // ROLLBACK: pipelined() rejects with the write's error and nothing was removed.
      await pipelined(client, [...batch.writes, 'COMMIT']);
      release();
    } catch (err) {
      // The connection of a failed transaction is discarded, not pooled.
      await client.query('ROLLBACK').catch(() => {});
      release(err as Error);
      throw err;
    }
    // Logged and emitted only once durable.
    for (const d of batch.dead) {
      log.error({ messageId: d.id, topic: d.topic, reason: d.reason, error: d.error }, 'message dead-lettered by the relay');
      events.emit('deadLettered', { id: d.id, topic: d.topic, reason: d.reason, error: d.error });
    }
    for (const { m, heldForMs } of batch.held) {
      if (shouldReportTopic(m.topic)) {
        log.warn({ messageId: m.id, topic: m.topic, heldForMs }, 'no destination of this relay matches the topic; left in the outbox for a relay that knows it');
      }
      events.emit('unroutable', { id: m.id, topic: m.topic, heldForMs });
    }
    if (batch.claimed > 0) log.debug({ claimed: batch.claimed, delivered: batch.delivered, retried: batch.retried, dead: batch.dead.length }, 'relay batch');
    return batch.claimed;
  };

  const runOnce = async (): Promise<number> => finishBatch(await claimBatch());

  // Batches claimed by the loop and not yet committed. Their failures are kept and
  // thrown by the loop's next run, which then backs off like after any failed batch.
  const inFlight = new Set<Promise<void>>();
  let backgroundFailure: { error: unknown } | undefined;
  const throwBackgroundFailure = (): void => {
    const failure = backgroundFailure;
    backgroundFailure = undefined;
    if (failure) throw failure.error;
  };

  /**
   * One step of the loop: claims a batch and lets it deliver in the background. A full
   * batch returns at once so the next claim overlaps this delivery, up to
   * `batchesInFlight` transactions; a short one waits for everything in flight, so the
   * loop rests only when nothing is.
   */
  const runPipelined = async (): Promise<{ handled: number; full: boolean }> => {
    throwBackgroundFailure();
    if (rotation.due()) {
      // Every few hundred ms, empties the outbox ring's older slots (ring-rotation.ts),
      // beside the batches in flight: most times no slot is due and that costs one short
      // statement. This relay's open batches hold every slot's lock, though, so once a
      // rotation found a slot busy, they finish first and the next claim waits for it.
      if (rotation.busy()) {
        await Promise.all(inFlight);
        throwBackgroundFailure();
        await rotation.run();
      } else {
        void rotation.run();
      }
    }
    const claimed = await claimBatch();
    const n = claimed.rows.length;
    rotation.claimed(n);
    rowsInFlight += n;
    const done: Promise<void> = finishBatch(claimed).then(
      () => undefined,
      (error: unknown) => {
        backgroundFailure ??= { error };
      },
    );
    inFlight.add(done);
    void done.then(() => {
      inFlight.delete(done);
      rowsInFlight -= n;
    });
    const full = n >= claimed.asked;
    if (!full || !started) await Promise.all(inFlight);
    else if (inFlight.size >= o.batchesInFlight) await Promise.race(inFlight);
    throwBackgroundFailure();
    return { handled: n, full };
  };

  return {
    events,
    runOnce,
    onCheck: checkBack.onCheck,
    runChecksOnce: checkBack.runOnce,
    async start() {
      if (started) return;
      started = true;
      starting = new AbortController();
      try {
        const wait = { waitMs: o.waitForDatabaseMs, logger: log, signal: starting.signal };
        await waitForDatabase(o.pool, wait);
        // A destination may open connections of its own (another database, a broker).
        for (const d of o.destinations) {
          if (d.start) await retryWhileUnreachable(() => d.start!({ pool: o.pool }), wait);
        }
      } catch (err) {
        started = false;
        throw err;
      } finally {
        starting = undefined;
      }
      loop = createDrainLoop({
        run: runPipelined,
        pollIntervalMs: o.pollIntervalMs,
        // publish() sends at most one NOTIFY per 2 ms per process (10 ms while its
        // publishes come less than 1 ms apart, when these looks keep finding work): a
        // message published just after one that woke us may have no NOTIFY of its own.
        // Look again a few times shortly after the last productive batch instead of
        // waiting for a poll.
        lingerMs: 4,
        lingerChecks: 5,
        logger: log,
        onError: emitError,
      });
      if (o.listen) {
        listener = createListener({
          connection: o.pool.options,
          pool: o.pool,
          channels: [outboxChannel(o.schema)],
          onNotify: () => loop?.wake(),
          onReconnect: () => loop?.wake(),
          logger: log,
        });
        await listener.start();
      }
      loop.start();
      checkBack.start();
      log.info({ destinations: o.destinations.map((d) => d.name), batchSize: o.batchSize, batchesInFlight: o.batchesInFlight, listen: o.listen }, 'relay started');
    },
    async stop() {
      if (!started) return;
      started = false;
      // A start still waiting for the database gives up; it rejects with this reason.
      starting?.abort(new SagaboxError('DATABASE_UNREACHABLE', 'relay stopped before the database answered'));
      const stopping = Promise.all([loop?.stop().then(() => Promise.all([...inFlight, rotation.idle()])), listener?.stop(), checkBack.stop()]);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        stopping.then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), o.stopTimeoutMs))),
      ]);
      clearTimeout(timer);
      if (timedOut) log.warn({ stopTimeoutMs: o.stopTimeoutMs }, 'relay stop timed out waiting for its batch');
      for (const d of o.destinations) await d.stop?.().catch((err) => log.warn({ err, destination: d.name }, 'destination stop failed'));
      log.info({}, 'relay stopped');
    },
  };
}
