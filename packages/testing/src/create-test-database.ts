import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { DEFAULT_SCHEMA } from '@sagabox/core';
import { migrateUp, readSqlMigrations, sagaboxMigrationsDir } from '@sagabox/core/migrate';
import { validateSchemaName } from '@sagabox/core/extension';

/** Options of {@link createTestDatabase}. */
export interface CreateTestDatabaseOptions {
  /** The sagabox schema to migrate. Default `sagabox`. */
  schema?: string;
  /**
   * URL of the server's maintenance database (a role that may create databases).
   * Default: `SAGABOX_TEST_DATABASE_URL`, then `DATABASE_URL`, from `env` — which the
   * sagabox vitest global setup (and any caller of {@link startPostgres}) fills in.
   */
  url?: string;
  /** Environment to read the default URL from; default `process.env`. */
  env?: Record<string, string | undefined>;
}

/** A database made for one test file. */
export interface TestDatabase {
  /** Connection URL of the new database. */
  readonly url: string;
  /** Its name, `sagabox_test_<random>`. */
  readonly database: string;
  /** Drops the database, closing any connections still open to it. Idempotent. */
  drop(): Promise<void>;
}

/**
 * Creates a fresh database with the sagabox schema already migrated, so that each
 * test file has its own and files run in parallel. The schema is migrated once per
 * server into a template database (`sagabox_tpl_<hash of schema and migration files>`)
 * and each test database is a copy of it, which takes milliseconds.
 *
 * @example
 * let db: TestDatabase;
 * beforeAll(async () => { db = await createTestDatabase(); });
 * afterAll(() => db.drop());
 */
export async function createTestDatabase(options: CreateTestDatabaseOptions = {}): Promise<TestDatabase> {
  const env = options.env ?? process.env;
  const serverUrl = options.url ?? nonEmpty(env.SAGABOX_TEST_DATABASE_URL) ?? nonEmpty(env.DATABASE_URL);
  if (serverUrl === undefined) {
    throw new Error(
      'createTestDatabase: no server URL; set SAGABOX_TEST_DATABASE_URL, pass { url }, or start one with startPostgres()',
    );
  }
  const schema = validateSchemaName(options.schema ?? DEFAULT_SCHEMA);
  const template = await ensureTemplate(serverUrl, schema);
  const database = `sagabox_test_${randomBytes(6).toString('hex')}`;
  await withClient(serverUrl, (client) =>
    client.query(`CREATE DATABASE ${pg.escapeIdentifier(database)} TEMPLATE ${pg.escapeIdentifier(template)}`),
  );
  let dropped: Promise<void> | undefined;
  return {
    url: withDatabase(serverUrl, database),
    database,
    drop: () =>
      (dropped ??= withClient(serverUrl, async (client) => {
        // A pool's end() resolves before its sockets are closed. Give sessions that are
        // on their way out a moment, so FORCE does not terminate them under a client that
        // no longer listens for errors (an unhandled 57P01 in the test process).
        for (let i = 0; i < 40; i++) {
          const { rows } = await client.query<{ n: number }>(
            'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
            [database],
          );
          if (rows[0]!.n === 0) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(database)} WITH (FORCE)`);
      })),
  };
}

/** Creates and migrates the template database unless a finished one exists; returns its name. */
async function ensureTemplate(serverUrl: string, schema: string): Promise<string> {
  const hash = createHash('sha256').update(schema);
  for (const file of readSqlMigrations(sagaboxMigrationsDir())) hash.update(`\0${file.name}\0${file.checksum}`);
  const template = `sagabox_tpl_${hash.digest('hex').slice(0, 16)}`;

  return withClient(serverUrl, async (client) => {
    // Several vitest workers start at once and all want the template: a server-wide
    // advisory lock lets exactly one build it while the others wait, then find it done.
    await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [template]);
    try {
      const { rows } = await client.query<{ datistemplate: boolean }>(
        'SELECT datistemplate FROM pg_database WHERE datname = $1',
        [template],
      );
      // A template is marked IS_TEMPLATE only once it is fully migrated, so a database
      // of that name without the mark is the leftover of a crashed run: rebuild it.
      if (rows[0]?.datistemplate === true) return template;
      const quoted = pg.escapeIdentifier(template);
      if (rows[0] !== undefined) await client.query(`DROP DATABASE ${quoted} WITH (FORCE)`);
      await client.query(`CREATE DATABASE ${quoted}`);
      await migrateUp({ connectionString: withDatabase(serverUrl, template), schema });
      // No connections to the template from now on: CREATE DATABASE ... TEMPLATE
      // fails while anyone is connected to the source.
      await client.query(`ALTER DATABASE ${quoted} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`);
      return template;
    } finally {
      await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [template]);
    }
  });
}

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {}); // a server going away mid-test surfaces on the next query
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** The same URL pointing at another database. */
function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}
