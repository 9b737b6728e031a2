import type pg from 'pg';
import { expect } from 'vitest';

/** A statement a {@link countingClient} saw: its text, and whether it went out in pipeline mode (in one round trip with the statements around it). */
export interface SentStatement {
  text: string;
  pipelined: boolean;
}

/**
 * Wraps a `pg` client so a test can tell whether a call ran any SQL: `queries` counts
 * every `query` made through the wrapper, and `sent` lists them.
 */
export function countingClient(client: pg.PoolClient): { client: pg.PoolClient; readonly queries: number; readonly sent: readonly SentStatement[]; reset(): void } {
  let queries = 0;
  const sent: SentStatement[] = [];
  const wrapped = new Proxy(client, {
    get(target, prop) {
      if (prop === 'query') {
        return (...args: Parameters<pg.PoolClient['query']>) => {
          queries++;
          const first = args[0] as unknown;
          const text = typeof first === 'string' ? first : String((first as { text?: unknown } | null)?.text);
          sent.push({ text, pipelined: (target as unknown as { pipeline?: boolean }).pipeline === true });
          return (target.query as (...a: unknown[]) => unknown)(...args);
        };
      }
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return {
    client: wrapped,
    get queries() {
      return queries;
    },
    get sent() {
      return sent;
    },
    reset() {
      queries = 0;
      sent.length = 0;
    },
  };
}

/** What {@link attemptInRollback} saw: the call's value, or what it threw; and the statements the call ran. */
export type Attempt<T> = { ok: true; value: T; queries: number } | { ok: false; error: unknown; queries: number };

/**
 * Runs `call` on a counting wrapper of `raw` inside a transaction of its own, rolled back
 * afterwards. After a throw it checks that the transaction still works: bad input is to
 * be refused before any SQL, never by aborting the caller's transaction. `call` may read
 * back what it wrote through `raw` (uncounted) before the rollback.
 */
export async function attemptInRollback<T>(raw: pg.PoolClient, call: (db: pg.PoolClient) => Promise<T>): Promise<Attempt<T>> {
  const counted = countingClient(raw);
  await raw.query('BEGIN');
  try {
    try {
      const value = await call(counted.client);
      return { ok: true, value, queries: counted.queries };
    } catch (error) {
      const queries = counted.queries;
      expect((await raw.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      return { ok: false, error, queries };
    }
  } finally {
    await raw.query('ROLLBACK');
  }
}

/**
 * A view of `pool` whose checked-out clients are {@link countingClient}s, kept in
 * `clients` (what a component runs through `pool.query` is not seen).
 */
export function countingPool(pool: pg.Pool): { pool: pg.Pool; clients: ReturnType<typeof countingClient>[] } {
  const clients: ReturnType<typeof countingClient>[] = [];
  const wrapped = new Proxy(pool, {
    get(target, prop) {
      if (prop === 'connect') {
        return async () => {
          const counted = countingClient(await target.connect());
          clients.push(counted);
          return counted.client;
        };
      }
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { pool: wrapped, clients };
}
