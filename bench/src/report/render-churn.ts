import { CHURN_TABLES, type ChurnResults, type ChurnTable, type ChurnWindow } from './churn-results.js';

function table(headers: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(headers), line(headers.map((_, i) => (i === 0 ? ':--' : '--:'))), ...rows.map(line)].join('\n');
}

const int = (n: number) => (Number.isNaN(n) ? '–' : Math.round(n).toLocaleString('en-US'));
const ms = (n: number) => (Number.isNaN(n) ? '–' : n < 10 ? n.toFixed(1) : Math.round(n).toLocaleString('en-US'));
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
const ratio = (first: number, last: number) => (first === 0 || Number.isNaN(first) || Number.isNaN(last) ? '–' : `${(last / first).toFixed(2)}×`);
const duration = (ms: number) => (ms % 60_000 === 0 ? `${ms / 60_000} min` : `${ms / 1000} s`);

/**
 * One table over the windows: a row per window, a column per series, the last window
 * over the first, and over the first window in which retention should hold the tables
 * at their steady size (`steady`, when there is one before the last).
 */
function overWindows(windows: ChurnWindow[], steady: number, series: { head: string; value: (w: ChurnWindow) => number; format: (n: number) => string }[]): string {
  const rows = windows.map((w) => [`${w.fromS} s`, ...series.map((s) => s.format(s.value(w)))]);
  const first = windows[0];
  const last = windows.at(-1);
  if (first !== undefined && last !== undefined) rows.push(['last / first', ...series.map((s) => ratio(s.value(first), s.value(last)))]);
  const from = windows[steady];
  if (from !== undefined && last !== undefined && steady < windows.length - 1) rows.push([`last / ${from.fromS} s`, ...series.map((s) => ratio(s.value(from), s.value(last)))]);
  return table(['window from', ...series.map((s) => s.head)], rows);
}

const perTable = (value: (w: ChurnWindow, t: ChurnTable) => number, format: (n: number) => string) =>
  CHURN_TABLES.map((t) => ({ head: t, value: (w: ChurnWindow) => value(w, t), format }));

/** The churn workload's section of the report. */
export function renderChurn(results: ChurnResults): string {
  const s = results.settings;
  const out: string[] = ['', '## Churn (sagabox alone, sustained load, retention acting)', ''];
  out.push(
    `${s.rate} messages/s offered for ${duration(s.durationMs)}, open loop over a pool of 8 connections (BEGIN; INSERT INTO orders; publish; COMMIT): odd messages through the outbox and one relay (defaults) to queue churn_relayed, even ones through a direct route to churn_direct; one worker per queue (concurrency ${s.concurrency}, other options at their defaults: inbox on, batch 10); 1 handler call in ${s.failEvery} per queue returns a non-retryable outcome (dead letter). ${s.sagaRate} three-step sagas/s started (BEGIN; INSERT INTO orders; startSaga; COMMIT, 2 connections), orchestrator and participants (one worker, concurrency ${s.concurrency}) at their defaults, commands and replies through the relay. Latency is from the producer's COMMIT returning to the handler's start, by the window in which the COMMIT returned. Sizes (heap, indexes and TOAST, partitions summed) and dead tuples (pg_stat_user_tables) at each window's end. Server: ${results.server}.`,
    '',
    `Settings: retention **shortened** so that it acts within the run: inbox, dead letters, half-message decisions and finished sagas kept ${duration(s.retentionMs)}, in partitions ${duration(s.partitionMs)} wide (${duration(s.aheadMs)} of them created before the run; the workers' own maintenance keeps their width); maintainStorage with that retention every ${duration(s.partitionMs)}, as a cron job running \`sagabox storage maintain\` would; the workers' own maintenance at its defaults (inbox retention 7 days, every 10 minutes). Autovacuum at the server's defaults.`,
  );
  if (results.error !== undefined || results.report === undefined) {
    out.push('', `Failed: ${(results.error ?? 'no report').split('\n')[0]}`);
    return out.join('\n');
  }
  const r = results.report;
  const w = r.windows;
  // Rows live up to the retention, plus a partition's width and a maintenance interval.
  const steady = w.findIndex((x) => x.fromS * 1000 >= s.retentionMs + 2 * s.partitionMs);
  const steadyNote =
    steady > 0 && steady < w.length - 1
      ? ` The first windows fill the tables up to what the retention keeps; from the window at ${w[steady]!.fromS} s on (retention plus two partitions' width) they should stay flat, hence the second ratio row.`
      : '';
  out.push(
    '',
    `Totals: ${int(r.committed)} of ${int(r.offered)} offered messages committed (${int(r.achievedRate)}/s), ${int(r.handled)} handled, ${int(r.deadLettered)} dead-lettered on purpose (${int(r.duplicates)} handler calls repeated: a message that fails rolls back its batch, and the messages handled before it in that batch are handled again); ${int(r.sagasCompleted)} of ${int(r.sagasStarted)} sagas completed; maintenance created ${int(r.partitionsCreated)} and dropped ${int(r.partitionsDropped)} partitions, ${int(r.maintenanceSkipped)} steps skipped${r.maintenanceErrors.length > 0 ? `, failed ${r.maintenanceErrors.length} time(s): ${r.maintenanceErrors[0]}` : ''}.${steadyNote}`,
    '',
    'Throughput (per second):',
    '',
    overWindows(w, steady, [
      { head: 'produced', value: (x) => x.producedPerSecond, format: int },
      { head: 'handled churn_relayed', value: (x) => x.handledRelayedPerSecond, format: int },
      { head: 'handled churn_direct', value: (x) => x.handledDirectPerSecond, format: int },
      { head: 'sagas started', value: (x) => x.sagasStartedPerSecond, format: (n) => n.toFixed(1) },
      { head: 'sagas completed', value: (x) => x.sagasCompletedPerSecond, format: (n) => n.toFixed(1) },
    ]),
    '',
    'Latency, COMMIT to handler start (ms):',
    '',
    overWindows(w, steady, [
      { head: 'outbox + relay p50', value: (x) => x.relayedP50Ms, format: ms },
      { head: 'outbox + relay p99', value: (x) => x.relayedP99Ms, format: ms },
      { head: 'direct route p50', value: (x) => x.directP50Ms, format: ms },
      { head: 'direct route p99', value: (x) => x.directP99Ms, format: ms },
    ]),
    '',
    'Total size at the window end (MiB):',
    '',
    overWindows(w, steady, perTable((x, t) => x.tables[t].bytes, mib)),
    '',
    'Dead tuples at the window end:',
    '',
    overWindows(w, steady, perTable((x, t) => x.tables[t].dead, int)),
    '',
    'Live tuples at the window end (estimates, pg_stat_user_tables):',
    '',
    overWindows(w, steady, perTable((x, t) => x.tables[t].live, int)),
  );
  const last = w.at(-1);
  if (last !== undefined) out.push('', `Partitions at the end: ${CHURN_TABLES.map((t) => `${t} ${last.tables[t].partitions}`).join(', ')}.`);
  return out.join('\n');
}
