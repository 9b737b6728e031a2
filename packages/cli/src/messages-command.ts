import type { Command } from 'commander';
import { SagaboxError } from '@sagabox/core';
import { getMessage, listMessages, MESSAGE_STATES, type MessageFilter, type MessageSummary } from '@sagabox/core/admin';
import { parseIntFlag } from './cli-values.js';
import { addConnectionOptions } from './connection-options.js';
import { cutLine } from './cut-line.js';
import { outputWidth } from './fit-table.js';
import type { CommandOutput } from './migrate-command.js';
import { withPool } from './open-pool.js';
import { formatAge } from './queues-command.js';
import { registerMessageActions } from './message-actions-command.js';
import { addMessageFilterOptions, messageFilterOf, type MessageFilterFlags } from './message-filter-options.js';

interface Flags extends MessageFilterFlags {
  after?: string;
  limit?: string;
  json?: boolean;
}

/** Why a message waits, in a few words: its lease, its next attempt and last error, its run time or its check. */
export function whyWaiting(m: MessageSummary, now = Date.now()): string {
  const until = (d: Date | null): string => (d === null ? '?' : d.getTime() >= now ? `in ${formatAge(d.getTime() - now)}` : `${formatAge(now - d.getTime())} ago`);
  switch (m.state) {
    case 'in_flight':
      return `leased by ${m.lockedBy ?? '?'}, lease ends ${until(m.lockedUntil)}`;
    case 'retrying':
      return `next attempt ${until(m.runAt)}: ${m.lastError ?? ''}`;
    case 'scheduled':
      return `due ${until(m.runAt)}`;
    case 'prepared':
      return `check ${until(m.checkAt)} (${m.checks} so far)`;
    case 'ready':
      return m.lastError ? `due ${until(m.runAt)}; last error: ${m.lastError}` : `due ${until(m.runAt)}`;
  }
}

/** Registers `sagabox messages list | show | retry | cancel | delete`: browse a queue's or the outbox's messages by state, and act on them. */
export function registerMessagesCommand(program: Command, out: CommandOutput = process.stdout): void {
  const messages = program.command('messages').description('messages waiting in a queue or the outbox: why each waits, one whole, retry now, cancel, delete');

  addConnectionOptions(
    addMessageFilterOptions(
      messages
        .command('list')
        .description('messages of a queue (or the outbox), oldest first, one page at a time'),
      { states: MESSAGE_STATES, id: true },
    )
      .option('--after <cursor>', 'the next page: the cursor the previous page printed')
      .option('--limit <n>', 'messages per page (default 50, at most 1000)')
      .option('--json', 'print JSON ({ messages, next }), for scripts'),
  ).action(async (flags: Flags) => {
    const filter: MessageFilter = {
      ...messageFilterOf(flags),
      ...(flags.after !== undefined ? { after: flags.after } : {}),
      ...(flags.limit !== undefined ? { limit: parseIntFlag('--limit', flags.limit, 1, 1_000) } : {}),
    };
    const page = await withPool(flags, (pool) => listMessages(pool, filter));
    if (flags.json) return out.write(`${JSON.stringify(page)}\n`);
    if (page.messages.length === 0) return out.write('no messages\n');
    // Two lines a message rather than a table: a whole id and the reason it waits do not
    // share 80 columns.
    const now = Date.now();
    const width = outputWidth(out);
    const lines = page.messages.flatMap((m) => [
      cutLine(`${m.id}  ${m.state.padEnd(9)}  ${m.topic}${m.key ? `  key ${m.key}` : ''}${m.group ? `  group ${m.group}` : ''}`, width),
      cutLine(`    ${m.attempts ? `attempt ${m.attempts}, ` : ''}${whyWaiting(m, now)}`, width),
    ]);
    out.write(`${lines.join('\n')}\n${page.next ? `more: --after ${page.next}\n` : ''}`);
  });

  addConnectionOptions(
    messages
      .command('show')
      .description('one message whole: each copy (outbox, queues) with payload and headers, dead letters, half-message decisions, consumers that handled it')
      .argument('<id>', 'message id (UUID)')
      .option('--json', 'print JSON on one line'),
  ).action(async (id: string, flags: Flags) => {
    const message = await withPool(flags, (pool) => getMessage(pool, id, { schema: flags.schema }));
    if (!message) throw new SagaboxError('NOT_FOUND', `no message ${id} in the outbox, a queue, the dead letters or an inbox`);
    out.write(flags.json ? `${JSON.stringify(message)}\n` : `${JSON.stringify(message, null, 2)}\n`);
  });

  registerMessageActions(messages, out);
}
