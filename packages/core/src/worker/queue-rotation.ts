import type pg from 'pg';
import type { Logger } from '../shared/logger.js';
import { queueSql } from './queue-sql.js';

/** A worker that is claiming tries to rotate queue_messages' ring at most this often, in milliseconds. */
export const QUEUE_ROTATION_INTERVAL_MS = 250;

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
 * holds an old snapshot, so claims walk a few seconds of handled messages at most. The
 * function takes a slot's lock only when it is free at once, so it never holds a claim
 * or an ack back; a slot it could not take is tried at the next interval. Runs off the
 * claiming slot's path, one call at a time.
 */
export function createQueueRotation(o: QueueRotationOptions): QueueRotation {
  const sql = queueSql(o.schema);
  let lastAt = -Infinity;
  let running = false;
  let failing = false;

  const rotate = async (): Promise<void> => {
    try {
      const { rows } = await o.pool.query<{ truncated: number[]; busy: number[]; moved: number }>(sql.rotate);
      if (failing) o.logger.info({}, 'queue_messages rotation works again');
      failing = false;
      const r = rows[0];
      if (r && r.truncated.length > 0) o.logger.debug({ truncated: r.truncated, busy: r.busy, moved: r.moved }, 'rotated queue_messages');
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
