import pg from 'pg';
import type { BenchOptions } from './options.js';
import { errorText, progress } from './progress.js';
import type { Variant } from './variant.js';

/** Replaces the database name in a postgres URL. */
export function databaseUrl(adminUrl: string, database: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

/**
 * bench_<pid>_<name>, lowercased, with anything outside [a-z0-9_] turned into '_'. The
 * benchmark process's id keeps two runs on one server from sharing (and dropping) each
 * other's databases.
 */
export function benchDatabaseName(name: string): string {
  return `bench_${process.pid}_${name.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`.slice(0, 63);
}

async function withAdmin<T>(adminUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Drops (if present) and creates a fresh database; returns its URL. */
export async function createFreshDatabase(adminUrl: string, name: string): Promise<string> {
  const db = benchDatabaseName(name);
  await withAdmin(adminUrl, async (client) => {
    await client.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
    await client.query(`CREATE DATABASE "${db}"`);
  });
  return databaseUrl(adminUrl, db);
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  const db = benchDatabaseName(name);
  await withAdmin(adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`));
}

/** Runs statements on a short-lived connection to `url`. */
export async function execute(url: string, ...statements: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const sql of statements) await client.query(sql);
  } finally {
    await client.end();
  }
}

/** One short-lived query. */
export async function queryOne<T extends pg.QueryResultRow>(url: string, sql: string, values: unknown[] = []): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<T>(sql, values);
    const row = rows[0];
    if (row === undefined) throw new Error(`no row from: ${sql}`);
    return row;
  } finally {
    await client.end();
  }
}

/**
 * Brings a freshly seeded database to the same starting point for every system:
 * statistics and visibility map up to date, dirty pages flushed, so that no system
 * pays for a checkpoint or an autovacuum the previous one caused.
 */
export async function settle(url: string): Promise<void> {
  await execute(url, 'VACUUM ANALYZE', 'CHECKPOINT');
}

/**
 * The business table every W1/W3 producer writes; the smallest message row, W1's floor (b),
 * as issue 18 defines it (bigserial, topic, payload); and the floor these runs used before
 * 2026-12-06 (a client's UUID as key, and a created_at), kept as a second floor.
 */
export const BUSINESS_TABLES_SQL = [
  `CREATE TABLE orders (
     id bigserial PRIMARY KEY,
     customer text NOT NULL,
     amount int NOT NULL,
     created_at timestamptz NOT NULL DEFAULT now()
   )`,
  `CREATE TABLE plain_messages (
     id bigserial PRIMARY KEY,
     topic text NOT NULL,
     payload jsonb NOT NULL
   )`,
  `CREATE TABLE plain_messages_uuid (
     id uuid PRIMARY KEY,
     topic text NOT NULL,
     payload jsonb NOT NULL,
     created_at timestamptz NOT NULL DEFAULT now()
   )`,
];

export const INSERT_ORDER_SQL = 'INSERT INTO orders (customer, amount) VALUES ($1, $2) RETURNING id';

/** Fresh database with the business tables and the variant's schema; dropped afterwards unless kept. */
export async function withDatabase<T>(options: BenchOptions, name: string, variant: Variant, fn: (url: string) => Promise<T>): Promise<T> {
  const url = await createFreshDatabase(options.databaseUrl, name);
  try {
    await execute(url, ...BUSINESS_TABLES_SQL);
    await variant.install(url);
    return await fn(url);
  } finally {
    if (!options.keepDatabases) await dropDatabase(options.databaseUrl, name).catch((e: unknown) => progress(`could not drop ${name}: ${errorText(e)}`));
  }
}

