import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSagaboxError, type SagaboxError } from '@sagabox/core';
import {
  migrateDown,
  migrateUp,
  migrationStatus,
  sagaboxMigrationsDir,
} from '@sagabox/core/migrate';
import { createTestDatabase, type TestDatabase } from '@sagabox/testing';
import { runCli } from '../support/run-cli.js';

let db: TestDatabase;
let pool: pg.Pool;
const tempDirs: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 3 });
  pool.on('error', () => {});
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** A temp folder holding the given migration files. */
function appDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'sagabox-app-migrations-'));
  tempDirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

async function regclass(name: string): Promise<string | null> {
  const { rows } = await pool.query<{ r: string | null }>('SELECT to_regclass($1)::text AS r', [name]);
  return rows[0]?.r ?? null;
}

async function caught(promise: Promise<unknown>): Promise<SagaboxError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof Error) return err as SagaboxError;
    throw err;
  }
  throw new Error('expected the promise to reject');
}

const sagaboxNames = readdirSync(sagaboxMigrationsDir())
  .filter((f) => f.endsWith('.sql'))
  .sort()
  .map((f) => f.slice(0, -4));

describe('migrateUp / migrateDown / migrationStatus', () => {
  it('applies, lists and reverts the sagabox migrations in the chosen schema', async () => {
    const options = { connectionString: db.url, schema: 'updown' };

    const before = await migrationStatus(options);
    expect(before.migrations.map((m) => [m.name, m.status])).toEqual(sagaboxNames.map((n) => [n, 'pending']));
    // status only reads: it created nothing
    const { rows: schemas } = await pool.query("SELECT 1 FROM pg_namespace WHERE nspname = 'updown'");
    expect(schemas).toHaveLength(0);

    const up = await migrateUp(options);
    expect(up.applied).toEqual(sagaboxNames.map((name) => ({ set: 'sagabox', name })));
    expect(await regclass('updown.outbox')).toBe('updown.outbox');
    expect(await regclass('updown.sagas')).toBe('updown.sagas');
    expect(await regclass('public.outbox')).toBeNull();

    const after = await migrationStatus(options);
    for (const m of after.migrations) {
      expect(m).toMatchObject({ status: 'applied', changed: false });
      expect(m.appliedAt).toBeInstanceOf(Date);
    }

    // down reverts one migration at a time, the last first
    const last = sagaboxNames[sagaboxNames.length - 1]!;
    expect(await migrateDown(options)).toEqual({ reverted: { set: 'sagabox', name: last } });
    const partly = await migrationStatus(options);
    expect(partly.migrations.find((m) => m.name === last)).toMatchObject({ status: 'pending', appliedAt: null });

    for (let i = sagaboxNames.length - 2; i >= 0; i--) {
      expect((await migrateDown(options)).reverted?.name).toBe(sagaboxNames[i]);
    }
    expect(await migrateDown(options)).toEqual({ reverted: null });
    expect(await regclass('updown.outbox')).toBeNull();
    expect(await regclass('updown.sagas')).toBeNull();

    // and up again after a full revert
    expect((await migrateUp(options)).applied).toHaveLength(sagaboxNames.length);
  });

  it('treats a second migrateUp as a no-op', async () => {
    const options = { connectionString: db.url, schema: 'rerun' };
    expect((await migrateUp(options)).applied).toHaveLength(sagaboxNames.length);
    const statusBefore = await migrationStatus(options);
    expect(await migrateUp(options)).toEqual({ applied: [] });
    expect(await migrationStatus(options)).toEqual(statusBefore);
  });

  it('uses a pool it is given and leaves it open', async () => {
    expect((await migrateUp({ pool, schema: 'given_pool' })).applied).toHaveLength(sagaboxNames.length);
    const { rows } = await pool.query('SELECT 1 AS one');
    expect(rows).toEqual([{ one: 1 }]);
  });

  it('refuses to go on when an applied sagabox migration changed, naming the file', async () => {
    const options = { connectionString: db.url, schema: 'edited' };
    await migrateUp(options);
    // Stands in for an edit of migrations/0001_*.sql after it was applied.
    await pool.query(
      "UPDATE edited.migration_checksums SET sha256 = repeat('0', 64) WHERE migration_set = 'sagabox' AND name = $1",
      [sagaboxNames[0]],
    );
    const err = await caught(migrateUp(options));
    expect(isSagaboxError(err, 'MIGRATION_CHECKSUM_MISMATCH')).toBe(true);
    expect(err.message).toContain(`${sagaboxNames[0]}.sql`);
    expect(isSagaboxError(await caught(migrateDown(options)), 'MIGRATION_CHECKSUM_MISMATCH')).toBe(true);
    const status = await migrationStatus(options);
    expect(status.migrations.find((m) => m.name === sagaboxNames[0])?.changed).toBe(true);
  });

  it('refuses to go on when an applied application migration file was edited', async () => {
    // A copy of the sagabox migrations used as an application folder, then edited.
    const dir = appDir({});
    for (const f of readdirSync(sagaboxMigrationsDir())) copyFileSync(join(sagaboxMigrationsDir(), f), join(dir, f));
    // The copies create unqualified tables: give them a schema of their own via search_path.
    await pool.query('CREATE SCHEMA app_copy');
    const appDb = new URL(db.url);
    appDb.searchParams.set('options', '-c search_path=app_copy');
    const options = { connectionString: appDb.toString(), schema: 'checksum_app', appMigrationsDir: dir };
    const up = await migrateUp(options);
    expect(up.applied.filter((m) => m.set === 'app').map((m) => m.name)).toEqual(sagaboxNames);
    expect(await regclass('app_copy.outbox')).toBe('app_copy.outbox');

    const file = join(dir, `${sagaboxNames[0]}.sql`);
    writeFileSync(file, `${readFileSync(file, 'utf8')}\n-- an innocent-looking edit\n`);
    const err = await caught(migrateUp(options));
    expect(isSagaboxError(err, 'MIGRATION_CHECKSUM_MISMATCH')).toBe(true);
    expect(err.message).toContain(`migration ${sagaboxNames[0]}.sql was edited`);
    const status = await migrationStatus(options);
    expect(status.migrations.filter((m) => m.changed).map((m) => [m.set, m.name])).toEqual([['app', sagaboxNames[0]]]);
  });

  it('is safe when several migrateUp calls race in one process', async () => {
    const results = await Promise.all(
      Array.from({ length: 4 }, () => migrateUp({ connectionString: db.url, schema: 'race_in_process' })),
    );
    const applied = results.flatMap((r) => r.applied.map((m) => m.name)).sort();
    expect(applied).toEqual(sagaboxNames);
  });

  it('is safe when two processes run migrate up at once', async () => {
    const env = { ...process.env, DATABASE_URL: db.url };
    const args = ['migrate', 'up', '--schema', 'race', '--json'];
    const runs = await Promise.all([runCli(args, env), runCli(args, env), runCli(args, env)]);
    for (const run of runs) expect(run, run.stderr).toMatchObject({ code: 0 });
    const applied = runs
      .flatMap((run) => (JSON.parse(run.stdout) as { applied: Array<{ name: string }> }).applied)
      .map((m) => m.name)
      .sort();
    // Every migration ran exactly once, whichever process ran it.
    expect(applied).toEqual(sagaboxNames);
    const status = await migrationStatus({ connectionString: db.url, schema: 'race' });
    expect(status.migrations.every((m) => m.status === 'applied')).toBe(true);
  });

  it.each(['Bad', 'x; drop table y', 'pg_catalog', '', '1abc', 'a'.repeat(64), 'sagabox"'])(
    'refuses the schema name %j before any SQL runs',
    async (schema) => {
      // The URL points nowhere: an error other than INVALID_OPTIONS would mean it tried to connect.
      const options = { connectionString: 'postgres://nobody@127.0.0.1:1/none', schema };
      for (const call of [migrateUp, migrateDown, migrationStatus]) {
        const err = await caught(call(options));
        expect(isSagaboxError(err, 'INVALID_OPTIONS')).toBe(true);
        expect(err.message).toContain('invalid schema name');
      }
    },
  );

  it('reports every option problem at once', async () => {
    const err = await caught(migrateUp({ schema: 'Nope' }));
    expect(isSagaboxError(err, 'INVALID_OPTIONS')).toBe(true);
    expect(err.message).toContain('give connectionString or pool');
    expect(err.message).toContain('invalid schema name');
  });

  it('reports an unreachable database as DATABASE_UNREACHABLE, without the password', async () => {
    const port = await closedPort();
    const err = await caught(migrateUp({ connectionString: `postgres://app:s3cret@127.0.0.1:${port}/orders` }));
    expect(isSagaboxError(err, 'DATABASE_UNREACHABLE')).toBe(true);
    expect(err.message).toBe(`cannot connect to PostgreSQL at 127.0.0.1:${port}/orders: ECONNREFUSED`);
  });

  it('names host and port of an unreachable pool it was given', async () => {
    const port = await closedPort();
    const unreachable = new pg.Pool({ host: '127.0.0.1', port, database: 'orders', password: 's3cret' });
    try {
      const err = await caught(migrationStatus({ pool: unreachable }));
      expect(isSagaboxError(err, 'DATABASE_UNREACHABLE')).toBe(true);
      expect(err.message).toBe(`cannot connect to PostgreSQL at 127.0.0.1:${port}/orders: ECONNREFUSED`);
    } finally {
      await unreachable.end();
    }
  });

  it('says so in one line and exits 1 when the CLI cannot reach the database', async () => {
    const port = await closedPort();
    const run = await runCli(['migrate', 'up', '--database-url', `postgres://app:s3cret@127.0.0.1:${port}/orders`]);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`sagabox: cannot connect to PostgreSQL at 127.0.0.1:${port}/orders: ECONNREFUSED\n`);
    expect(run.stderr).not.toContain('s3cret');
    expect(run.stdout).toBe('');
  });
});

describe('application migrations (--dir)', () => {
  const widgets = {
    '0001_widgets.sql': '-- Why: widgets.\n-- migrate:up\nCREATE TABLE widgets (id int PRIMARY KEY);\n-- migrate:down\nDROP TABLE widgets;\n',
    '0002_gadgets.sql': '-- migrate:up\nCREATE TABLE gadgets (id int PRIMARY KEY);\n',
  };

  it('applies them after sagabox, with the default search_path, tracked separately', async () => {
    const dir = appDir(widgets);
    const options = { connectionString: db.url, schema: 'with_app', appMigrationsDir: dir };
    const { applied } = await migrateUp(options);
    expect(applied).toEqual([
      ...sagaboxNames.map((name) => ({ set: 'sagabox', name })),
      { set: 'app', name: '0001_widgets' },
      { set: 'app', name: '0002_gadgets' },
    ]);
    expect(await regclass('public.widgets')).toBe('widgets');
    expect(await regclass('with_app.widgets')).toBeNull();
    const { rows } = await pool.query('SELECT name FROM with_app.app_migrations ORDER BY name');
    expect(rows.map((r) => r.name)).toEqual(['0001_widgets', '0002_gadgets']);

    const status = await migrationStatus(options);
    expect(status.migrations.filter((m) => m.set === 'app')).toMatchObject([
      { name: '0001_widgets', status: 'applied', reversible: true },
      { name: '0002_gadgets', status: 'applied', reversible: false },
    ]);
    // Without --dir, status shows sagabox's only.
    const plain = await migrationStatus({ connectionString: db.url, schema: 'with_app' });
    expect(plain.migrations.every((m) => m.set === 'sagabox')).toBe(true);

    // down reverts the application's last migration, and refuses one without a down section
    const err = await caught(migrateDown(options));
    expect(isSagaboxError(err, 'MIGRATION_NOT_REVERSIBLE')).toBe(true);
    expect(err.message).toContain('0002_gadgets.sql');
    expect(await regclass('public.gadgets')).toBe('gadgets');

    await pool.query('DROP TABLE public.gadgets');
    await pool.query("DELETE FROM with_app.app_migrations WHERE name = '0002_gadgets'");
    rmSync(join(dir, '0002_gadgets.sql'));
    expect(await migrateDown(options)).toEqual({ reverted: { set: 'app', name: '0001_widgets' } });
    expect(await regclass('public.widgets')).toBeNull();
    expect(await regclass('with_app.outbox')).toBe('with_app.outbox');
  });

  it('runs each migration in its own transaction: a failing file keeps the ones before it', async () => {
    const dir = appDir({
      '0001_ok.sql': '-- migrate:up\nCREATE TABLE tx_ok (id int);\n-- migrate:down\nDROP TABLE tx_ok;\n',
      '0002_broken.sql': '-- migrate:up\nCREATE TABLE tx_half (id int);\nSELECT no_such_function();\n',
    });
    const options = { connectionString: db.url, schema: 'tx_app', appMigrationsDir: dir };
    const err = await caught(migrateUp(options));
    expect(isSagaboxError(err, 'MIGRATION_FAILED')).toBe(true);
    expect(err.message).toContain('0002_broken.sql');
    expect(err.message).toContain('no_such_function');
    expect(await regclass('public.tx_ok')).toBe('tx_ok');
    expect(await regclass('public.tx_half')).toBeNull();
    const status = await migrationStatus(options);
    expect(status.migrations.filter((m) => m.set === 'app').map((m) => m.status)).toEqual(['applied', 'pending']);
  });

  it('names a missing folder', async () => {
    const err = await caught(
      migrateUp({ connectionString: db.url, schema: 'no_dir', appMigrationsDir: join(tmpdir(), 'sagabox-nope-404') }),
    );
    expect(isSagaboxError(err, 'MIGRATION_FAILED')).toBe(true);
    expect(err.message).toContain('sagabox-nope-404');
  });
});

/** A TCP port on 127.0.0.1 that nothing listens on (it was free a moment ago). */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 1));
    });
  });
}
