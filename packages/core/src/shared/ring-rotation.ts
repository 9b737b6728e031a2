import type pg from 'pg';
import type { Logger } from './logger.js';
import { checkoutClient } from './checkout-client.js';
import { pipelined } from './pipelined.js';

/** A worker or relay that is claiming tries to rotate its ring at most this often, in milliseconds. */
export const RING_ROTATION_INTERVAL_MS = 250;
/**
 * After a rotation found a slot's lock held, the next one waits up to this long for it,
 * in milliseconds, at most once per {@link RING_ROTATION_WAIT_EVERY_MS}.
 */
export const RING_ROTATION_WAIT_MS = 50;
/** How often a rotation may wait for a slot's lock, in milliseconds. */
export const RING_ROTATION_WAIT_EVERY_MS = 1_000;

/** Options of {@link createRingRotation}. */
export interface RingRotationOptions {
  pool: pg.Pool;
  logger: Logger;
  /** The ring's table, for the log lines: `queue_messages` or `outbox`. */
  ring: string;
  /** The statement that rotates it once: $1 how long to wait for a slot's lock in ms; returns truncated, busy, moved. */
  rotate: string;
}

/** Empties the older slots of a ring while messages flow; see {@link createRingRotation}. */
export interface RingRotation {
  /** Called after each claim that took `claimed` messages: starts a rotation when one is {@link due}, and never waits for it. */
  afterClaim(claimed: number): void;
  /** Records a claim of `claimed` messages without starting anything (the caller runs {@link run} when {@link due}). */
  claimed(claimed: number): void;
  /** Whether a rotation should run now: messages were claimed since the last one, {@link RING_ROTATION_INTERVAL_MS} ago or more, and none is running. */
  due(): boolean;
  /** Whether the last rotation found a slot it would empty locked by someone else's transaction. */
  busy(): boolean;
  /** Rotates once now; resolves when done and never rejects. */
  run(): Promise<void>;
  /** Resolves once no rotation is running (a stopping worker or relay waits for one it started in the background). */
  idle(): Promise<void>;
}

/**
 * queue_messages and the outbox are rings of partitions, about a second of messages each
 * (migration 0001: queue_part, rotate_ring). While messages flow, the worker (for
 * queue_messages) and the relay (for the outbox) ask the database every
 * {@link RING_ROTATION_INTERVAL_MS} to empty the older slots: the rows still in one are
 * moved to the clock's slot and the slot is truncated. Unlike vacuum, a truncation frees
 * the slot's dead rows even while another transaction holds an old snapshot, so claims
 * walk a few seconds of handled messages at most.
 *
 * A slot's lock is first asked for without waiting, which never holds a claim or an ack
 * back. A worker or relay with a backlog always has a claim or a handling transaction
 * open, though, and then that never succeeds: the dead rows would pile up, claims slow
 * down and the backlog grows. So after a rotation found a lock held, the next one may
 * wait {@link RING_ROTATION_WAIT_MS} for it (claims and acks wait behind it that long),
 * at most once a second. One call at a time; a failure is logged once per failing spell
 * and never reaches the caller. A worker starts it off its claiming path (`afterClaim`).
 * The relay starts it beside its batches too, but its own open batches hold every slot's
 * lock: once a rotation was {@link RingRotation.busy | busy}, it runs the next one
 * between batches.
 */
export function createRingRotation(o: RingRotationOptions): RingRotation {
  let lastAt = -Infinity;
  let lastWaitAt = -Infinity;
  let wasBusy = false;
  let running = false;
  let failing = false;
  let flowed = false;
  let current: Promise<void> = Promise.resolve();

  const rotate = async (): Promise<void> => {
    try {
      const wait = wasBusy && performance.now() - lastWaitAt >= RING_ROTATION_WAIT_EVERY_MS;
      if (wait) lastWaitAt = performance.now();
      // READ COMMITTED whatever the role's default: the function refuses any other level.
      const { client, release } = await checkoutClient(o.pool, o.logger);
      let rows: { truncated: number[]; busy: number[]; moved: number }[];
      try {
        const [, result] = await pipelined(client, ['BEGIN ISOLATION LEVEL READ COMMITTED', { text: o.rotate, values: [wait ? RING_ROTATION_WAIT_MS : 0] }, 'COMMIT']);
        rows = result!.rows as typeof rows;
        release();
      } catch (err) {
        release(err as Error);
        throw err;
      }
      if (failing) o.logger.info({ ring: o.ring }, 'ring rotation works again');
      failing = false;
      const r = rows[0];
      wasBusy = (r?.busy.length ?? 0) > 0;
      if (r && (r.truncated.length > 0 || r.busy.length > 0)) o.logger.debug({ ring: o.ring, truncated: r.truncated, busy: r.busy, moved: r.moved, waited: wait }, 'rotated ring');
    } catch (err) {
      // Logged once per failing spell: a database that is away fails every call.
      if (!failing) o.logger.warn({ err, ring: o.ring }, 'could not rotate ring; will try again');
      failing = true;
    } finally {
      running = false;
    }
  };

  const due = (): boolean => flowed && !running && performance.now() - lastAt >= RING_ROTATION_INTERVAL_MS;
  const run = (): Promise<void> => {
    running = true;
    flowed = false;
    lastAt = performance.now();
    current = rotate();
    return current;
  };
  const claimed = (n: number): void => {
    if (n > 0) flowed = true;
  };
  return {
    claimed,
    due,
    busy: () => wasBusy,
    run,
    idle: () => current,
    afterClaim(n) {
      // Only on a claim that took messages: a worker stopping or going idle starts none.
      claimed(n);
      if (n > 0 && due()) void run();
    },
  };
}
