import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { checkoutClient } from '../shared/checkout-client.js';
import { CLAIM_PLAN_BY_INDEX_NO_JIT } from '../shared/claim-plan.js';
import { createClaimSizeCap } from '../shared/claim-size-cap.js';
import { KEY_HOLD_LIMIT } from '../shared/held.js';
import type { Logger } from '../shared/logger.js';
import { pipelined } from '../shared/pipelined.js';
import { prepared } from '../shared/prepared.js';
import type { ClaimedRow, Lease } from './batch-handler.js';
import { claimSql, SWEEP_LIMIT } from './claim-sql.js';
import { queueSql } from './queue-sql.js';

/** The most holds of hot keys one sweep runs (see `holdKeyTails`); a next sweep is then due at once. */
const KEY_HOLD_ROUNDS = 10;

/** The claim's rows: messages, or one row of NULLs (id null) when nothing was claimed. */
interface ClaimResultRow extends Omit<ClaimedRow, 'id'> {
  id: string | null;
  /** The batch was recorded in queue_leases (the queue has max_in_flight). */
  counted: boolean;
  /** A flow limit binds: when nothing was claimed, try again after this long. */
  wait_ms: number | null;
  /** False when the unlimited claim found a limit in force and claimed nothing. */
  lean: boolean;
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
  /** Largest batch a slot takes of an unlimited queue (see {@link nextClaimSize}). */
  maxBatchSize: number;
  /** The worker's slots: under a backlog one claim of an unlimited queue serves them all. */
  concurrency: number;
  /** At most this often, in milliseconds, a claim first readies the scheduled messages coming due (see `readyScheduled`). */
  sweepEveryMs: number;
  logger: Logger;
}

/** What one claim got: the rows and their lease, or why nothing was claimed. */
export type Claim = { rows: ClaimedRow[]; lease: Lease; size: number } | { rows: []; waitMs: number | null; size: number };

/** Claims batches for a worker's slots; see {@link createClaimer}. */
export interface Claimer {
  /**
   * A batch for `slot` (its token: one batch at a time, so one queue_leases row).
   * `share`: the batch may come from, and the claim may fill, the worker's buffer of
   * claimed messages (false for runOnce, which has no stop to release a buffer).
   */
  claim(slot: string, share: boolean): Promise<Claim>;
  /** Tells the claimer how the slot's last batch went, which sets its next batch's size. */
  handled(slot: string, last: { size: number; claimed: number; elapsedMs: number }): void;
  /** Ends the leases of the buffered messages no slot took (the worker is stopping) and forgets every slot's size. */
  release(): Promise<void>;
}

/**
 * The claimer. While the queue has no flow limit in force it claims with the unlimited
 * claim; a backlog is claimed once for all the worker's slots (a slot's batch size times
 * the slots) into a buffer the slots take their batches from, since every claim walks
 * the queue's head (rows in flight, and index entries of rows acked since the last
 * vacuum) whatever its size. In a trickle each slot claims its own batch, beside the
 * others, so a slot woken for a new message never waits on a claim that began before it
 * committed. When the
 * unlimited claim's guard finds a limit, each slot claims its own batch with the
 * limited claim for a while (see claim-sql.ts). A large claim that came back short caps
 * the slots' sizes for a while: a keyed backlog gives one row per key at a time, and a
 * claim asking for more reads the whole backlog (see claim-size-cap.ts). At most once
 * per `sweepEveryMs` a claim first readies the queue's scheduled messages coming due,
 * which the claims' index does not hold (see `readyScheduled`).
 */
export function createClaimer(o: ClaimerOptions): Claimer {
  const { pool, queue, name, leaseMs, batchSize } = o;
  const sql = claimSql(o.schema);
  const housekeeping = queueSql(o.schema);
  const log = o.logger;
  // The unlimited claim's text per size (its LIMIT is a literal, see claim-sql.ts): sizes
  // are a slot's size (the base doubled up to the maximum) times 1 or the slots, so a few
  // cached plans per connection.
  const unlimitedTexts = new Map<number, string>();
  const unlimitedText = (size: number): string => {
    let text = unlimitedTexts.get(size);
    if (text === undefined) unlimitedTexts.set(size, (text = sql.unlimited(size)));
    return text;
  };
  const limitedText = sql.limited(batchSize);
  /** Each slot's next batch size of an unlimited queue. */
  const sizes = new Map<string, number>();
  // Until then, claims use the limited claim (see LIMITED_CLAIM_SPELL_MS).
  let limitedUntil = 0;
  /** Claimed messages no slot took yet, per claim (a batch is taken from one claim: one lease token). */
  const buffer: { token: string; rows: ClaimedRow[]; claimedAt: number }[] = [];
  /** The unlimited claim filling the buffer: resolves to how many it claimed, or 'limited' when its guard failed. */
  let filling: Promise<number | 'limited'> | undefined;
  /** The release of stale buffered rows under way: every claim waits for it (see dropStale). */
  let releasing: Promise<void> = Promise.resolve();
  /** The last unlimited claim came back full: a backlog is waiting. */
  let backlog = false;
  /** Slots whose last batch was short only because it was the rest of a claim. */
  const remainders = new Set<string>();
  /** Rows of each slot's batch under way, from claim to handled. */
  const inSlots = new Map<string, number>();
  /** Sizes a keyed backlog can give (see claim-size-cap.ts). */
  const sizeCap = createClaimSizeCap({ floor: batchSize, max: o.maxBatchSize, parallel: o.concurrency, logger: log });
  const held = (): number => buffered() + [...inSlots.values()].reduce((n, k) => n + k, 0);
  /** When the next claim sweeps scheduled messages (0: now), and the sweep under way. */
  let sweepAt = 0;
  /** The group the next sweep's repair of held rows starts after (see `releaseHeld`). */
  let heldAfter = '';
  /** The key the next sweep's repair of rows held for their key starts after (see `releaseKeyHeld`). */
  let keyHeldAfter = '';
  /**
   * Claims wait for the sweep under way rather than walk a hot key's backlog meanwhile:
   * until the first sweep is over (a worker starting on a backlog), and while the sweep
   * holds a backlog in rounds.
   */
  let holdingKeys = true;
  let sweeping: Promise<void> | undefined;
  const slotSize = (slot: string): number => sizeCap.apply(sizes.get(slot) ?? batchSize);

  /**
   * Runs a claim. `byIndex`: in a transaction of its own, planned by its index (see
   * claim-plan.ts), BEGIN, the plan setting, the claim and COMMIT in one round trip; a
   * failed claim's connection is discarded. Otherwise on its own, planned as the planner
   * likes: a trickle's claims of a small table, which a sequential scan reads whole and
   * prunes as it goes (the trickle vacuum relies on it).
   */
  const runClaim = async (statement: pg.QueryConfig, byIndex: boolean): Promise<ClaimResultRow[]> => {
    if (!byIndex) return (await pool.query<ClaimResultRow>(statement)).rows;
    const { client, release } = await checkoutClient(pool, log);
    try {
      const [, , result] = await pipelined(client, ['BEGIN', CLAIM_PLAN_BY_INDEX_NO_JIT, statement, 'COMMIT']);
      release();
      return result!.rows as ClaimResultRow[];
    } catch (err) {
      release(err as Error);
      throw err;
    }
  };

  /** The unlimited claim of `size` messages: the rows and their token, or 'limited' (then the slot claims with the limited claim). */
  const claimUnlimited = async (size: number): Promise<{ token: string; rows: ClaimedRow[] } | 'limited'> => {
    const token = randomUUID();
    // Under a backlog (the last claim came back full) the claim walks its index whatever
    // the statistics; the first claim of a backlog is planned as the planner likes.
    const result = await runClaim(prepared(unlimitedText(size), [queue, token, name, leaseMs]), backlog);
    const guard = result[0];
    if (guard?.lean === false) {
      // A limit in force, or a pause.
      log.debug({ claim: 'limited' }, 'flow limits in force: claiming with the limited statement');
      limitedUntil = performance.now() + LIMITED_CLAIM_SPELL_MS;
      return 'limited';
    }
    return { token, rows: result.filter((r): r is ClaimResultRow & ClaimedRow => r.id !== null) };
  };

  const claimLimited = async (slot: string): Promise<Claim> => {
    await releasing;
    const token = randomUUID();
    const result = await runClaim(prepared(limitedText, [queue, token, name, leaseMs, slot]), true);
    const rows = result.filter((r): r is ClaimResultRow & ClaimedRow => r.id !== null);
    if (rows.length === 0) return { rows: [], waitMs: result[0]?.wait_ms ?? null, size: batchSize };
    return { rows, lease: { token, slot, counted: rows[0]!.counted }, size: batchSize };
  };

  const buffered = (): number => buffer.reduce((n, b) => n + b.rows.length, 0);

  /** Ends the leases of buffered rows (a stop, or rows that waited too long); their attempt is undone. */
  const releaseRows = async (chunks: { token: string; rows: ClaimedRow[] }[]): Promise<void> => {
    const ids: string[] = [];
    const tokens: string[] = [];
    for (const b of chunks) for (const r of b.rows) (ids.push(r.id), tokens.push(b.token));
    if (ids.length > 0) await pool.query(housekeeping.releaseLeases, [queue, ids, tokens]);
  };

  /**
   * Slow handlers drain the buffer slowly: rows that waited half a lease go back to the
   * queue rather than be handled near (or after) the end of their lease. Awaited before
   * the next claim, which would otherwise take rows whose lease ran out before the
   * release undid their attempt.
   */
  const dropStale = (): Promise<void> => {
    const stale: typeof buffer = [];
    while (buffer[0] && performance.now() - buffer[0].claimedAt > leaseMs / 2) stale.push(buffer.shift()!);
    if (stale.length > 0) {
      backlog = false;
      const before = releasing;
      releasing = (async () => {
        await before;
        await releaseRows(stale).catch((err: unknown) => log.warn({ err }, 'could not release messages that waited too long; they come back when their leases run out'));
      })();
    }
    return releasing;
  };

  const take = (slot: string, size: number): Claim | undefined => {
    const head = buffer[0];
    if (!head) return undefined;
    const rows = head.rows.splice(0, size);
    if (head.rows.length === 0) buffer.shift();
    // A short batch that is only the rest of a claim says nothing about the backlog.
    if (rows.length < size && backlog) remainders.add(slot);
    // Under a backlog the next claim starts while half a claim is still buffered, so the
    // slots do not all wait for it (one claim runs at a time); not while a keyed backlog's
    // cap leaves no room for a slot's batch: its rows are not free yet, and a claim that
    // comes back short reads the whole backlog.
    if (backlog && filling === undefined && buffered() < (size * o.concurrency) / 2 && sizeCap.room(held()) >= size) {
      fill(size).catch((err: unknown) => log.warn({ err }, 'claiming ahead failed; the next claim tries again'));
    }
    return { rows, lease: { token: head.token, slot, counted: false }, size };
  };

  /** Fills the buffer with one unlimited claim: a slot's batch, or under a backlog one for every slot. */
  const fill = (size: number): Promise<number | 'limited'> =>
    (filling ??= (async () => {
      try {
        await releasing;
        const heldBefore = held();
        const want = backlog ? sizeCap.applyTogether(Math.min(size * o.concurrency, 10_000), size, heldBefore) : size;
        const got = await claimUnlimited(want);
        if (got === 'limited') return got;
        sizeCap.learn(want, got.rows.length, heldBefore);
        backlog = got.rows.length >= want;
        if (got.rows.length > 0) buffer.push({ ...got, claimedAt: performance.now() });
        return got.rows.length;
      } finally {
        filling = undefined;
      }
    })());

  return {
    handled(slot, last) {
      inSlots.delete(slot);
      const claimed = remainders.delete(slot) ? last.size : last.claimed;
      const next = nextClaimSize({ ...last, claimed, base: batchSize, max: o.maxBatchSize });
      if (next === batchSize) sizes.delete(slot);
      else sizes.set(slot, next);
    },
    async release() {
      sizes.clear();
      remainders.clear();
      inSlots.clear();
      sizeCap.reset();
      backlog = false;
      // A claim ahead may still run: its rows are released with the rest.
      await filling?.catch(() => undefined);
      await releaseRows(buffer.splice(0));
    },
    async claim(slot, share) {
      // A slot claims when its last batch is over, whether or not handled() was told.
      inSlots.delete(slot);
      const claim = await claimFor(slot, share);
      if (share && claim.rows.length > 0) inSlots.set(slot, claim.rows.length);
      return claim;
    },
  };

  /**
   * Readies the scheduled messages coming due, clears held rows a claim missed and holds
   * hot keys' backlogs (see held.ts), when a sweep is due: the slot that starts it waits
   * for it, so a message already due is claimable by its claim; the others claim
   * meanwhile, except during the first sweep and a hold in rounds (`holdingKeys`). A full
   * sweep of scheduled messages leaves the next one due at once.
   */
  function sweep(): Promise<void> | undefined {
    if (sweeping || performance.now() < sweepAt) return undefined;
    sweepAt = performance.now() + o.sweepEveryMs;
    sweeping = (async () => {
      try {
        const { rows } = await pool.query<{ cleared: string }>(prepared(sql.readyScheduled, [queue]));
        if (Number(rows[0]?.cleared ?? 0) >= SWEEP_LIMIT) sweepAt = 0;
        const { rows: [repair] } = await pool.query<{ last: string | null }>(prepared(sql.releaseHeld, [queue, heldAfter]));
        heldAfter = repair?.last ?? '';
        // A hot key's backlog is held a bounded transaction at a time, within one sweep as
        // long as each finds much to hold: every claim meanwhile would walk what is left.
        for (let round = 1; ; round += 1) {
          const { rows: [hold] } = await pool.query<{ held: string }>(prepared(sql.holdKeyTails, [queue]));
          if (Number(hold?.held ?? 0) < KEY_HOLD_LIMIT / 2) break;
          if (round === KEY_HOLD_ROUNDS) { sweepAt = 0; break; }
          holdingKeys = true;
        }
        const { rows: [keyRepair] } = await pool.query<{ last: string | null }>(prepared(sql.releaseKeyHeld, [queue, keyHeldAfter]));
        keyHeldAfter = keyRepair?.last ?? '';
      } catch (err) {
        log.warn({ err }, 'sweep of scheduled and held messages failed; the next sweep tries again');
      } finally {
        holdingKeys = false;
        sweeping = undefined;
      }
    })();
    return sweeping;
  }

  /** A batch for `slot`: from the buffer, from a claim filling it, or from a claim of the slot's own. */
  async function claimFor(slot: string, share: boolean): Promise<Claim> {
    await sweep();
    if (holdingKeys) await sweeping;
    const size = slotSize(slot);
    if (share) {
      if (buffer.length > 0) await dropStale();
      const taken = take(slot, size);
      if (taken) return taken;
      // Under a backlog one claim fills the buffer for every slot.
      while (backlog && performance.now() >= limitedUntil) {
        const got = await fill(size);
        if (got === 'limited') return claimLimited(slot);
        const next = take(slot, size);
        if (next) return next;
        // Nothing to claim; or the other slots took what the claim got: claim again.
        if (got === 0) return { rows: [], waitMs: null, size };
      }
    }
    // A trickle: the slot claims its own batch, beside the other slots' claims. Waiting
    // for a claim already running would not do: it may have begun before the message
    // this slot was woken for committed, and come back without it.
    if (performance.now() < limitedUntil) return claimLimited(slot);
    await releasing;
    const heldBefore = held();
    const got = await claimUnlimited(size);
    if (got === 'limited') return claimLimited(slot);
    sizeCap.learn(size, got.rows.length, heldBefore);
    // A full claim: a backlog is waiting, and the next claims fill the buffer.
    if (share && got.rows.length >= size) backlog = true;
    return got.rows.length === 0 ? { rows: [], waitMs: null, size } : { rows: got.rows, lease: { token: got.token, slot, counted: false }, size };
  }
}
