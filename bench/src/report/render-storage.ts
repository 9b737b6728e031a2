import type { BacklogMeasure, StorageResults, TableStat } from './storage-results.js';

function table(headers: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(headers), line(headers.map((_, i) => (i === 0 ? ':--' : '--:'))), ...rows.map(line)].join('\n');
}

const int = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '–' : Math.round(n).toLocaleString('en-US'));
const ms = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '–' : n < 10 ? n.toFixed(1) : Math.round(n).toLocaleString('en-US'));
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
const change = (before: number, after: number) => (before === 0 || Number.isNaN(before) || Number.isNaN(after) ? '–' : `${after >= before ? '+' : ''}${Math.round((after / before - 1) * 100)}%`);

/** The tables worth showing: anything with dead tuples or over 1 MiB. */
function tableList(tables: TableStat[]): string {
  const shown = tables.filter((t) => t.dead > 0 || t.bytes >= 2 ** 20).slice(0, 6);
  return shown.length === 0 ? 'all tables small, no dead tuples' : shown.map((t) => `${t.table} ${int(t.live)} live / ${int(t.dead)} dead, ${mib(t.bytes)} MiB`).join('; ');
}

/** The storage workloads' section of the report. */
export function renderStorage(results: StorageResults): string {
  const s = results.settings;
  const out: string[] = [];
  if (results.snapshot.length > 0) {
    const windows = Math.ceil(s.snapshotMs / s.windowMs);
    const heads = Array.from({ length: windows }, (_, i) => `${Math.round((i * s.windowMs) / 1000)} s`);
    out.push('', '## Held snapshot', '');
    out.push(
      `A producer offers ${s.snapshotRate} messages/s for ${s.snapshotMs / 1000} s, open loop over a pool of 4 connections (BEGIN; INSERT INTO orders; publish; COMMIT), one consumer with concurrency 10, and (unless marked "no snapshot") one REPEATABLE READ transaction opened before the first message and held to the end. Latency is from the moment a message was due to be sent to its handler's start, so it includes a producer that falls behind; a message counts in the window in which its COMMIT returned. Server: ${results.server}.`,
      '',
    );
    const rows: string[][] = [];
    for (const r of results.snapshot) {
      const name = `${r.label}${r.baseline === true ? ', no snapshot' : ''}`;
      if (r.report === undefined) {
        rows.push([name, `failed: ${(r.error ?? '').split('\n')[0]}`, ...heads.map(() => ''), '', '']);
        continue;
      }
      const w = r.report.windows;
      rows.push([`${name} p50 ms`, ...w.map((x) => (x.count === 0 ? 'none' : ms(x.p50Ms))), `${int(r.report.achievedRate)} / ${s.snapshotRate}`, `${int(r.report.handled)} / ${int(r.report.committed)}`]);
      rows.push([`${name} p99 ms`, ...w.map((x) => (x.count === 0 ? '' : ms(x.p99Ms))), '', '']);
    }
    out.push(table(['window from', ...heads, 'produced/s', 'handled / committed'], rows));
    out.push('', 'Tables at the end, the snapshot still held (pg_stat_user_tables; size is heap, indexes and TOAST):', '');
    for (const r of results.snapshot) {
      if (r.report === undefined) continue;
      const age = r.report.xminAge === undefined ? '' : ` (held snapshot's xmin age ${int(r.report.xminAge)} transactions)`;
      out.push(`- ${r.label}${r.baseline === true ? ', no snapshot' : ''}${age}: ${tableList(r.report.tables)}`);
    }
  }
  if (results.backlog.length > 0) {
    out.push('', '## Deep backlog', '');
    out.push(
      `Each phase runs ${s.phaseMs / 1000} s, first with empty queues, then with ${int(s.backlog)} ready messages in each of two queues (deepa, deepb): publish = 4 clients looping BEGIN; INSERT INTO orders; publish into deepa; COMMIT; claim = one consumer (concurrency 10) of deepa, handled/s; trickle = ${s.trickleRate} messages/s offered to a third queue with its own consumer, COMMIT to handler start. Server: ${results.server}.`,
      '',
    );
    const cells = (m: BacklogMeasure) => [int(m.publishPerSecond), int(m.claimPerSecond), ms(m.trickleP50Ms), ms(m.trickleP99Ms)];
    const rows: string[][] = [];
    for (const r of results.backlog) {
      if (r.report === undefined) {
        rows.push([r.label, `failed: ${(r.error ?? '').split('\n')[0]}`, '', '', '', '']);
        continue;
      }
      const { empty, deep } = r.report;
      rows.push([`${r.label}, empty`, ...cells(empty), '']);
      rows.push([`${r.label}, 2 x ${int(s.backlog)} backlog`, ...cells(deep), `${r.report.seedSeconds.toFixed(0)} s`]);
      rows.push([
        `${r.label}, change`,
        change(empty.publishPerSecond, deep.publishPerSecond),
        change(empty.claimPerSecond, deep.claimPerSecond),
        change(empty.trickleP50Ms, deep.trickleP50Ms),
        change(empty.trickleP99Ms, deep.trickleP99Ms),
        '',
      ]);
    }
    out.push(table(['system', 'publish commits/s', 'claim msg/s', 'trickle p50 ms', 'trickle p99 ms', 'seeding'], rows));
    out.push('', 'Tables at the end:', '');
    for (const r of results.backlog) if (r.report !== undefined) out.push(`- ${r.label}: ${tableList(r.report.tables)}`);
  }
  if (results.notes.length > 0) {
    out.push('', 'Settings of each system in the storage workloads:', '');
    for (const note of results.notes) out.push(`- ${note}`);
  }
  return out.join('\n');
}
