import type { Command } from 'commander';
import { maintainStorage, storageHealth, type StorageHealth, type StorageMaintenance, type StorageRetention } from '@sagabox/core/admin';
import { parseDurationFlag } from './cli-values.js';
import { CliExit, EXIT_NOTHING_DONE } from './exit-codes.js';
import { addConnectionOptions, type ConnectionFlags } from './connection-options.js';
import type { CommandOutput } from './migrate-command.js';
import { withPool } from './open-pool.js';
import { fitTable, outputWidth } from './fit-table.js';
import { formatAge } from './queues-command.js';

interface Flags extends ConnectionFlags {
  json?: boolean;
}

interface MaintainFlags extends Flags {
  inboxRetention?: string;
  deadLettersRetention?: string;
  halfMessageDecisionsRetention?: string;
  sagasRetention?: string;
  partition?: string;
  ahead?: string;
  lockTimeout?: string;
}

const DAY_MS = 86_400_000;
/** The retention flags of `sagabox storage maintain` and the period each sets. */
const RETENTION_FLAGS: readonly [flag: string, key: keyof MaintainFlags & string, retention: keyof StorageRetention, what: string][] = [
  ['--inbox-retention', 'inboxRetention', 'inboxMs', 'inbox rows, from the message id\'s time'],
  ['--dead-letters-retention', 'deadLettersRetention', 'deadLettersMs', 'dead letters, from when they died'],
  ['--half-message-decisions-retention', 'halfMessageDecisionsRetention', 'halfMessageDecisionsMs', 'half-message decisions of messages no longer in the outbox'],
  ['--sagas-retention', 'sagasRetention', 'sagasMs', 'finished sagas and their history, from when they finished'],
];

/** One line per kind of data: "sagas: created 1, dropped 2 (3 rows kept), purged 0 from sagas_other". */
export function describeMaintenance(r: StorageMaintenance): string {
  const lines = (['inbox', 'deadLetters', 'halfMessageDecisions', 'sagas'] as const).map((data) => {
    const d = r[data];
    const kept = d.kept > 0 ? ` (${d.kept} rows kept)` : '';
    return `${data}: created ${d.created.length}, dropped ${d.dropped.length}${kept}, purged ${d.purgedOther} row(s) one by one${d.dropped.length > 0 ? ` [${d.dropped.join(', ')}]` : ''}`;
  });
  return `${lines.join('\n')}\n`;
}

/** "1.2 MiB" style sizes. */
function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

/** Who holds the vacuum horizon, in one line: "backend pid 4242 (report, idle in transaction), open 12.0m, xmin age 81234". */
export function describeHolder(health: StorageHealth): string {
  const h = health.oldest;
  if (h === null) return 'nothing holds vacuum back';
  const who =
    h.kind === 'backend'
      ? `backend pid ${h.pid}${h.application ? ` (${h.application}${h.state ? `, ${h.state}` : ''})` : h.state ? ` (${h.state})` : ''}`
      : h.kind === 'prepared_transaction'
        ? `prepared transaction ${JSON.stringify(h.name)}`
        : `replication slot ${JSON.stringify(h.name)} (${h.state})`;
  return `${who}${h.ageMs === null ? '' : `, open ${formatAge(h.ageMs)}`}, xmin age ${h.xminAge} transactions`;
}

/** The warning `sagabox queues` and `sagabox storage` print when vacuum is blocked; empty otherwise. */
export function vacuumWarning(health: StorageHealth): string {
  if (!health.vacuumBlocked) return '';
  return `WARNING vacuum is blocked: ${describeHolder(health)}. No dead row of any table is removed until it ends; queues slow down as they bloat. End it (pg_terminate_backend) or set idle_in_transaction_session_timeout; see docs/operations.md.\n`;
}

/** Registers `sagabox storage`: what holds vacuum back, and dead tuples and size of each sagabox table. */
export function registerStorageCommand(program: Command, out: CommandOutput = process.stdout): void {
  const storage = addConnectionOptions(
    program
      .command('storage')
      .description('vacuum health: the oldest transaction or snapshot holding vacuum back, dead tuples and size of each sagabox table')
      .option('--json', 'print JSON, for scripts'),
  ).action(async (flags: Flags) => {
    const health = await withPool(flags, (pool) => storageHealth(pool, { schema: flags.schema }));
    if (flags.json) return out.write(`${JSON.stringify(health)}\n`);
    out.write(vacuumWarning(health));
    out.write(`oldest snapshot: ${describeHolder(health)}\n`);
    out.write(
      `${fitTable(
        ['table', 'live', 'dead', 'size', 'last vacuum'],
        health.tables.map((t) => [
          t.partitions > 1 ? `${t.table} (${t.partitions} parts)` : t.table,
          Math.round(t.liveTuples),
          Math.round(t.deadTuples),
          formatBytes(t.bytes),
          t.lastVacuumAt === null ? 'never' : `${formatAge(Date.now() - t.lastVacuumAt.getTime())} ago`,
        ]),
        outputWidth(out),
      )}\n`,
    );
  });

  const maintain = storage
    .command('maintain')
    .description('retention: create the time partitions ahead, drop those past the retention given (a kind without a flag is not expired), purge old rows of the default partitions')
    .option('--json', 'print JSON, for scripts');
  for (const [flag, , , what] of RETENTION_FLAGS) maintain.option(`${flag} <duration>`, `how long to keep ${what} (7d, 12h, ...)`);
  maintain
    .option('--partition <duration>', 'width of a new partition (default: the width of the newest partition, 1d when there is none)')
    .option('--ahead <duration>', 'create partitions this far ahead (default: 2d, or 32 partitions when that is less)')
    .option('--lock-timeout <duration>', 'longest wait for a table lock per step before skipping it until the next run', '500ms');
  addConnectionOptions(maintain).action(async (flags: MaintainFlags) => {
    const retention: StorageRetention = {};
    for (const [flag, key, period] of RETENTION_FLAGS) {
      const value = flags[key];
      if (typeof value === 'string') retention[period] = parseDurationFlag(flag, value, 0, 100 * 365 * DAY_MS);
    }
    const partitionMs = flags.partition === undefined ? undefined : parseDurationFlag('--partition', flags.partition, 1_000, 366 * DAY_MS);
    const aheadMs = flags.ahead === undefined ? undefined : parseDurationFlag('--ahead', flags.ahead, 0, 366 * DAY_MS);
    const lockTimeoutMs = parseDurationFlag('--lock-timeout', flags.lockTimeout ?? '500ms', 1, 600_000);
    const result = await withPool(flags, (pool) => maintainStorage(pool, { schema: flags.schema, retention, partitionMs, aheadMs, lockTimeoutMs }));
    out.write(flags.json ? `${JSON.stringify(result)}\n` : describeMaintenance(result));
    if (result.skipped > 0) {
      throw new CliExit(EXIT_NOTHING_DONE, `${result.skipped} step(s) skipped: a table lock was not granted within the lock timeout, or another process was maintaining; run again later`);
    }
  });
}
