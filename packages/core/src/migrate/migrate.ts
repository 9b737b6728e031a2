import { Kysely, Migrator, PostgresDialect, sql, type MigrationResultSet } from 'kysely';
import pg from 'pg';
import { databaseUnreachableError } from '../shared/database-unreachable.js';
import { InvalidOptionsError, SagaboxError, isSagaboxError } from '../shared/errors.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { DEFAULT_SCHEMA, quoteSchema, validateSchemaName } from '../shared/schema-name.js';
import {
  MIGRATION_CHECKSUMS_TABLE,
  SqlMigrationProvider,
  readSqlMigrations,
  sagaboxMigrationsDir,
  type MigrationSet,
  type SqlMigrationFile,
} from './sql-migration-provider.js';

/** How long a migration command waits for a new connection before giving up, in milliseconds. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** Table (in the sagabox schema) where kysely's Migrator tracks sagabox's own migrations. */
export const SAGABOX_MIGRATION_TABLE = 'sagabox_migrations';
/** Table (in the sagabox schema) where kysely's Migrator tracks an application's migrations. */
export const APP_MIGRATION_TABLE = 'app_migrations';

/** Options of {@link migrateUp}, {@link migrateDown} and {@link migrationStatus}. */
export interface MigrateOptions {
  /** PostgreSQL URL, e.g. `postgres://user:pw@host:5432/db`. Give this or `pool`. */
  connectionString?: string;
  /** A pool to use instead of `connectionString`; it is left open afterwards. */
  pool?: pg.Pool;
  /** The sagabox schema. Default {@link DEFAULT_SCHEMA} (`sagabox`). */
  schema?: string;
  /**
   * A folder of the application's own `NNNN_name.sql` migrations, tracked apart from
   * sagabox's (table `<schema>.app_migrations`). They run with the connection's own
   * `search_path`, so unqualified tables land in `public`. Default: none.
   */
  appMigrationsDir?: string;
  /** Where progress is logged. Default: {@link silentLogger}. */
  logger?: Logger;
  /** Connection timeout when `connectionString` is used, in milliseconds. Default {@link DEFAULT_CONNECT_TIMEOUT_MS}. */
  connectTimeoutMs?: number;
}

/** {@link MigrateOptions} after validation and defaults. */
export interface ResolvedMigrateOptions {
  readonly connectionString: string | undefined;
  readonly pool: pg.Pool | undefined;
  readonly schema: string;
  readonly appMigrationsDir: string | undefined;
  readonly logger: Logger;
  readonly connectTimeoutMs: number;
}

/**
 * Checks {@link MigrateOptions} and fills in defaults, without touching the database
 * or the file system.
 *
 * @throws {InvalidOptionsError} listing every problem: no or both of
 *   `connectionString`/`pool`, an invalid schema name, a non-string directory, a bad timeout.
 */
export function resolveMigrateOptions(options: MigrateOptions): ResolvedMigrateOptions {
  const problems: string[] = [];
  const { connectionString, pool, appMigrationsDir } = options ?? {};
  if (connectionString === undefined && pool === undefined) {
    problems.push('give connectionString or pool');
  }
  if (connectionString !== undefined && pool !== undefined) {
    problems.push('give connectionString or pool, not both');
  }
  if (connectionString !== undefined && (typeof connectionString !== 'string' || connectionString === '')) {
    problems.push('connectionString must be a non-empty string');
  }
  const schema = options?.schema ?? DEFAULT_SCHEMA;
  try {
    validateSchemaName(schema);
  } catch (err) {
    problems.push((err as Error).message);
  }
  if (appMigrationsDir !== undefined && (typeof appMigrationsDir !== 'string' || appMigrationsDir === '')) {
    problems.push('appMigrationsDir must be a non-empty string');
  }
  const connectTimeoutMs = options?.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  if (!Number.isInteger(connectTimeoutMs) || connectTimeoutMs <= 0) {
    problems.push('connectTimeoutMs must be a positive integer');
  }
  if (problems.length > 0) throw new InvalidOptionsError('migrate', problems);
  return {
    connectionString,
    pool,
    schema,
    appMigrationsDir,
    logger: options.logger ?? silentLogger,
    connectTimeoutMs,
  };
}

/** One migration that {@link migrateUp} applied or {@link migrateDown} reverted. */
export interface MigrationRef {
  /** The migration set the migration belongs to. */
  readonly set: MigrationSet;
  /** Migration name: the file name without `.sql`. */
  readonly name: string;
}

/** What {@link migrateUp} did. */
export interface MigrateUpResult {
  /** Migrations applied by this call, in order; empty when all were applied already. */
  readonly applied: readonly MigrationRef[];
}

/** What {@link migrateDown} did. */
export interface MigrateDownResult {
  /** The migration reverted, or `null` when none was applied. */
  readonly reverted: MigrationRef | null;
}

/** One line of {@link migrationStatus}. */
export interface MigrationStatusEntry {
  /** The migration set the migration belongs to. */
  readonly set: MigrationSet;
  /** The migration's name (its file name without `.sql`). */
  readonly name: string;
  /** Whether the migration has been applied to the schema. */
  readonly status: 'applied' | 'pending';
  /** When it was applied, or `null` when pending. */
  readonly appliedAt: Date | null;
  /** True when the file changed since it was applied (its sha256 differs). */
  readonly changed: boolean;
  /** False when the file has no down section. */
  readonly reversible: boolean;
}

/** What {@link migrationStatus} reports. */
export interface MigrationStatus {
  /** The schema whose status this is. */
  readonly schema: string;
  /** sagabox's migrations first, then the application's, each in file order. */
  readonly migrations: readonly MigrationStatusEntry[];
}

/**
 * Applies every pending sagabox migration, then every pending application migration
 * (when `appMigrationsDir` is given). Each migration runs in its own transaction,
 * together with its bookkeeping row and checksum. Safe to run from several processes
 * at once: kysely's Migrator serialises them with a Postgres advisory lock, and the
 * ones that wait find nothing left to do.
 *
 * @throws {InvalidOptionsError} for bad options, before any SQL runs.
 * @throws {SagaboxError} `DATABASE_UNREACHABLE`, `MIGRATION_CHECKSUM_MISMATCH` (an
 *   applied file was edited; the file is named), or `MIGRATION_FAILED`.
 * @example
 * const { applied } = await migrateUp({ connectionString: 'postgres://localhost/app' });
 * // applied: [{ set: 'sagabox', name: '0001_baseline' }]
 */
export async function migrateUp(options: MigrateOptions): Promise<MigrateUpResult> {
  const resolved = resolveMigrateOptions(options);
  const sets = loadSets(resolved);
  return withDatabase(resolved, async (db) => {
    const applied: MigrationRef[] = [];
    for (const set of sets) {
      await verifyChecksums(db, resolved.schema, set);
      const migrator = createMigrator(db, resolved.schema, set);
      // One migration per Migrator call: kysely runs everything a call applies in one
      // transaction, and we want each file in its own (a failure keeps earlier files).
      for (;;) {
        const result = await migrator.migrateUp();
        const done = unwrap(result, set);
        if (done.length === 0) break;
        for (const name of done) {
          resolved.logger.info({ set: set.set, migration: name, schema: resolved.schema }, 'applied migration');
          applied.push({ set: set.set, name });
        }
      }
    }
    if (applied.length === 0) resolved.logger.info({ schema: resolved.schema }, 'migrations up to date');
    return { applied };
  });
}

/**
 * Reverts the last applied migration: the application's last one when
 * `appMigrationsDir` is given, otherwise sagabox's last one. Runs in one transaction.
 *
 * @throws {SagaboxError} `MIGRATION_NOT_REVERSIBLE` when that file has no down
 *   section, and the errors of {@link migrateUp}.
 * @example
 * const { reverted } = await migrateDown({ connectionString: url }); // { set: 'sagabox', name: '0001_baseline' }
 */
export async function migrateDown(options: MigrateOptions): Promise<MigrateDownResult> {
  const resolved = resolveMigrateOptions(options);
  const sets = loadSets(resolved);
  const set = sets[sets.length - 1]!;
  return withDatabase(resolved, async (db) => {
    await verifyChecksums(db, resolved.schema, set);
    const result = await createMigrator(db, resolved.schema, set).migrateDown();
    const [name] = unwrap(result, set);
    if (name === undefined) {
      resolved.logger.info({ set: set.set, schema: resolved.schema }, 'no migration to revert');
      return { reverted: null };
    }
    resolved.logger.info({ set: set.set, migration: name, schema: resolved.schema }, 'reverted migration');
    return { reverted: { set: set.set, name } };
  });
}

/**
 * Lists sagabox's migrations (and the application's, when `appMigrationsDir` is
 * given) with whether each is applied, when, and whether its file changed since.
 * Reads only; creates nothing.
 *
 * @example
 * const { migrations } = await migrationStatus({ connectionString: url });
 * const pending = migrations.filter((m) => m.status === 'pending');
 */
export async function migrationStatus(options: MigrateOptions): Promise<MigrationStatus> {
  const resolved = resolveMigrateOptions(options);
  const sets = loadSets(resolved);
  return withDatabase(resolved, async (db) => {
    const migrations: MigrationStatusEntry[] = [];
    for (const set of sets) {
      const applied = await readApplied(db, resolved.schema, set);
      for (const file of set.files) {
        const row = applied.get(file.name);
        migrations.push({
          set: set.set,
          name: file.name,
          status: row ? 'applied' : 'pending',
          appliedAt: row ? row.appliedAt : null,
          changed: row?.checksum !== undefined && row.checksum !== null && row.checksum !== file.checksum,
          reversible: file.down !== null,
        });
      }
    }
    return { schema: resolved.schema, migrations };
  });
}

interface LoadedSet {
  readonly set: MigrationSet;
  readonly files: readonly SqlMigrationFile[];
  readonly table: string;
}

function loadSets(resolved: ResolvedMigrateOptions): LoadedSet[] {
  const sets: LoadedSet[] = [
    { set: 'sagabox', files: readSqlMigrations(sagaboxMigrationsDir()), table: SAGABOX_MIGRATION_TABLE },
  ];
  if (resolved.appMigrationsDir !== undefined) {
    sets.push({ set: 'app', files: readSqlMigrations(resolved.appMigrationsDir), table: APP_MIGRATION_TABLE });
  }
  return sets;
}

function createMigrator(db: Kysely<any>, schema: string, set: LoadedSet): Migrator {
  return new Migrator({
    db,
    provider: new SqlMigrationProvider({
      files: set.files,
      set: set.set,
      schema,
      useSchemaSearchPath: set.set === 'sagabox',
    }),
    migrationTableSchema: schema,
    migrationTableName: set.table,
    migrationLockTableName: `${set.table}_lock`,
  });
}

/** Returns the names a Migrator call completed, or throws its error as a SagaboxError. */
function unwrap(result: MigrationResultSet, set: LoadedSet): string[] {
  const { error, results = [] } = result;
  if (error === undefined) {
    return results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
  }
  if (isSagaboxError(error)) throw error;
  const failed = results.find((r) => r.status === 'Error');
  const file = failed ? `${failed.migrationName}.sql` : undefined;
  const reason = error instanceof Error ? error.message : String(error);
  throw new SagaboxError(
    'MIGRATION_FAILED',
    file ? `migration ${file} (${set.set}) failed: ${reason}` : `${set.set} migrations failed: ${reason}`,
    { cause: error, details: { set: set.set, ...(file ? { file } : {}) } },
  );
}

interface AppliedRow {
  readonly appliedAt: Date;
  readonly checksum: string | null;
}

/** Applied migrations of one set with their checksums; empty when nothing exists yet. */
async function readApplied(db: Kysely<any>, schema: string, set: LoadedSet): Promise<Map<string, AppliedRow>> {
  const q = quoteSchema(schema);
  const { rows: exists } = await sql<{ migrations: string | null; checksums: string | null }>`
    SELECT to_regclass(${`${q}.${set.table}`})::text AS migrations,
           to_regclass(${`${q}.${MIGRATION_CHECKSUMS_TABLE}`})::text AS checksums
  `.execute(db);
  const applied = new Map<string, AppliedRow>();
  if (!exists[0]?.migrations) return applied;
  const { rows } = exists[0].checksums
    ? await sql<{ name: string; timestamp: string; sha256: string | null }>`
        SELECT m.name, m.timestamp, c.sha256
        FROM ${sql.raw(q)}.${sql.raw(set.table)} m
        LEFT JOIN ${sql.raw(q)}.${sql.raw(MIGRATION_CHECKSUMS_TABLE)} c
          ON c.migration_set = ${set.set} AND c.name = m.name
      `.execute(db)
    : await sql<{ name: string; timestamp: string; sha256: null }>`
        SELECT name, timestamp, NULL AS sha256 FROM ${sql.raw(q)}.${sql.raw(set.table)}
      `.execute(db);
  for (const row of rows) {
    applied.set(row.name, { appliedAt: new Date(row.timestamp), checksum: row.sha256 });
  }
  return applied;
}

/** Refuses to go on when a file that was applied has changed since. */
async function verifyChecksums(db: Kysely<any>, schema: string, set: LoadedSet): Promise<void> {
  const applied = await readApplied(db, schema, set);
  for (const file of set.files) {
    const row = applied.get(file.name);
    if (row?.checksum && row.checksum !== file.checksum) {
      throw new SagaboxError(
        'MIGRATION_CHECKSUM_MISMATCH',
        `migration ${file.fileName} was edited after it was applied (sha256 ${row.checksum.slice(0, 12)}… applied, ${file.checksum.slice(0, 12)}… on disk); restore it and add a new migration instead`,
        { details: { file: file.fileName, path: file.path, set: set.set, applied: row.checksum, onDisk: file.checksum } },
      );
    }
  }
}

/** Opens a Kysely over the pool (made from the connection string when needed), checks it connects, runs `fn`, closes. */
async function withDatabase<T>(resolved: ResolvedMigrateOptions, fn: (db: Kysely<any>) => Promise<T>): Promise<T> {
  const ownPool = resolved.pool === undefined;
  const pool =
    resolved.pool ??
    new pg.Pool({
      connectionString: resolved.connectionString,
      connectionTimeoutMillis: resolved.connectTimeoutMs,
      max: 2,
    });
  // An idle client losing its connection emits 'error' on the pool; without a
  // listener that would crash the process. The next query reports the problem.
  const onIdleError = (err: Error): void => resolved.logger.warn({ err: err.message }, 'idle connection failed');
  if (ownPool) pool.on('error', onIdleError);
  const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) });
  try {
    try {
      const client = await pool.connect();
      client.release();
    } catch (err) {
      throw databaseUnreachableError(err, resolved.connectionString ?? poolConnectionString(pool));
    }
    return await fn(db);
  } finally {
    if (ownPool) await db.destroy();
  }
}

/** A password-free URL for a caller's pool, only to name it in error messages. */
function poolConnectionString(pool: pg.Pool): string | undefined {
  const o = pool.options ?? {};
  if (typeof o.connectionString === 'string') return o.connectionString;
  const host = typeof o.host === 'string' ? o.host : 'localhost';
  return `postgres://${host.startsWith('/') ? 'localhost' : host}:${o.port ?? 5432}/${o.database ?? ''}`;
}
