import type { Command } from 'commander';
import Table from 'cli-table3';
import { listDeadLetters, purgeDeadLetters, replayDeadLetters, SagaboxError, type DeadLetterFilter } from '@sagabox/core';
import { addConnectionOptions, type ConnectionFlags } from './connection-options.js';
import { confirm } from './confirm.js';
import type { CommandOutput } from './migrate-command.js';
import { withPool } from './open-pool.js';
import { UsageError } from './usage-error.js';
import { parseIntFlag } from './cli-values.js';

interface Flags extends ConnectionFlags {
  queue?: string;
  topic?: string;
  reason?: string;
  olderThanMs?: string;
  limit?: string;
  json?: boolean;
  yes?: boolean;
}

function filterOf(flags: Flags, ids: string[] = []): DeadLetterFilter {
  const num = (name: string, v: string | undefined): number | undefined => (v === undefined ? undefined : parseIntFlag(name, v, 0));
  if (ids.some((id) => !/^\d{1,19}$/.test(id))) throw new UsageError('dead-letter ids are numbers (see `sagabox dlq list`)');
  const olderThanMs = num('--older-than-ms', flags.olderThanMs);
  const limit = num('--limit', flags.limit);
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
      .option('--reason <reason>', 'failed | expired | invalid | unroutable | unresolved | non_retryable')
      .option('--older-than-ms <ms>', 'only dead letters older than this'),
  );
}

/** Registers `sagabox dlq list | show | replay | purge`. */
export function registerDlqCommand(program: Command, out: CommandOutput = process.stdout): void {
  const dlq = program.command('dlq').description('dead letters: list, show, replay, purge');

  filters(dlq.command('list').description('list dead letters, newest first').option('--limit <n>', 'most rows (default 100)').option('--json', 'print JSON'))
    .action(async (flags: Flags) => {
      const rows = await withPool(flags, (pool) => listDeadLetters(pool, filterOf(flags)));
      if (flags.json) return out.write(`${JSON.stringify(rows)}\n`);
      const table = new Table({ head: ['dead id', 'queue', 'topic', 'reason', 'attempts', 'dead at', 'error'], style: { head: [], border: [] } });
      for (const r of rows) table.push([r.deadId, r.queue ?? '(outbox)', r.topic, r.reason, r.attempts, r.deadAt.toISOString(), r.error.slice(0, 60)]);
      out.write(rows.length ? `${table.toString()}\n` : 'no dead letters\n');
    });

  addConnectionOptions(dlq.command('show').description('one dead letter in full').argument('<deadId>').option('--json', 'print JSON'))
    .action(async (deadId: string, flags: Flags) => {
      const [row] = await withPool(flags, (pool) => listDeadLetters(pool, filterOf(flags, [deadId])));
      if (!row) throw new SagaboxError('NOT_FOUND', `no dead letter with id ${deadId}`);
      out.write(flags.json ? `${JSON.stringify(row)}\n` : `${JSON.stringify(row, null, 2)}\n`);
    });

  filters(dlq.command('replay').description('move dead letters back to their queue (or the outbox), attempts reset').argument('[deadId...]').option('--yes', 'do not ask'))
    .action(async (ids: string[], flags: Flags) => {
      const filter = filterOf(flags, ids);
      if (!(await confirm(`replay ${ids.length ? ids.length : 'all matching'} dead letter(s)?`, flags.yes))) return;
      const n = await withPool(flags, (pool) => replayDeadLetters(pool, filter));
      out.write(`replayed ${n}\n`);
    });

  filters(dlq.command('purge').description('delete dead letters for good').argument('[deadId...]').option('--yes', 'do not ask'))
    .action(async (ids: string[], flags: Flags) => {
      const filter = filterOf(flags, ids);
      if (!(await confirm(`delete ${ids.length ? ids.length : 'all matching'} dead letter(s) for good?`, flags.yes))) return;
      const n = await withPool(flags, (pool) => purgeDeadLetters(pool, filter));
      out.write(`purged ${n}\n`);
    });
}
