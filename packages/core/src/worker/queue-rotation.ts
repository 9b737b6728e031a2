import type pg from 'pg';
import type { Logger } from '../shared/logger.js';
import { checkoutClient } from '../shared/checkout-client.js';
import { pipelined } from '../shared/pipelined.js';
import { queueSql } from './queue-sql.js';

/** A worker that is claiming tries to rotate queue_messages' ring at most this often, in milliseconds. */
export const QUEUE_ROTATION_INTERVAL_MS = 250;
/**
 * After a rotation found a slot's lock held, the next one waits up to this long for it,
 * in milliseconds, at most once per {@link QUEUE_ROTATION_WAIT_EVERY_MS}.
 */
export const QUEUE_ROTATION_WAIT_MS = 50;
/** How often a rotation may wait for a slot's lock, in milliseconds. */
export const QUEUE_ROTATION_WAIT_EVERY_MS = 1_000;

/** Options of {@link createQueueRotation}. */
export interface QueueRotationOptions {
  pool: pg.Pool;
  schema: string;
  logger: Logger;
}

/** Empties the older slots of queue_messages while messages flow; see {@link createQueueRotation}. */
export interface QueueRotation {
  /** Called by a slot after each claim that leased `claimed` messages; never waits for the rotation. */
  afterClaim(claimed: number): void;
}

/**
 * queue_messages is a ring of partitions, about a second of messages each
 * (migration 0001: queue_part, rotate_queue_messages). While messages flow, the worker
 * asks the database every {@link QUEUE_ROTATION_INTERVAL_MS} to empty the older slots:
 * the messages still in one are moved to the clock's slot and the slot is truncated.
 * Unlike vacuum, a truncation frees the slot's dead rows even while another transaction
 * holds an old snapshot, so claims walk a few seconds of handled messages at most.
 *
 * A slot's lock is first asked for without waiting, which never holds a claim or an ack
 * back. A worker with a backlog always has a claim or a handling transaction open,
 * though, and then that never succeeds: the dead rows would pile up, claims slow down
 * and the backlog grows. So after a rotation found a lock held, the next one may wait
 * {@link QUEUE_ROTATION_WAIT_MS} for it (claims and acks wait behind it that long), at
 * most once a second. Runs off the claiming slot's path, one call at a time.
 */
export function createQueueRotation(o: QueueRotationOptions): QueueRotation {
  const sql = queueSql(o.schema);
  let lastAt = -Infinity;
  let lastWaitAt = -Infinity;
  let wasBusy = false;
  let running = false;
  let failing = false;

  const rotate = async (): Promise<void> => {
    try {
      const wait = wasBusy && performance.now() - lastWaitAt >= QUEUE_ROTATION_WAIT_EVERY_MS;
      if (wait) lastWaitAt = performance.now();
      // READ COMMITTED whatever the role's default: the function refuses any other level.
      const { client, release } = await checkoutClient(o.pool, o.logger);
      let rows: { truncated: number[]; busy: number[]; moved: number }[];
      try {
        const [, result] = await pipelined(client, ['BEGIN ISOLATION LEVEL READ COMMITTED', { text: sql.rotate, values: [wait ? QUEUE_ROTATION_WAIT_MS : 0] }, 'COMMIT']);
        rows = result!.rows as typeof rows;
        release();
      } catch (err) {
        release(err as Error);
        throw err;
      }
      if (failing) o.logger.info({}, 'queue_messages rotation works again');
      failing = false;
      const r = rows[0];
      wasBusy = (r?.busy.length ?? 0) > 0;
      if (r && (r.truncated.length > 0 || r.busy.length > 0)) o.logger.debug({ truncated: r.truncated, busy: r.busy, moved: r.moved, waited: wait }, 'rotated queue_messages');
    } catch (err) {
      // Logged once per failing spell: a database that is away fails every call.
      if (!failing) o.logger.warn({ err }, 'could not rotate queue_messages; will try again');
      failing = true;
    } finally {
      running = false;
    }
  };

  return {
    afterClaim(claimed) {
      if (claimed === 0 || running || performance.now() - lastAt < QUEUE_ROTATION_INTERVAL_MS) return;
      running = true;
      lastAt = performance.now();
      void rotate();
    },
  };
}
