import type pg from 'pg';

/**
 * Wraps a `pg` client so a test can tell whether a call ran any SQL: `queries` counts
 * every `query` made through the wrapper.
 */
export function countingClient(client: pg.PoolClient): { client: pg.PoolClient; readonly queries: number; reset(): void } {
  let queries = 0;
  const wrapped = new Proxy(client, {
    get(target, prop) {
      if (prop === 'query') {
        return (...args: Parameters<pg.PoolClient['query']>) => {
          queries++;
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
    reset() {
      queries = 0;
    },
  };
}
