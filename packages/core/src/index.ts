export * from './errors.js';
export * from './schema-name.js';
export * from './logger.js';
export * from './migrate.js';
export * from './parse-sql-migration.js';
export * from './sql-migration-provider.js';
export * from './database-unreachable.js';
