import type { Command } from 'commander';
import { addDirectRoute, listDirectRoutes, removeDirectRoute } from '@sagabox/core/admin';
import { addConnectionOptions, type ConnectionFlags } from './connection-options.js';
import type { CommandOutput } from './migrate-command.js';
import { withPool } from './open-pool.js';
import { nothingDone } from './exit-codes.js';
import { fitTable, outputWidth } from './fit-table.js';

interface Flags extends ConnectionFlags {
  json?: boolean;
}

/** Registers `sagabox routes list | add <pattern> <queue> | remove <pattern> <queue>` (direct routes). */
export function registerRoutesCommand(program: Command, out: CommandOutput = process.stdout): void {
  const routes = program
    .command('routes')
    .description('direct routes: topics that publish writes straight into a queue of the same database');

  addConnectionOptions(routes.command('list').description('every direct route').option('--json', 'print JSON, for scripts')).action(
    async (flags: Flags) => {
      const list = await withPool(flags, (pool) => listDirectRoutes(pool, { schema: flags.schema }));
      if (flags.json) return out.write(`${JSON.stringify(list)}\n`);
      if (list.length === 0) return out.write('no direct routes\n');
      out.write(`${fitTable(['topic pattern', 'queue', 'since'], list.map((r) => [r.topic, r.queue, r.createdAt.toISOString()]), outputWidth(out))}\n`);
    },
  );

  addConnectionOptions(
    routes
      .command('add')
      .description("route a topic pattern ('orders.*', 'orders.#') straight to a queue; takes effect at once in every producer")
      .argument('<pattern>', 'topic pattern: exact, * for one segment, # for any number')
      .argument('<queue>', 'queue in the same database (created when missing)')
      .option('--json', 'print JSON, for scripts'),
  ).action(async (topic: string, queue: string, flags: Flags) => {
    await withPool(flags, (pool) => addDirectRoute(pool, { topic, queue }, { schema: flags.schema }));
    out.write(flags.json ? `${JSON.stringify({ topic, queue, added: true })}\n` : `routed ${topic} -> ${queue}\n`);
  });

  addConnectionOptions(
    routes
      .command('remove')
      .description('remove a direct route; its topics go to the outbox (and the relay) again')
      .argument('<pattern>', 'topic pattern as added')
      .argument('<queue>', 'queue')
      .option('--json', 'print JSON, for scripts'),
  ).action(async (topic: string, queue: string, flags: Flags) => {
    const removed = await withPool(flags, (pool) => removeDirectRoute(pool, { topic, queue }, { schema: flags.schema }));
    if (flags.json) out.write(`${JSON.stringify({ topic, queue, removed })}\n`);
    else if (removed) out.write(`removed ${topic} -> ${queue}\n`);
    if (!removed) throw nothingDone(`no direct route ${topic} -> ${queue}: nothing removed`);
  });
}
