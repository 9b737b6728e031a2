import type pg from 'pg';
import type { Logger } from '../shared/logger.js';
import { queueSql } from './queue-sql.js';

/** Messages a worker handles from short claims (a trickle) between two vacuums of queue_messages. */
export const TRICKLE_VACUUM_EVERY = 100;
/** A worker vacuums queue_messages at most this often, in milliseconds. */
export const TRICKLE_VACUUM_MIN_INTERVAL_MS = 1_000;
/** Above this size, in bytes, the table is left to autovacuum (a backlog, or dead rows a held snapshot keeps). */
export const TRICKLE_VACUUM_MAX_BYTES = 4 * 1024 * 1024;

/** Options of {@link createTrickleVacuum}. */
export interface TrickleVacuumOptions {
  pool: pg.Pool;
  schema: string;
  logger: Logger;
}

/** Keeps queue_messages' pages reusable while a worker trickles; see {@link createTrickleVacuum}. */
export interface TrickleVacuum {
  /**
   * Called by a slot after each claim: `claimed` messages, `full` when the claim came
   * back full (a backlog). Resolves once a vacuum that was due has run.
   */
  afterClaim(claimed: number, full: boolean): Promise<void>;
}

/**
 * queue_messages is created at fillfactor 50, so the claim's rewrite of a row stays on
 * its page under a backlog. In a trickle that fillfactor leaves each insert page with
 * just more free space than opportunistic pruning waits for: inserts move on to a new
 * page, nothing prunes the old one, and only VACUUM's free-space map sends inserts back.
 * So while the worker's claims come back short it vacuums the table every
 * {@link TRICKLE_VACUUM_EVERY} messages (at most once a second), skipping when another
 * vacuum holds the table, when the table is large (autovacuum's job) or when the
 * worker's role may not vacuum it. The table is not truncated: that would lock out
 * claims.
 */
export function createTrickleVacuum(o: TrickleVacuumOptions): TrickleVacuum {
  const sql = queueSql(o.schema);
  let trickled = 0;
  let lastAt = -Infinity;
  let running = false;
  let notOwner = false;

  const vacuum = async (): Promise<void> => {
    const { rows } = await o.pool.query<{ small: boolean; owner: boolean }>(sql.trickleVacuumDue, [o.schema, TRICKLE_VACUUM_MAX_BYTES]);
    const due = rows[0];
    if (due && !due.owner) {
      if (!notOwner) o.logger.info({}, 'this role does not own queue_messages: its pages are left to autovacuum');
      notOwner = true;
      return;
    }
    if (due?.small) await o.pool.query(sql.trickleVacuum);
  };

  return {
    async afterClaim(claimed, full) {
      if (full) {
        trickled = 0;
        return;
      }
      trickled += claimed;
      if (notOwner || running || trickled < TRICKLE_VACUUM_EVERY || performance.now() - lastAt < TRICKLE_VACUUM_MIN_INTERVAL_MS) return;
      running = true;
      trickled = 0;
      lastAt = performance.now();
      try {
        await vacuum();
      } catch (err) {
        o.logger.warn({ err }, 'could not vacuum queue_messages; will try again');
      } finally {
        running = false;
      }
    },
  };
}
