import { Option, type Command } from 'commander';
import { countDeadLetters, listDeadLetters, purgeDeadLetters, replayDeadLetters, type DeadLetterFilter } from '@sagabox/core/admin';
import { SagaboxError } from '@sagabox/core';
import { addConnectionOptions, type ConnectionFlags } from './connection-options.js';
import { confirm } from './confirm.js';
import { nothingDone } from './exit-codes.js';
import { fitTable, outputWidth } from './fit-table.js';
import type { CommandOutput } from './migrate-command.js';
import { withPool } from './open-pool.js';
import { formatAge } from './queues-command.js';
import { UsageError } from './usage-error.js';
import { parseDurationFlag, parseIntFlag } from './cli-values.js';

/** The reasons a message is dead-lettered for (the `dead_letters.reason` CHECK). */
export const DEAD_LETTER_REASONS = ['failed', 'timeout', 'expired', 'invalid', 'unroutable', 'unresolved', 'non_retryable', 'cancelled'] as const;

interface Flags extends ConnectionFlags {
  queue?: string;
  topic?: string;
  reason?: string;
  olderThan?: string;
  olderThanMs?: string;
  limit?: string;
  json?: boolean;
  yes?: boolean;
  dryRun?: boolean;
}

function filterOf(flags: Flags, ids: string[] = []): DeadLetterFilter {
  if (ids.some((id) => !/^\d{1,19}$/.test(id))) throw new UsageError('dead-letter ids are numbers (see `sagabox dlq list`)');
  const age = flags.olderThan ?? flags.olderThanMs;
  const olderThanMs = age === undefined ? undefined : parseDurationFlag(flags.olderThan !== undefined ? '--older-than' : '--older-than-ms', age);
  const limit = flags.limit === undefined ? undefined : parseIntFlag('--limit', flags.limit, 1);
  return {
    schema: flags.schema,
    ...(flags.queue !== undefined ? { queue: flags.queue } : {}),
    ...(flags.topic !== undefined ? { topic: flags.topic } : {}),
    ...(flags.reason !== undefined ? { reason: flags.reason } : {}),
    ...(olderThanMs !== undefined ? { olderThanMs } : {}),
    ...(limit !== undefined ? { limit } : {}),
    ...(ids.length ? { deadIds: ids } : {}),
  };
}

function filters(command: Command): Command {
  return addConnectionOptions(
    command
      .option('--queue <name>', 'only this queue')
      .option('--topic <topic>', 'only this topic')
      .addOption(new Option('--reason <reason>', 'only this reason').choices(DEAD_LETTER_REASONS))
      .option('--older-than <duration>', 'only dead letters older than this: ms, or 90s, 15m, 7d')
      .addOption(new Option('--older-than-ms <duration>', 'the same as --older-than').hideHelp())
      .option('--json', 'print JSON, for scripts'),
  );
}

/** Registers `sagabox dlq list | show | replay | purge`. */
export function registerDlqCommand(program: Command, out: CommandOutput = process.stdout): void {
  const dlq = program.command('dlq').description('dead letters: list, show, replay, purge');

  filters(dlq.command('list').description('list dead letters, newest first').option('--limit <n>', 'most rows (default 100)'))
    .action(async (flags: Flags) => {
      const rows = await withPool(flags, (pool) => listDeadLetters(pool, filterOf(flags)));
      if (flags.json) return out.write(`${JSON.stringify(rows)}\n`);
      const now = Date.now();
      const table = fitTable(
        ['dead id', 'queue', 'topic', 'reason', 'attempts', 'died', 'error'],
        rows.map((r) => [r.deadId, r.queue ?? '(outbox)', r.topic, r.reason, r.attempts, `${formatAge(now - r.deadAt.getTime())} ago`, r.error]),
        outputWidth(out),
        [0],
      );
      out.write(rows.length ? `${table}\n` : 'no dead letters\n');
    });

  addConnectionOptions(dlq.command('show').description('one dead letter in full').argument('<deadId>').option('--json', 'print JSON'))
    .action(async (deadId: string, flags: Flags) => {
      const [row] = await withPool(flags, (pool) => listDeadLetters(pool, filterOf(flags, [deadId])));
      if (!row) throw new SagaboxError('NOT_FOUND', `no dead letter with id ${deadId}`);
      out.write(flags.json ? `${JSON.stringify(row)}\n` : `${JSON.stringify(row, null, 2)}\n`);
    });

  // Both ask with the preview's count (countDeadLetters, the same filter); --dry-run prints it and stops.
  const bulk = (name: 'replay' | 'purge', question: (n: number) => string, act: typeof replayDeadLetters): void => {
    const past = name === 'replay' ? 'replayed' : 'purged';
    filters(
      dlq.command(name)
        .description(name === 'replay' ? 'move dead letters back to their queue (or the outbox), attempts reset' : 'delete dead letters for good')
        .argument('[deadId...]')
        .option('--dry-run', 'count what would be hit; change nothing')
        .option('--yes', 'do not ask'),
    ).action(async (ids: string[], flags: Flags) => {
      const filter = filterOf(flags, ids);
      const r = await withPool(flags, async (pool) => {
        if (flags.dryRun || !flags.yes) {
          const matching = await countDeadLetters(pool, filter);
          if (flags.dryRun) return { preview: true, n: matching };
          if (matching > 0) await confirm(question(matching), flags.yes);
          else return { preview: false, n: 0 };
        }
        return { preview: false, n: await act(pool, filter) };
      });
      const n = r.n;
      if (r.preview) {
        out.write(flags.json ? `${JSON.stringify({ dryRun: true, matching: n })}\n` : `would be ${past}: ${n}\n`);
        if (n === 0) throw nothingDone(`no dead letter matched: nothing would be ${past}`);
        return;
      }
      out.write(flags.json ? `${JSON.stringify({ [past]: n })}\n` : `${past} ${n}\n`);
      if (n === 0) throw nothingDone(`no dead letter matched: nothing ${past}`);
    });
  };
  bulk('replay', (n) => `replay ${n} matching dead letter(s)?`, replayDeadLetters);
  bulk('purge', (n) => `delete ${n} matching dead letter(s) for good?`, purgeDeadLetters);
}
