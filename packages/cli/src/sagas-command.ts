import type { Command } from 'commander';
import { SagaboxError } from '@sagabox/core';
import { cancelSaga, getSaga, listSagas, retrySaga, type SagaDetails, type SagaStatus } from '@sagabox/saga';
import { addConnectionOptions, type ConnectionFlags } from './connection-options.js';
import { confirm } from './confirm.js';
import { fitTable, outputWidth } from './fit-table.js';
import { formatAge } from './queues-command.js';
import type { CommandOutput } from './migrate-command.js';
import { withPool } from './open-pool.js';
import { UsageError } from './usage-error.js';
import { parseIntFlag } from './cli-values.js';

interface Flags extends ConnectionFlags {
  status?: string;
  type?: string;
  limit?: string;
  reason?: string;
  json?: boolean;
  yes?: boolean;
}

const STATUSES: readonly SagaStatus[] = ['running', 'compensating', 'completed', 'compensated', 'failed'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function sagaId(id: string): string {
  if (!UUID.test(id)) throw new UsageError(`saga ids are UUIDs, got ${JSON.stringify(id)} (see \`sagabox sagas list\`)`);
  return id;
}

function notFound(id: string): SagaboxError {
  return new SagaboxError('NOT_FOUND', `no saga ${id}`, { details: { sagaId: id } });
}

/** Why a saga waits (from `getSaga`'s `waitingOn` and `lastFailure`): its pending step, the command sent and when, its deadline, and its last failure. */
export function sagaWaitLines(saga: SagaDetails): string[] {
  const lines: string[] = [];
  const w = saga.waitingOn;
  if (w) {
    lines.push(`  waiting  step "${w.step}": ${w.kind} ${w.topic ?? '?'} (attempt ${w.attempt}) sent ${w.sentAt.toISOString()}, ${formatAge(w.waitedMs)} ago`);
    if (w.deadline && w.overdueMs !== null) {
      // overdueMs is 0 while the deadline is ahead; the time left is measured from the same instant.
      const readAt = w.sentAt.getTime() + w.waitedMs;
      lines.push(`  deadline ${w.overdueMs > 0 ? `passed ${formatAge(w.overdueMs)} ago` : `in ${formatAge(w.deadline.getTime() - readAt)}`}`);
    }
  }
  const f = saga.lastFailure;
  if (f) lines.push(`  last failure  step "${f.step}" ${f.event} at ${f.at.toISOString()}${f.reason !== null ? `: ${f.reason}` : ''}`);
  return lines;
}

/** Renders a saga and its step history as a timeline, oldest event first. */
export function formatSagaTimeline(saga: SagaDetails, width?: number): string {
  const head = [
    `saga ${saga.id}`,
    `  type     ${saga.type} v${saga.version}`,
    `  status   ${saga.status}${saga.error ? ` (${saga.error})` : ''}`,
    `  step     ${saga.currentStep}`,
    `  created  ${saga.createdAt.toISOString()}`,
    `  updated  ${saga.updatedAt.toISOString()}`,
    ...(saga.deadline ? [`  deadline ${saga.deadline.toISOString()}`] : []),
    ...sagaWaitLines(saga),
    `  state    ${JSON.stringify(saga.state)}`,
    '',
    'history',
  ];
  const start = saga.history[0]?.at.getTime() ?? saga.createdAt.getTime();
  const table = fitTable(
    ['#', 'at', '+ms', 'step', 'event', 'detail'],
    saga.history.map((e) => [e.seq, e.at.toISOString(), e.at.getTime() - start, e.step, e.event, e.detail == null ? '' : JSON.stringify(e.detail)]),
    width,
  );
  return `${head.join('\n')}\n${saga.history.length ? table : '  (no events)'}\n`;
}

/** Registers `sagabox sagas list | show | retry | cancel`. */
export function registerSagasCommand(program: Command, out: CommandOutput = process.stdout): void {
  const sagas = program.command('sagas').description('sagas: list, show with step history, retry the step one waits on, cancel a running one');

  addConnectionOptions(
    sagas
      .command('list')
      .description('sagas, most recently changed first')
      .option('--status <status>', STATUSES.join(' | '))
      .option('--type <type>', 'saga type (definition name)')
      .option('--limit <n>', 'most rows (default 100)')
      .option('--json', 'print JSON, for scripts'),
  ).action(async (flags: Flags) => {
    if (flags.status !== undefined && !STATUSES.includes(flags.status as SagaStatus)) {
      throw new UsageError(`--status must be one of ${STATUSES.join(', ')}`);
    }
    const limit = flags.limit === undefined ? undefined : parseIntFlag('--limit', flags.limit, 1);
    const rows = await withPool(flags, (pool) =>
      listSagas(pool, {
        schema: flags.schema,
        ...(flags.status !== undefined ? { status: flags.status as SagaStatus } : {}),
        ...(flags.type !== undefined ? { type: flags.type } : {}),
        ...(limit !== undefined ? { limit } : {}),
      }),
    );
    if (flags.json) return out.write(`${JSON.stringify(rows)}\n`);
    // Narrow columns first: the whole id must survive an 80-column terminal.
    const now = Date.now();
    const table = fitTable(
      ['id', 'type', 'status', 'updated', 'error'],
      rows.map((s) => [s.id, `${s.type} v${s.version}`, s.status, `${formatAge(now - s.updatedAt.getTime())} ago`, s.error ?? '']),
      outputWidth(out),
      [0],
    );
    out.write(rows.length ? `${table}\n` : 'no sagas\n');
  });

  addConnectionOptions(sagas.command('show').description('one saga: state and step history timeline').argument('<id>').option('--json', 'print JSON'))
    .action(async (id: string, flags: Flags) => {
      const saga = await withPool(flags, (pool) => getSaga(pool, sagaId(id), { schema: flags.schema }));
      if (!saga) throw notFound(id);
      out.write(flags.json ? `${JSON.stringify(saga)}\n` : formatSagaTimeline(saga, outputWidth(out)));
    });

  addConnectionOptions(
    sagas.command('retry').description('retry the step a saga waits on: a running saga\'s pending command, a compensating or failed saga\'s compensation, sent again now with fresh attempts').argument('<id>').option('--yes', 'do not ask').option('--json', 'print JSON, for scripts'),
  ).action(async (id: string, flags: Flags) => {
    sagaId(id);
    await confirm(`send the pending step of saga ${id} again?`, flags.yes);
    await withPool(flags, (pool) => retrySaga(pool, id, { schema: flags.schema }));
    out.write(flags.json ? `${JSON.stringify({ sagaId: id, requested: 'retry' })}\n` : `retry requested for saga ${id}\n`);
  });

  addConnectionOptions(
    sagas
      .command('cancel')
      .description('cancel a running saga: its completed steps are compensated in reverse order')
      .argument('<id>')
      .option('--reason <text>', 'kept in the saga history', 'cancelled by operator')
      .option('--yes', 'do not ask')
      .option('--json', 'print JSON, for scripts'),
  ).action(async (id: string, flags: Flags) => {
    sagaId(id);
    await confirm(`cancel saga ${id} and compensate its completed steps?`, flags.yes);
    await withPool(flags, (pool) => cancelSaga(pool, id, { schema: flags.schema, ...(flags.reason !== undefined ? { reason: flags.reason } : {}) }));
    out.write(flags.json ? `${JSON.stringify({ sagaId: id, requested: 'cancel' })}\n` : `cancel requested for saga ${id}\n`);
  });
}
