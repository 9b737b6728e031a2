// @sagabox/core/migrate: sagabox's schema (and optionally the application's own SQL
// migrations) up, down and status, safe when several processes migrate at once.
export {
  migrateDown,
  migrateUp,
  migrationStatus,
  APP_MIGRATION_TABLE,
  DEFAULT_CONNECT_TIMEOUT_MS,
  SAGABOX_MIGRATION_TABLE,
  type MigrateDownResult,
  type MigrateOptions,
  type MigrateUpResult,
  type MigrationRef,
  type MigrationStatus,
  type MigrationStatusEntry,
} from './migrate/migrate.js';
export {
  readSqlMigrations,
  sagaboxMigrationsDir,
  type MigrationSet,
  type SqlMigrationFile,
} from './migrate/sql-migration-provider.js';
