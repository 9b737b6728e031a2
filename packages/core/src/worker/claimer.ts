import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from '../shared/logger.js';
import { prepared } from '../shared/prepared.js';
import type { ClaimedRow, Lease } from './batch-handler.js';
import { claimSql } from './claim-sql.js';

/** The claim's rows: messages, or one row of NULLs (id null) when nothing was claimed. */
interface ClaimResultRow extends Omit<ClaimedRow, 'id'> {
  id: string | null;
  /** The batch was recorded in queue_leases (the queue has max_in_flight). */
  counted: boolean;
  /** A flow limit binds: when nothing was claimed, try again after this long. */
  wait_ms: number | null;
  /** False when the unlimited claim found a limit in force (or aging due) and claimed nothing. */
  lean: boolean;
  /** With lean = false: only because priority aging is due, which one limited claim settles. */
  aging_only: boolean;
}

/**
 * How long a worker keeps to the limited claim after the unlimited one found limits in
 * force, before it tries the unlimited claim again.
 */
const LIMITED_CLAIM_SPELL_MS = 1_000;

/** A batch that took longer than this, in milliseconds, does not make the next claim larger (see {@link nextClaimSize}). */
export const SLOW_BATCH_MS = 1_000;

/**
 * The size of a slot's next claim of an unlimited queue, from how its last claim went:
 * twice as large (up to `max`) after a full claim handled quickly, since a backlog is
 * waiting and each claim costs the database about the same whatever its size; back to
 * `base` after a short claim (the backlog is gone: a trickle keeps small claims, so one
 * message never waits for others); half as large after a slow batch (long transactions
 * hold their rows longer; halving rather than resetting keeps a loaded machine from
 * falling back to the smallest, dearest claims).
 * @example nextClaimSize({ size: 10, claimed: 10, elapsedMs: 5, base: 10, max: 100 }) // 20
 */
export function nextClaimSize(last: { size: number; claimed: number; elapsedMs: number; base: number; max: number }): number {
  if (last.claimed < last.size) return last.base;
  if (last.elapsedMs > SLOW_BATCH_MS) return Math.max(last.base, Math.floor(last.size / 2));
  return Math.min(last.max, last.size * 2);
}

/** Options of {@link createClaimer}. */
export interface ClaimerOptions {
  pool: pg.Pool;
  schema: string;
  queue: string;
  /** The worker's name, written to the leased rows' locked_by. */
  name: string;
  leaseMs: number;
  /** Claim size of limited queues, and the first of unlimited ones. */
  batchSize: number;
  /** Largest claim of an unlimited queue (see {@link nextClaimSize}). */
  maxBatchSize: number;
  logger: Logger;
}

/** What one claim got: the rows and their lease, or why nothing was claimed. */
export type Claim = { rows: ClaimedRow[]; lease: Lease; size: number } | { rows: []; waitMs: number | null; size: number };

/** Claims batches for a worker's slots; see {@link createClaimer}. */
export interface Claimer {
  /** Claims up to a batch for `slot` (its token: one batch at a time, so one queue_leases row). */
  claim(slot: string): Promise<Claim>;
  /** Tells the claimer how the slot's last batch went, which sets its next claim's size. */
  handled(slot: string, last: { size: number; claimed: number; elapsedMs: number }): void;
  /** Forgets every slot's claim size (the worker stopped). */
  forget(): void;
}

/**
 * The claimer: claims with the unlimited claim while the queue has no flow limit in
 * force, and with the limited one when the unlimited claim's guard finds one (keeping
 * to it for a while, see claim-sql.ts).
 */
export function createClaimer(o: ClaimerOptions): Claimer {
  const { pool, queue, name, leaseMs, batchSize } = o;
  const sql = claimSql(o.schema);
  const log = o.logger;
  // The unlimited claim's text per size (its LIMIT is a literal, see claim-sql.ts): the
  // base size doubled up to the maximum, so a few cached plans per connection.
  const unlimitedTexts = new Map<number, string>();
  const unlimitedText = (size: number): string => {
    let text = unlimitedTexts.get(size);
    if (text === undefined) unlimitedTexts.set(size, (text = sql.unlimited(size)));
    return text;
  };
  const limitedText = sql.limited(batchSize);
  /** Each slot's next unlimited claim size. */
  const sizes = new Map<string, number>();
  // Until then, claims start with the limited claim (see LIMITED_CLAIM_SPELL_MS).
  let limitedUntil = 0;

  return {
    forget: () => sizes.clear(),
    handled(slot, last) {
      const next = nextClaimSize({ ...last, base: batchSize, max: o.maxBatchSize });
      if (next === batchSize) sizes.delete(slot);
      else sizes.set(slot, next);
    },
    async claim(slot) {
      const token = randomUUID();
      let size = sizes.get(slot) ?? batchSize;
      let result: ClaimResultRow[] | undefined;
      if (performance.now() >= limitedUntil) {
        result = (await pool.query<ClaimResultRow>(prepared(unlimitedText(size), [queue, token, name, leaseMs]))).rows;
        const guard = result[0];
        if (guard?.lean === false) {
          // A limit in force, a pause, or aging due (once a priorityAgingMs: one limited
          // claim does it, and the next claim is unlimited again).
          if (!guard.aging_only) {
            log.debug({ claim: 'limited' }, 'flow limits in force: claiming with the limited statement');
            limitedUntil = performance.now() + LIMITED_CLAIM_SPELL_MS;
          }
          result = undefined;
        }
      }
      if (result === undefined) {
        size = batchSize;
        result = (await pool.query<ClaimResultRow>(prepared(limitedText, [queue, token, name, leaseMs, slot]))).rows;
      }
      const rows = result.filter((r): r is ClaimResultRow & ClaimedRow => r.id !== null);
      if (rows.length === 0) return { rows: [], waitMs: result[0]?.wait_ms ?? null, size };
      return { rows, lease: { token, slot, counted: rows[0]!.counted }, size };
    },
  };
}
