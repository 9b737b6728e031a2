import { Command, Option } from 'commander';
import { DEFAULT_SCHEMA } from '@sagabox/core';
import { UsageError } from './usage-error.js';

/** The two flags every sagabox command takes, as parsed. */
export interface ConnectionFlags {
  /** The `--database-url` flag (else DATABASE_URL, else libpq's PG* variables). */
  databaseUrl?: string;
  /** The `--schema` flag: sagabox's schema (default `sagabox`). */
  schema: string;
}

/**
 * Adds `--database-url <url>` (default: env `DATABASE_URL`) and `--schema <name>`
 * (default `sagabox`) to a command. Every sagabox command that touches a database calls this.
 */
export function addConnectionOptions(command: Command): Command {
  return command
    .addOption(new Option('--database-url <url>', 'PostgreSQL connection URL').env('DATABASE_URL'))
    .addOption(new Option('--schema <name>', 'schema holding the sagabox tables').default(DEFAULT_SCHEMA));
}

/**
 * The connection string from the parsed flags.
 *
 * @throws {UsageError} when neither `--database-url` nor `DATABASE_URL` gives one.
 */
export function requireDatabaseUrl(flags: ConnectionFlags): string {
  const url = flags.databaseUrl?.trim();
  if (!url) throw new UsageError('no database URL: pass --database-url <url> or set DATABASE_URL');
  return url;
}
