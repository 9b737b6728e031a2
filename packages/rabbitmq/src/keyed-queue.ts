/** One held item: due from `notBefore` (epoch ms), with the attempts made so far. */
export interface Pending<T> {
  readonly item: T;
  notBefore: number;
  attempts: number;
}

/** See {@link createKeyedQueue}. */
export interface KeyedQueue<T> {
  push(item: T, notBefore?: number): Pending<T>;
  /**
   * Up to `max` items due at `now`, in arrival order, skipping every item whose key has
   * an earlier item not due yet (one that waits for a retry holds back its key only).
   */
  takeReady(max: number, now: number, keyOf: (item: T) => string | null): Pending<T>[];
  remove(p: Pending<T>): void;
  /** The earliest `notBefore` after `now` among held items, or Infinity (items due now are taken or blocked). */
  nextDue(now: number): number;
  size(): number;
  /** Removes and returns everything held. */
  drain(): Pending<T>[];
}

/**
 * The consumer's held messages in arrival order. The broker delivers a queue in order;
 * handling in arrival order per key, with a retrying message blocking only its own
 * key, keeps per-key order through retries without stalling other keys.
 */
export function createKeyedQueue<T>(): KeyedQueue<T> {
  let items: Pending<T>[] = [];
  return {
    push(item, notBefore = 0) {
      const p: Pending<T> = { item, notBefore, attempts: 0 };
      items.push(p);
      return p;
    },
    takeReady(max, now, keyOf) {
      const taken: Pending<T>[] = [];
      const blocked = new Set<string>();
      for (const p of items) {
        if (taken.length >= max) break;
        const key = keyOf(p.item);
        if (key !== null && blocked.has(key)) continue;
        if (p.notBefore > now) {
          if (key !== null) blocked.add(key);
          continue;
        }
        taken.push(p);
      }
      return taken;
    },
    remove(p) {
      const i = items.indexOf(p);
      if (i >= 0) items.splice(i, 1);
    },
    nextDue(now) {
      let next = Infinity;
      for (const p of items) if (p.notBefore > now && p.notBefore < next) next = p.notBefore;
      return next;
    },
    size: () => items.length,
    drain() {
      const all = items;
      items = [];
      return all;
    },
  };
}
