import type { Command } from 'commander';
import { storageHealth, type StorageHealth } from '@sagabox/core/admin';
import { addConnectionOptions, type ConnectionFlags } from './connection-options.js';
import type { CommandOutput } from './migrate-command.js';
import { withPool } from './open-pool.js';
import { fitTable, outputWidth } from './fit-table.js';
import { formatAge } from './queues-command.js';

interface Flags extends ConnectionFlags {
  json?: boolean;
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
  addConnectionOptions(
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
}
