import { quoteSchema } from './schema-name.js';

/**
 * Builds a module's SQL statements once per schema. `build` receives the validated,
 * quoted schema name, the only text ever spliced into sagabox's SQL: every value is a
 * bind parameter.
 *
 * @example
 * const sql = statementsFor((s) => ({ count: `SELECT count(*) FROM ${s}.outbox` }));
 * await pool.query(sql('sagabox').count);
 */
export function statementsFor<T>(build: (s: string) => T): (schema: string) => T {
  const cache = new Map<string, T>();
  return (schema) => {
    let statements = cache.get(schema);
    if (statements === undefined) {
      statements = build(quoteSchema(schema));
      cache.set(schema, statements);
    }
    return statements;
  };
}
