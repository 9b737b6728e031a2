/** One held item: due from `notBefore` (epoch ms), with the attempts made so far. */
export interface Pending<T> {
  readonly item: T;
  notBefore: number;
  attempts: number;
  /** Taken by a batch that has not finished yet. */
  busy: boolean;
  /** To be handled alone, as a failed item is: its batch failed without saying which item did it. */
  solo: boolean;
}

/** See {@link createKeyedQueue}. */
export interface KeyedQueue<T> {
  push(item: T, notBefore?: number): Pending<T>;
  /**
   * Up to `max` items due at `now`, in arrival order, marked busy. An item is skipped
   * when its key has an earlier item that is busy (in another batch) or not due yet (it
   * waits for a retry): such an item holds back its key only. An item that failed
   * before (or is `solo`) is taken alone, so it cannot roll back other items' handling again.
   */
  takeReady(max: number, now: number, keyOf: (item: T) => string | null): Pending<T>[];
  /** Ends a batch's hold on items it did not remove: they can be taken again. */
  release(items: readonly Pending<T>[]): void;
  remove(p: Pending<T>): void;
  /** Removes every one of `taken` (a batch), in one pass. */
  removeAll(taken: readonly Pending<T>[]): void;
  /** Removes every held item `drop` is true of. */
  removeWhere(drop: (p: Pending<T>) => boolean): void;
  /** The earliest `notBefore` after `now` among held items not busy, or Infinity. */
  nextDue(now: number): number;
  size(): number;
  /** Removes and returns everything held. */
  drain(): Pending<T>[];
}

/**
 * The consumer's held messages in arrival order. The broker delivers a queue in order;
 * handling in arrival order per key, one batch at a time per key, with a retrying
 * message blocking only its own key, keeps per-key order through retries and
 * concurrent batches without stalling other keys.
 */
export function createKeyedQueue<T>(): KeyedQueue<T> {
  let items: Pending<T>[] = [];
  return {
    push(item, notBefore = 0) {
      const p: Pending<T> = { item, notBefore, attempts: 0, busy: false, solo: false };
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
        const alone = p.attempts > 0 || p.solo;
        if (p.busy || p.notBefore > now || (alone && taken.length > 0)) {
          if (key !== null) blocked.add(key);
          continue;
        }
        taken.push(p);
        if (alone) break;
      }
      for (const p of taken) p.busy = true;
      return taken;
    },
    release(taken) {
      for (const p of taken) p.busy = false;
    },
    remove(p) {
      const i = items.indexOf(p);
      if (i >= 0) items.splice(i, 1);
    },
    removeAll(taken) {
      if (taken.length === 0) return;
      const gone = new Set(taken);
      items = items.filter((p) => !gone.has(p));
    },
    removeWhere(drop) {
      items = items.filter((p) => !drop(p));
    },
    nextDue(now) {
      let next = Infinity;
      for (const p of items) if (!p.busy && p.notBefore > now && p.notBefore < next) next = p.notBefore;
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
