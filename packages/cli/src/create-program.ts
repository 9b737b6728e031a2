import { Command } from 'commander';
import { registerDashboardCommand } from './dashboard-command.js';
import { registerDlqCommand } from './dlq-command.js';
import { registerMetricsCommand } from './metrics-command.js';
import { registerMigrateCommand, type CommandOutput } from './migrate-command.js';
import { registerQueuesCommands } from './queues-command.js';
import { registerRelayCommand } from './relay-command.js';
import { registerRoutesCommand } from './routes-command.js';
import { registerSagasCommand } from './sagas-command.js';
import { registerStorageCommand } from './storage-command.js';
import { registerMessagesCommand } from './messages-command.js';
import { registerHalfMessagesCommand } from './half-messages-command.js';
import { registerAttentionCommand } from './attention-command.js';
import { EXIT_CODES_HELP } from './exit-codes.js';

/** The CLI's version, printed by `sagabox --version`. */
export const CLI_VERSION = '0.1.0';

/**
 * Builds the `sagabox` command tree. Each command group lives in its own file
 * (`migrate-command.ts`, ...) and registers itself here.
 *
 * @param out - where commands print results; default stdout.
 */
export function createProgram(out: CommandOutput = process.stdout): Command {
  const program = new Command('sagabox')
    .description('reliable messaging on PostgreSQL: outbox, relay, queues, inbox, sagas')
    .version(CLI_VERSION)
    .showHelpAfterError('(run with --help for usage)')
    // A command's options are its own, never a parent's: `queues` takes --json and the
    // connection flags and so do its subcommands (`queues limits q --json`); without
    // this, `queues` would consume them wherever they stand. Copied to every command.
    .enablePositionalOptions()
    // Throw instead of exiting, so main decides the exit code; set before
    // adding commands, as .command() copies it to each subcommand.
    .exitOverride()
    .addHelpText('after', `\n${EXIT_CODES_HELP}\n`);
  registerMigrateCommand(program, out);
  registerRelayCommand(program, out);
  registerQueuesCommands(program, out);
  registerStorageCommand(program, out);
  registerRoutesCommand(program, out);
  registerMessagesCommand(program, out);
  registerHalfMessagesCommand(program, out);
  registerDlqCommand(program, out);
  registerAttentionCommand(program, out);
  registerSagasCommand(program, out);
  registerDashboardCommand(program, out);
  registerMetricsCommand(program, out);
  return program;
}
