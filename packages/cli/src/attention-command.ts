import type { Command } from 'commander';
import { needsAttention, type AttentionReport } from '@sagabox/core/admin';
import { parseIntFlag } from './cli-values.js';
import { addConnectionOptions, type ConnectionFlags } from './connection-options.js';
import { CliExit, EXIT_CHECK_FAILED } from './exit-codes.js';
import { cutLine } from './cut-line.js';
import { outputWidth } from './fit-table.js';
import type { CommandOutput } from './migrate-command.js';
import { withPool } from './open-pool.js';
import { formatAge } from './queues-command.js';

interface Flags extends ConnectionFlags {
  maxAttempts?: string;
  relayMaxAttempts?: string;
  attemptsLeft?: string;
  limit?: string;
  scanLimit?: string;
  json?: boolean;
}

/** The report as short sections, one line an item, cut to the terminal's width. */
export function formatAttention(r: AttentionReport, width: number, now = Date.now()): string {
  const ago = (d: Date | null): string => (d === null ? '?' : `${formatAge(Math.max(0, now - d.getTime()))} ago`);
  const sections: [string, string[]][] = [
    ['in flight beyond their lease (worker dead or stuck)', r.leaseExpired.map((m) => `${m.id}  ${m.queue}  ${m.topic}  held by ${m.lockedBy ?? '?'}, lease ended ${ago(m.lockedUntil)}`)],
    ['near maxAttempts', r.nearMaxAttempts.map((m) => `${m.id}  ${m.queue ?? '(outbox)'}  ${m.topic}  attempt ${m.attempts}: ${m.lastError ?? ''}`)],
    ['sagas past their deadline', r.sagasPastDeadline.map((s) => `${s.id}  ${s.type}  ${s.status} at step ${s.step}, ${formatAge(s.overdueMs)} late`)],
    ['half messages past their check', r.halfMessagesPastCheck.map((h) => `${h.id}  ${h.topic}  check due ${ago(h.checkAt)}, ${h.checks} check(s) so far`)],
    ['vacuum blocked', r.vacuum.blocked ? [`held by ${r.vacuum.holder?.kind ?? '?'} pid ${r.vacuum.holder?.pid ?? '-'} (${r.vacuum.holder?.application ?? '?'}, ${r.vacuum.holder?.state ?? '?'}) for ${formatAge(r.vacuum.holder?.ageMs ?? null)}`] : []],
  ];
  const lines = sections.filter(([, items]) => items.length > 0).flatMap(([title, items]) => [`${title} (${items.length}):`, ...items.map((i) => cutLine(`  ${i}`, width))]);
  const cut = [...r.beyondScan.queues, ...(r.beyondScan.outbox ? ['(outbox)'] : [])];
  const note = cut.length ? cutLine(`only the head was looked at (--scan-limit) in: ${cut.join(', ')}`, width) + '\n' : '';
  return (lines.length ? `${lines.join('\n')}\n` : 'nothing needs attention\n') + note;
}

/** Registers `sagabox attention`: what needs an operator, exit code 5 when anything does. */
export function registerAttentionCommand(program: Command, out: CommandOutput = process.stdout): void {
  addConnectionOptions(
    program
      .command('attention')
      .description('what needs an operator: expired leases, messages near maxAttempts, sagas past their deadline, half messages past their check, blocked vacuum (exit 5 when anything does)')
      .option('--max-attempts <n>', "the workers' maxAttempts (default 10)")
      .option('--relay-max-attempts <n>', "the relays' retry maxAttempts, for the outbox (default 20)")
      .option('--attempts-left <n>', 'near: at most this many attempts left (default 1)')
      .option('--limit <n>', 'most items per section (default 100)')
      .option('--scan-limit <n>', 'messages looked at per queue, and in the outbox, from the head (default 10000)')
      .option('--json', 'print JSON, for scripts'),
  ).action(async (flags: Flags) => {
    const report = await withPool(flags, (pool) => needsAttention(pool, {
      schema: flags.schema,
      ...(flags.maxAttempts !== undefined ? { maxAttempts: parseIntFlag('--max-attempts', flags.maxAttempts, 1, 1_000_000) } : {}),
      ...(flags.relayMaxAttempts !== undefined ? { relayMaxAttempts: parseIntFlag('--relay-max-attempts', flags.relayMaxAttempts, 1, 1_000_000) } : {}),
      ...(flags.attemptsLeft !== undefined ? { attemptsLeft: parseIntFlag('--attempts-left', flags.attemptsLeft, 0, 1_000) } : {}),
      ...(flags.limit !== undefined ? { limit: parseIntFlag('--limit', flags.limit, 1, 1_000) } : {}),
      ...(flags.scanLimit !== undefined ? { scanLimit: parseIntFlag('--scan-limit', flags.scanLimit, 1, 1_000_000) } : {}),
    }));
    out.write(flags.json ? `${JSON.stringify(report)}\n` : formatAttention(report, outputWidth(out)));
    if (report.total > 0) throw new CliExit(EXIT_CHECK_FAILED, `${report.total} item(s) need attention`);
  });
}
