import type { Command } from 'commander';
import { decideHalfMessage } from '@sagabox/core/admin';
import { addConnectionOptions, type ConnectionFlags } from './connection-options.js';
import { confirm } from './confirm.js';
import type { CommandOutput } from './migrate-command.js';
import { operatorName } from './message-actions-command.js';
import { withPool } from './open-pool.js';

interface Flags extends ConnectionFlags {
  reason: string;
  by?: string;
  yes?: boolean;
  json?: boolean;
}

/**
 * Registers `sagabox half-messages commit | rollback <id>`: an operator decides a prepared
 * half message whose producer is gone, recorded in its decision history with who and why.
 * A message already decided is refused (exit 3).
 */
export function registerHalfMessagesCommand(program: Command, out: CommandOutput = process.stdout): void {
  const half = program.command('half-messages').description('decide a prepared half message by hand (see `messages list --state prepared`)');
  for (const decision of ['commit', 'rollback'] as const) {
    addConnectionOptions(
      half
        .command(decision)
        .description(decision === 'commit' ? 'commit a prepared half message: it is delivered' : 'roll back a prepared half message: it is dropped, never delivered')
        .argument('<id>', 'the half message id (UUID)')
        .requiredOption('--reason <text>', 'why: recorded in its decision history')
        .option('--by <name>', 'who decides (default: your login name)')
        .option('--yes', 'do not ask')
        .option('--json', 'print the recorded decision as JSON'),
    ).action(async (id: string, flags: Flags) => {
      const by = operatorName(flags.by);
      await confirm(`${decision} half message ${id} as ${by}?`, flags.yes);
      const record = await withPool(flags, (pool) => decideHalfMessage(pool, id, { decision, by, reason: flags.reason, schema: flags.schema }));
      out.write(flags.json ? `${JSON.stringify(record)}\n` : `${decision === 'commit' ? 'committed' : 'rolled back'} half message ${id} (${record.detail})\n`);
    });
  }
}
