import { Command, Option } from 'commander';
import {
  migrateDown,
  migrateUp,
  migrationStatus,
  type MigrateOptions,
  type MigrationStatus,
} from '@sagabox/core/migrate';
import { addConnectionOptions, requireDatabaseUrl, type ConnectionFlags } from './connection-options.js';
import { createCliLogger, LOG_LEVELS } from './cli-logger.js';
import { CliExit, EXIT_CHECK_FAILED, nothingDone } from './exit-codes.js';
import { fitTable, outputWidth } from './fit-table.js';

interface MigrateFlags extends ConnectionFlags {
  dir?: string;
  json?: boolean;
  logLevel: string;
}

/** Where a command writes its results; tests may pass their own. */
export interface CommandOutput {
  /** Writes text to the command's output as is (no newline added). */
  write(text: string): void;
}

/**
 * Registers `sagabox migrate up | down | status` on `program`.
 *
 * @example
 * const program = new Command('sagabox');
 * registerMigrateCommand(program);
 * await program.parseAsync(['node', 'sagabox', 'migrate', 'status', '--json']);
 */
export function registerMigrateCommand(program: Command, out: CommandOutput = process.stdout): Command {
  const migrate = program
    .command('migrate')
    .description("apply, revert or list migrations of the sagabox schema (and, with --dir, the application's own)");

  leaf(migrate, 'up', 'apply every pending migration, each in its own transaction').action(async (flags: MigrateFlags) => {
    const { applied } = await migrateUp(toOptions(flags));
    if (flags.json) return out.write(`${JSON.stringify({ applied })}\n`);
    if (applied.length === 0) return out.write('nothing to apply: all migrations are applied\n');
    for (const m of applied) out.write(`applied ${m.name} (${m.set})\n`);
  });

  leaf(migrate, 'down', "revert the last applied migration (the application's, with --dir)").action(
    async (flags: MigrateFlags) => {
      const { reverted } = await migrateDown(toOptions(flags));
      if (flags.json) out.write(`${JSON.stringify({ reverted })}\n`);
      else if (reverted) out.write(`reverted ${reverted.name} (${reverted.set})\n`);
      if (!reverted) throw nothingDone('nothing to revert');
    },
  );

  leaf(migrate, 'status', 'list applied and pending migrations').action(async (flags: MigrateFlags) => {
    const status = await migrationStatus(toOptions(flags));
    out.write(flags.json ? `${JSON.stringify(status)}\n` : renderStatus(status, outputWidth(out)));
    // A check scripts and deploy gates can rely on: not up to date is not a success.
    const pending = status.migrations.filter((m) => m.status === 'pending').length;
    const changed = status.migrations.filter((m) => m.changed).length;
    if (pending > 0 || changed > 0) {
      const what = [pending ? `${pending} pending` : '', changed ? `${changed} changed since applied` : ''].filter(Boolean).join(', ');
      throw new CliExit(EXIT_CHECK_FAILED, `schema ${status.schema} is not up to date: ${what}`);
    }
  });

  return migrate;
}

function leaf(parent: Command, name: string, description: string): Command {
  const command = parent
    .command(name)
    .description(description)
    .option('--dir <path>', "also the application's folder of NNNN_name.sql migrations")
    .option('--json', 'print the result as JSON, for scripts')
    .addOption(new Option('--log-level <level>', 'log level of the JSON log on stderr').choices(LOG_LEVELS).default('warn'));
  return addConnectionOptions(command);
}

function toOptions(flags: MigrateFlags): MigrateOptions {
  const connectionString = requireDatabaseUrl(flags);
  return {
    connectionString,
    schema: flags.schema,
    ...(flags.dir !== undefined ? { appMigrationsDir: flags.dir } : {}),
    logger: createCliLogger(flags.logLevel),
  };
}

function renderStatus(status: MigrationStatus, width: number): string {
  const table = fitTable(
    ['set', 'migration', 'status', 'applied at', 'note'],
    status.migrations.map((m) => {
      const notes = [m.changed ? 'FILE CHANGED since applied' : '', m.reversible ? '' : 'no down'].filter(Boolean);
      return [m.set, m.name, m.status, m.appliedAt ? m.appliedAt.toISOString() : '', notes.join(', ')];
    }),
    width,
  );
  const pending = status.migrations.filter((m) => m.status === 'pending').length;
  return `schema ${status.schema}\n${table}\n${pending === 0 ? 'up to date' : `${pending} pending`}\n`;
}
