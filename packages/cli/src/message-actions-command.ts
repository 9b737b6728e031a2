import { userInfo } from 'node:os';
import type { Command } from 'commander';
import {
  cancelMessages,
  deleteMessages,
  retryMessages,
  type MessageActionFilter,
  type MessageActionResult,
  type MessageState,
} from '@sagabox/core/admin';
import type { Executor } from '@sagabox/core';
import { parseIntFlag } from './cli-values.js';
import { addConnectionOptions } from './connection-options.js';
import { confirm } from './confirm.js';
import { nothingDone } from './exit-codes.js';
import type { CommandOutput } from './migrate-command.js';
import { addMessageFilterOptions, messageFilterOf, type MessageFilterFlags } from './message-filter-options.js';
import { withPool } from './open-pool.js';
import { UsageError } from './usage-error.js';

interface Flags extends MessageFilterFlags {
  limit?: string;
  dryRun?: boolean;
  yes?: boolean;
  json?: boolean;
  reason?: string;
  by?: string;
}

/** The operator's name recorded with a decision: `--by`, else the login name. */
export function operatorName(by: string | undefined): string {
  if (by !== undefined) return by;
  try {
    return userInfo().username || 'operator';
  } catch {
    return 'operator';
  }
}

// The states an action can take a message from (in flight and prepared are refused).
const ACTION_STATES: readonly MessageState[] = ['ready', 'retrying', 'scheduled'];

const DONE: Record<MessageActionResult['action'], string> = { retry: 'retried', cancel: 'cancelled', delete: 'deleted' };
const PAST: Record<MessageActionResult['action'], string> = { retry: 'made ready', cancel: 'cancelled (to the dead letters)', delete: 'deleted' };

function filterOf(id: string | undefined, flags: Flags): MessageActionFilter {
  // The id is an argument here, never the --id flag.
  const filter = messageFilterOf({ ...flags, id });
  if (Object.keys(filter).every((k) => k === 'schema')) {
    throw new UsageError('give a message id or at least one filter (--queue, --state, --topic, --key, --group, --error)');
  }
  return {
    ...filter,
    ...(flags.limit !== undefined ? { limit: parseIntFlag('--limit', flags.limit, 1, 10_000) } : {}),
  };
}

function describeResult(r: MessageActionResult, where: string): string {
  const lines = [`${r.dryRun ? `would be ${PAST[r.action]}` : PAST[r.action]}: ${r.affected} message(s) ${where}`];
  if (r.inFlight > 0) lines.push(`left alone: ${r.inFlight} in flight (leased by a worker or being moved by a relay): ${r.inFlightIds.join(' ')}`);
  if (r.unchanged > 0) lines.push(`not applicable: ${r.unchanged} (already ready, or a prepared half message)`);
  if (r.more) lines.push('more messages match: run again (or raise --limit)');
  return `${lines.join('\n')}\n`;
}

/**
 * Registers `sagabox messages retry | cancel | delete [id]` on the `messages` command:
 * one message by id, or every message a filter matches, with `--dry-run` for a preview
 * and a confirmation (showing the preview's count) before a bulk or destructive action.
 */
export function registerMessageActions(messages: Command, out: CommandOutput = process.stdout): void {
  const define = (name: MessageActionResult['action'], description: string, extra?: (c: Command) => Command): Command => {
    const c = addMessageFilterOptions(
      messages
        .command(name)
        .description(description)
        .argument('[id]', 'one message id (UUID); omitted: every message the filters match'),
      { states: ACTION_STATES, id: false },
    )
      .option('--limit <n>', 'most messages in one run, oldest first (default 1000, at most 10000)')
      .option('--dry-run', 'count and list what would be hit; change nothing')
      .option('--yes', 'do not ask')
      .option('--json', 'print the result as JSON, for scripts');
    return addConnectionOptions(extra ? extra(c) : c);
  };

  const run = async (
    action: MessageActionResult['action'],
    id: string | undefined,
    flags: Flags,
    call: (db: Executor, filter: MessageActionFilter, dryRun: boolean) => Promise<MessageActionResult>,
    ask: boolean,
  ): Promise<void> => {
    const filter = filterOf(id, flags);
    const where = flags.queue === undefined ? 'in the outbox' : `of queue ${flags.queue}`;
    const result = await withPool(flags, async (pool) => {
      const preview = await call(pool, filter, true);
      if (flags.dryRun || preview.affected === 0) return preview;
      // The count the operator agrees to is the preview's; what changed may differ if messages moved meanwhile.
      if (ask) await confirm(`${action} ${preview.affected} message(s) ${where}${preview.inFlight ? ` (${preview.inFlight} in flight left alone)` : ''}?`, flags.yes);
      return call(pool, filter, false);
    });
    out.write(flags.json ? `${JSON.stringify(result)}\n` : describeResult(result, where));
    if (result.affected === 0) {
      const why = result.inFlight > 0 ? `${result.inFlight} matching message(s) in flight, left alone` : id !== undefined ? `no pending message ${id} ${where}` : 'no message matched';
      throw nothingDone(`nothing ${DONE[action]}: ${why}`);
    }
  };

  define('retry', 'make retrying or scheduled messages ready now (attempts kept); asks first when acting on more than one id')
    .action((id: string | undefined, flags: Flags) =>
      run('retry', id, flags, (db, filter, dryRun) => retryMessages(db, filter, { dryRun }), id === undefined));

  define('cancel', 'move pending messages to the dead letters (reason cancelled), to replay later with `dlq replay`', (c) =>
    c.requiredOption('--reason <text>', 'why: kept as the dead letter\'s error').option('--by <name>', 'who cancels (default: your login name)'))
    .action((id: string | undefined, flags: Flags) =>
      run('cancel', id, flags, (db, filter, dryRun) => cancelMessages(db, filter, { dryRun, reason: flags.reason!, by: operatorName(flags.by) }), true));

  define('delete', 'delete pending messages for good (prefer cancel when they may be wanted again)')
    .action((id: string | undefined, flags: Flags) =>
      run('delete', id, flags, (db, filter, dryRun) => deleteMessages(db, filter, { dryRun }), true));
}
