import type { Destination } from '@sagabox/core';

/** What {@link keyOrderSink} returns. */
export interface KeyOrderSink {
  /** A relay destination that takes every topic. */
  sink: Destination;
  /** Messages delivered after a later (or the same) `n` of their key: out of order, or twice. */
  outOfOrder(): number;
}

/**
 * A destination that checks per-key order: each payload is `{ n }`, increasing in
 * commit order within a key.
 */
export function keyOrderSink(): KeyOrderSink {
  const last = new Map<string, number>();
  let outOfOrder = 0;
  const sink: Destination = {
    name: 'sink', external: true, matches: () => true,
    async deliver(messages) {
      for (const m of messages) {
        const n = (JSON.parse(m.payload) as { n: number }).n;
        if ((last.get(m.key!) ?? 0) >= n) outOfOrder++;
        last.set(m.key!, n);
      }
    },
  };
  return { sink, outOfOrder: () => outOfOrder };
}
