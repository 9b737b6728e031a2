import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import { SagaboxError } from '../shared/errors.js';
import { parseSqlMigration } from './parse-sql-migration.js';
import { quoteSchema } from '../shared/schema-name.js';

/** Which folder a migration comes from: sagabox's own schema, or the application's `--dir`. */
export type MigrationSet = 'sagabox' | 'app';

/** One `.sql` migration file, read and split. */
export interface SqlMigrationFile {
  /** Migration name: the file name without `.sql`, e.g. `0001_baseline`. */
  readonly name: string;
  /** File name, e.g. `0001_baseline.sql`. */
  readonly fileName: string;
  /** Absolute path of the file. */
  readonly path: string;
  /** SQL of the up section. */
  readonly up: string;
  /** SQL of the down section, or `null` when the migration cannot be reverted. */
  readonly down: string | null;
  /** Hex sha256 of the whole file, as stored when it is applied. */
  readonly checksum: string;
}

// NNNN_name.sql: a number (at least 4 digits, so lexical order is numeric order),
// an underscore, then a name. Anything else ending in .sql is a mistake worth naming.
const FILE_NAME = /^\d{4,}_[A-Za-z0-9_-]+\.sql$/;

/**
 * Reads every `NNNN_name.sql` file in `directory`, sorted by name.
 *
 * @throws {SagaboxError} `MIGRATION_FAILED` when the folder is missing, a `.sql`
 *   file is misnamed, or a file cannot be split (see {@link parseSqlMigration}).
 */
export function readSqlMigrations(directory: string): SqlMigrationFile[] {
  const dir = resolve(directory);
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (cause) {
    throw new SagaboxError('MIGRATION_FAILED', `cannot read migrations directory ${dir}`, {
      cause,
      details: { directory: dir },
    });
  }
  const files = entries.filter((f) => f.endsWith('.sql')).sort();
  return files.map((fileName) => {
    if (!FILE_NAME.test(fileName)) {
      throw new SagaboxError(
        'MIGRATION_FAILED',
        `migration file ${fileName} in ${dir} is not named NNNN_name.sql`,
        { details: { file: fileName, directory: dir } },
      );
    }
    const path = join(dir, fileName);
    const bytes = readFileSync(path);
    const { up, down } = parseSqlMigration(bytes.toString('utf8'), fileName);
    return {
      name: fileName.slice(0, -'.sql'.length),
      fileName,
      path,
      up,
      down,
      checksum: createHash('sha256').update(bytes).digest('hex'),
    };
  });
}

/**
 * The folder holding sagabox's own migrations. In this repository that is the root
 * `migrations/`; in the published package, the copy that the build puts in
 * `@sagabox/core/migrations/`.
 */
export function sagaboxMigrationsDir(): string {
  // This file is packages/core/{src,dist}/migrate/sql-migration-provider.{ts,js}.
  const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  // Inside the monorepo the root folder is the source of truth (the package copy may
  // be stale until the next build), so prefer it when this package is packages/core.
  const repoMigrations = resolve(packageDir, '..', '..', 'migrations');
  const repoCore = resolve(packageDir, '..', '..', 'packages', 'core');
  if (existsSync(repoMigrations) && existsSync(repoCore) && sameDir(repoCore, packageDir)) {
    return repoMigrations;
  }
  return join(packageDir, 'migrations');
}

function sameDir(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

/** Options of {@link SqlMigrationProvider}. */
export interface SqlMigrationProviderOptions {
  /** The migrations; see {@link readSqlMigrations}. */
  readonly files: readonly SqlMigrationFile[];
  /** Which set these files are; the key of their checksum rows. */
  readonly set: MigrationSet;
  /** The sagabox schema: holds the checksum table (validated and quoted here). */
  readonly schema: string;
  /**
   * When true, each migration runs with `search_path` set to the sagabox schema only,
   * so its unqualified names land there. Application migrations leave it alone.
   */
  readonly useSchemaSearchPath: boolean;
}

/** Name of the table, in the sagabox schema, that holds each applied file's sha256. */
export const MIGRATION_CHECKSUMS_TABLE = 'migration_checksums';

/**
 * A kysely `MigrationProvider` for `.sql` files. Each migration, inside the
 * transaction kysely's Migrator opens for it, runs its SQL and records (or, going
 * down, removes) its checksum, so a file and its checksum row commit together.
 *
 * @example
 * const files = readSqlMigrations(sagaboxMigrationsDir());
 * const provider = new SqlMigrationProvider({ files, set: 'sagabox', schema: 'sagabox', useSchemaSearchPath: true });
 * new Migrator({ db, provider, migrationTableSchema: 'sagabox', migrationTableName: 'sagabox_migrations' });
 */
export class SqlMigrationProvider implements MigrationProvider {
  readonly #options: SqlMigrationProviderOptions;
  readonly #quotedSchema: string;

  constructor(options: SqlMigrationProviderOptions) {
    this.#options = options;
    this.#quotedSchema = quoteSchema(options.schema);
  }

  async getMigrations(): Promise<Record<string, Migration>> {
    const migrations: Record<string, Migration> = {};
    for (const file of this.#options.files) {
      migrations[file.name] = {
        up: (db) => this.#up(db, file),
        down: (db) => this.#down(db, file),
      };
    }
    return migrations;
  }

  async #up(db: Kysely<any>, file: SqlMigrationFile): Promise<void> {
    await this.#setSearchPath(db);
    await sql.raw(file.up).execute(db);
    await createChecksumTable(db, this.#quotedSchema);
    await sql`
      INSERT INTO ${sql.raw(this.#quotedSchema)}.${sql.raw(MIGRATION_CHECKSUMS_TABLE)}
        (migration_set, name, sha256)
      VALUES (${this.#options.set}, ${file.name}, ${file.checksum})
      ON CONFLICT (migration_set, name) DO UPDATE SET sha256 = excluded.sha256, applied_at = now()
    `.execute(db);
  }

  async #down(db: Kysely<any>, file: SqlMigrationFile): Promise<void> {
    if (file.down === null) {
      throw new SagaboxError(
        'MIGRATION_NOT_REVERSIBLE',
        `migration ${file.fileName} has no "-- migrate:down" section and cannot be reverted`,
        { details: { file: file.fileName, set: this.#options.set } },
      );
    }
    await this.#setSearchPath(db);
    await sql.raw(file.down).execute(db);
    await createChecksumTable(db, this.#quotedSchema);
    await sql`
      DELETE FROM ${sql.raw(this.#quotedSchema)}.${sql.raw(MIGRATION_CHECKSUMS_TABLE)}
      WHERE migration_set = ${this.#options.set} AND name = ${file.name}
    `.execute(db);
  }

  async #setSearchPath(db: Kysely<any>): Promise<void> {
    if (!this.#options.useSchemaSearchPath) return;
    // is_local = true: the setting ends with this migration's transaction, so the
    // pooled connection goes back to the pool with its own search_path.
    await sql`SELECT set_config('search_path', quote_ident(${this.#options.schema}), true)`.execute(db);
  }
}

/** Creates the checksum table when missing; runs under the migration lock. */
async function createChecksumTable(db: Kysely<any>, quotedSchema: string): Promise<void> {
  await sql`
    CREATE TABLE IF NOT EXISTS ${sql.raw(quotedSchema)}.${sql.raw(MIGRATION_CHECKSUMS_TABLE)} (
      migration_set text        NOT NULL,
      name          text        NOT NULL,
      sha256        text        NOT NULL,
      applied_at    timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (migration_set, name)
    )
  `.execute(db);
}

