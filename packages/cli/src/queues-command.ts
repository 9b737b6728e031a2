import type { Command } from 'commander';
import { outboxStats, pauseQueue, queueStats, resumeQueue, storageHealth } from '@sagabox/core/admin';
import { addConnectionOptions, type ConnectionFlags } from './connection-options.js';
import type { CommandOutput } from './migrate-command.js';
import { withPool } from './open-pool.js';
import { nothingDone } from './exit-codes.js';
import { fitTable, outputWidth } from './fit-table.js';
import { registerQueueLimitsCommands } from './queue-limits-command.js';
import { vacuumWarning } from './storage-command.js';

interface Flags extends ConnectionFlags {
  json?: boolean;
}

/** Formats milliseconds as a short age: 850ms, 12.3s, 4.0m, 2.5h. */
export function formatAge(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1_000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)}m`;
  return `${(ms / 3_600_000).toFixed(1)}h`;
}

/** Registers `sagabox queues [name...]`, `sagabox queues limits | set-limits` and `sagabox outbox`. */
export function registerQueuesCommands(program: Command, out: CommandOutput = process.stdout): void {
  const queuesCommand = addConnectionOptions(
    program
      .command('queues')
      .description('depth of each queue: ready (held: of a group past its limit or a hot key past its first four), in flight, retrying, scheduled, dead, oldest overdue age; flow limits (queues limits, queues set-limits)')
      .argument('[queue...]', 'only these queues')
      .option('--json', 'print JSON, for scripts'),
  );
  // Its subcommands take the same flags as `queues` itself; positional options (set on
  // the program in create-program.ts) hand them to the subcommand.
  registerQueueLimitsCommands(queuesCommand, out);
  for (const [verb, act, help] of [
    ['pause', pauseQueue, 'stop every worker claiming from a queue (deliveries keep arriving and wait)'],
    ['resume', resumeQueue, 'let workers claim from a paused queue again'],
  ] as const) {
    addConnectionOptions(queuesCommand.command(verb).description(help).argument('<queue>').option('--json', 'print JSON, for scripts')).action(
      async (queue: string, flags: Flags) => {
        const result = await withPool(flags, (pool) => act(pool, queue, { schema: flags.schema }));
        if (flags.json) out.write(`${JSON.stringify(result)}\n`);
        else if (result.changed) out.write(`${verb === 'pause' ? 'paused' : 'resumed'} ${result.queue}\n`);
        if (!result.changed) throw nothingDone(`queue ${result.queue} is already ${verb === 'pause' ? 'paused' : 'running'}: nothing done`);
      },
    );
  }
  queuesCommand.action(async (queues: string[], flags: Flags) => {
    const [stats, health] = await withPool(flags, async (pool) => [
      await queueStats(pool, { schema: flags.schema, ...(queues.length ? { queues } : {}) }),
      // A queue's depth looks fine long before a held snapshot has bloated it: say so here.
      await storageHealth(pool, { schema: flags.schema }).catch(() => undefined),
    ] as const);
    if (flags.json) return out.write(`${JSON.stringify(stats)}\n`);
    if (health) out.write(vacuumWarning(health));
    // `held` (of ready: a group's backlog past its limit) only when a queue has some.
    const held = stats.some((s) => s.held > 0);
    const table = fitTable(
      ['queue', 'ready', ...(held ? ['held'] : []), 'in flight', 'retrying', 'scheduled', 'dead', 'oldest'],
      stats.map((s) => [s.pausedAt ? `${s.queue} (paused)` : s.queue, s.ready, ...(held ? [s.held] : []), s.inFlight, s.retrying, s.scheduled, s.dead,
        formatAge(s.oldestAgeMs)]),
      outputWidth(out),
    );
    out.write(stats.length ? `${table}\n` : 'no queues yet\n');
  });

  addConnectionOptions(
    program.command('outbox').description('relay lag and what waits in the outbox (ready, prepared half messages)').option('--json', 'print JSON, for scripts'),
  ).action(async (flags: Flags) => {
    const stats = await withPool(flags, (pool) => outboxStats(pool, { schema: flags.schema }));
    if (flags.json) return out.write(`${JSON.stringify(stats)}\n`);
    out.write(`${fitTable(['ready', 'prepared (half messages)', 'dead', 'relay lag'], [[stats.ready, stats.prepared, stats.dead, formatAge(stats.lagMs)]], outputWidth(out))}\n`);
  });
}
