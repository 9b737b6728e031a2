import pg from 'pg';
import { afterAll } from 'vitest';
import { createTestDatabase, type TestDatabase } from '@sagabox/testing';

/**
 * A fresh migrated database for this test file, plus a tracker of pools: every pool
 * made through `pool()` (with more pg settings in `config`) is ended after the file,
 * and a test fails if one is left with checked-out clients (a leaked worker or
 * transaction).
 */
export async function useDatabase(): Promise<{ db: TestDatabase; pool: (max?: number, config?: pg.PoolConfig) => pg.Pool; count: (sql: string, values?: unknown[]) => Promise<number> }> {
  const db = await createTestDatabase();
  const pools: pg.Pool[] = [];
  const pool = (max = 10, config: pg.PoolConfig = {}): pg.Pool => {
    const p = new pg.Pool({ connectionString: db.url, max, connectionTimeoutMillis: 10_000, ...config });
    p.on('error', () => {});
    pools.push(p);
    return p;
  };
  const admin = pool(3);
  afterAll(async () => {
    const leaked = pools.filter((p) => p.totalCount - p.idleCount > 0).length;
    await Promise.all(pools.map((p) => p.end()));
    await db.drop();
    if (leaked > 0) throw new Error(`${leaked} pool(s) still had clients checked out at the end of the file`);
  });
  const count = async (sql: string, values: unknown[] = []): Promise<number> => {
    const { rows } = await admin.query<{ n: string }>(sql, values);
    return Number(rows[0]?.n ?? 0);
  };
  return { db, pool, count };
}
