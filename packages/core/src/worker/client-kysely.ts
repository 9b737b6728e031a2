import { Kysely, PostgresDialect } from 'kysely';
import type pg from 'pg';

/**
 * A kysely instance whose every query runs on `client` (already inside a transaction
 * sagabox opened). Do not call `.transaction()` on it: you are in one already.
 */
export function kyselyOnClient<DB = any>(client: pg.ClientBase): Kysely<DB> {
  // kysely releases its connection after each query; this one belongs to sagabox.
  const borrowed = {
    query: (...args: unknown[]) => (client.query as (...a: unknown[]) => unknown)(...args),
    release: () => {},
  };
  return new Kysely<DB>({
    dialect: new PostgresDialect({ pool: { connect: async () => borrowed, end: async () => {} } as never }),
  });
}
