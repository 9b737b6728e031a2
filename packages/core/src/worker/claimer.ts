import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from '../shared/logger.js';
import { prepared } from '../shared/prepared.js';
import type { ClaimedRow, Lease } from './batch-handler.js';
import type { QueueSql } from './queue-sql.js';

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

/**
 * How long a worker keeps to a heavier claim after the lean one found limits in force
 * (or priority aging due), before it tries the lean claim again.
 */
const HEAVY_CLAIM_SPELL_MS = 1_000;

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
  sql: QueueSql;
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
  /**
   * Claims up to a batch for `slot` (its token: one batch at a time, so one
   * queue_leases row). `reserve`: the batch size the slot may hold as a standing
   * reservation (0: never, as for runOnce, which has no stop to hand it back).
   */
  claim(slot: string, reserve: number): Promise<Claim>;
  /** Tells the claimer how the slot's last batch went, which sets its next claim's size. */
  handled(slot: string, last: { size: number; claimed: number; elapsedMs: number }): void;
  /** Forgets every slot's share (the worker stopped and released them). */
  forget(): void;
}

/**
 * The claimer: picks the lightest claim statement the queue's limits in force allow
 * (see queue-sql.ts), moves to a heavier one when the lighter one's guard fails, and
 * keeps each slot's share of limits far from binding.
 */
export function createClaimer(o: ClaimerOptions): Claimer {
  const { pool, sql, queue, name, leaseMs, batchSize } = o;
  const log = o.logger;
  // The lean claim's text per size (its LIMIT is a literal, see queue-sql.ts): a few
  // sizes, base doubled up to the maximum, so a few cached plans per connection.
  const leanTexts = new Map<number, string>();
  const leanText = (size: number): string => {
    let text = leanTexts.get(size);
    if (text === undefined) leanTexts.set(size, (text = sql.claimUnlimited(size)));
    return text;
  };
  /** Each slot's next lean claim size. */
  const sizes = new Map<string, number>();
  const claimTexts = {
    lean: leanText(batchSize),
    reserved: sql.claimReserved(batchSize),
    global: sql.claimGlobal(batchSize),
    full: sql.claim(batchSize),
  };
  const shares = new Map<string, SlotShare>();
  const shareUsable = (share: SlotShare | undefined): share is SlotShare =>
    share !== undefined && (share.rate === null || (share.tokens >= batchSize && performance.now() < share.tokensUntil));
  // Until `until`, claims start with the heavier claim `kind` (see HEAVY_CLAIM_SPELL_MS).
  let spell: { kind: 'global' | 'full'; until: number } = { kind: 'full', until: 0 };

  /** The share a global claim's grant gave the slot (limits far from binding: a reserved batch and/or tokens drawn ahead), if any. */
  const shareGranted = (row: ClaimResultRow | undefined): SlotShare | undefined => {
    if (!row || !(row.reserve || row.max_in_flight === null) || !(row.rate === null || (row.allowance ?? 0) > 0)) return undefined;
    return { maxInFlight: row.max_in_flight ?? null, rate: row.rate ?? null, tokens: row.allowance ?? 0, tokensUntil: performance.now() + ALLOWANCE_MS };
  };

  return {
    forget: () => {
      shares.clear();
      sizes.clear();
    },
    handled(slot, last) {
      const next = nextClaimSize({ ...last, base: batchSize, max: o.maxBatchSize });
      if (next === batchSize) sizes.delete(slot);
      else sizes.set(slot, next);
    },
    async claim(slot, reserve) {
      const token = randomUUID();
      const values = [queue, token, name, leaseMs];
      const share = shares.get(slot);
      const leanSize = sizes.get(slot) ?? batchSize;
      const run = async (kind: keyof typeof claimTexts): Promise<ClaimResultRow[]> => {
        const params = kind === 'lean' ? values
          : kind === 'reserved' ? [...values, slot, share!.maxInFlight, share!.rate]
            : kind === 'global' ? [...values, slot, reserve]
              : [...values, slot];
        const text = kind === 'lean' ? leanText(leanSize) : claimTexts[kind];
        return (await pool.query<ClaimResultRow>(prepared(text, params))).rows;
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
      const rows = result.filter((r): r is ClaimResultRow & ClaimedRow => r.id !== null);
      // The slot's share: spent by a reserved claim, taken by a global claim that got one,
      // gone after any other claim.
      if (kind === 'reserved') share!.tokens -= rows.length;
      else {
        const taken = kind === 'global' ? shareGranted(rows[0]) : undefined;
        if (taken) shares.set(slot, taken);
        else shares.delete(slot);
      }
      const size = kind === 'lean' ? leanSize : batchSize;
      if (rows.length === 0) return { rows: [], waitMs: result[0]?.wait_ms ?? null, size };
      return { rows, lease: { token, slot, counted: rows[0]!.counted }, size };
    },
  };
}
