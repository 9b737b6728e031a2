import type pg from 'pg';
import { expect } from 'vitest';
import { publish } from '@sagabox/core';

/** Producers publishing one message per transaction, a producer per key; see {@link produceKeyed}. */
export interface KeyedProduction {
  /** Ids of the committed messages, in commit order per key. */
  published: string[];
  /** Stops every producer after its current transaction; rejects if one failed. */
  stop(): Promise<void>;
}

/**
 * One producer per key (keys `firstKey` on, default 0), each committing its key's messages
 * one by one (delayed by `delayMs` when given) with payload `n = key * 1_000_000 + i` (i
 * from 0), so handlers that write `n` to `effects` let {@link expectEachOnceInKeyOrder}
 * check loss, duplicates and per-key order.
 */
export function produceKeyed(pool: pg.Pool, o: { topic: string; keys: number; firstKey?: number; pauseMs?: number; delayMs?: number }): KeyedProduction {
  const published: string[] = [];
  let producing = true;
  const producer = async (key: number): Promise<void> => {
    for (let i = 0; producing; i++) {
      const c = await pool.connect();
      try {
        await c.query('BEGIN');
        const { ids } = await publish(c, [{ topic: o.topic, key: `k${key}`, payload: { n: key * 1_000_000 + i }, ...(o.delayMs ? { delayMs: o.delayMs } : {}) }]);
        await c.query('COMMIT');
        published.push(...ids);
      } finally {
        c.release();
      }
      await new Promise((r) => setTimeout(r, o.pauseMs ?? 5));
    }
  };
  const running = Array.from({ length: o.keys }, (_, k) => producer((o.firstKey ?? 0) + k));
  return {
    published,
    stop: async () => {
      producing = false;
      await Promise.all(running);
    },
  };
}

/**
 * Reads `effects (seq, message_id, n)` and checks that every published message has
 * exactly one effect, and that each key's effects came in publish order with no gap.
 */
export async function expectEachOnceInKeyOrder(pool: pg.Pool, published: string[]): Promise<void> {
  const { rows } = await pool.query<{ message_id: string; n: number }>('SELECT message_id, n FROM effects ORDER BY seq');
  expect(rows.length, 'effects, one per message').toBe(published.length);
  expect(rows.map((r) => r.message_id).sort()).toEqual([...published].sort());
  const next = new Map<number, number>();
  for (const { n } of rows) {
    const key = Math.floor(n / 1_000_000);
    expect(n, `key ${key}`).toBe(key * 1_000_000 + (next.get(key) ?? 0));
    next.set(key, n % 1_000_000 + 1);
  }
}
