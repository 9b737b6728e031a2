import type { Logger } from './logger.js';

/** How long a cap holds after the short claim that set it, in milliseconds. */
export const CLAIM_SIZE_CAP_MS = 10_000;

/**
 * The cap after a claim came back short while `held` rows were in flight: `claimed +
 * held` is about how many messages can be in flight at once (in a keyed backlog, one
 * per key: its head). A claim asking for more than are free reads the whole backlog
 * looking for them, so the claims in flight together keep to half of that and find
 * their rows near the front of the backlog.
 * @example claimSizeCap({ claimed: 300, held: 700, parallel: 10, floor: 10 }) // 50
 */
export function claimSizeCap(short: { claimed: number; held: number; parallel: number; floor: number }): number {
  return Math.max(short.floor, Math.floor((short.claimed + short.held) / (2 * short.parallel)));
}

/** Options of {@link createClaimSizeCap}. */
export interface ClaimSizeCapOptions {
  /** The smallest cap; a claim of this size or smaller teaches nothing. */
  floor: number;
  /** The largest claim: a cap of this or more is no cap. */
  max: number;
  /** Claims in flight at once (a worker's slots, a relay's batches). */
  parallel: number;
  logger: Logger;
}

/** What {@link createClaimSizeCap} returns. */
export interface ClaimSizeCap {
  /** `size`, or less while a cap holds. */
  apply(size: number): number;
  /**
   * The size of one claim for every slot, `want` (the slots' sizes together), while `held`
   * rows are in flight: while a cap holds, no more than would bring the rows in flight to
   * half of what the short claim showed could be, and never less than `size` (one slot's).
   * A fill asking for more than the free keys give reads the whole backlog, and the
   * floor of each slot's size can add up to more than the keys: 10 slots of 10 with 100.
   */
  applyTogether(want: number, size: number, held: number): number;
  /** While a cap holds, how many more rows than `held` it would let be in flight (else infinity). */
  room(held: number): number;
  /** A claim asked for `asked` rows and got `claimed` while `held` rows were in flight. */
  learn(asked: number, claimed: number, held: number): void;
  reset(): void;
}

/**
 * Claims sized to what a backlog can give. A claim larger than the floor that came back
 * short caps the next claims (see {@link claimSizeCap}) for {@link CLAIM_SIZE_CAP_MS}
 * after each such claim. A trickle's short claims (fewer rows than the floor, nothing
 * else in flight) teach nothing, so a burst after them is claimed at full size.
 */
export function createClaimSizeCap(o: ClaimSizeCapOptions): ClaimSizeCap {
  let cap = Number.POSITIVE_INFINITY;
  /** Half of what the short claim showed could be in flight at once, while the cap holds. */
  let together = Number.POSITIVE_INFINITY;
  let until = 0;
  const expire = (): void => {
    if (cap !== Number.POSITIVE_INFINITY && performance.now() >= until) cap = together = Number.POSITIVE_INFINITY;
  };
  return {
    apply(size) {
      expire();
      return Math.min(size, cap);
    },
    applyTogether(want, size, held) {
      expire();
      return Math.min(want, Math.max(size, together - held));
    },
    room(held) {
      expire();
      return together - held;
    },
    learn(asked, claimed, held) {
      if (asked <= o.floor || claimed >= asked || (claimed < o.floor && held === 0)) return;
      const next = claimSizeCap({ claimed, held, parallel: o.parallel, floor: o.floor });
      if (next >= o.max) return;
      if (next !== cap) o.logger.debug({ claimSizeCap: next, claimed, held }, 'a large claim came back short: capping claim sizes');
      cap = next;
      together = Math.floor((claimed + held) / 2);
      until = performance.now() + CLAIM_SIZE_CAP_MS;
    },
    reset() {
      cap = together = Number.POSITIVE_INFINITY;
    },
  };
}
