import Table from 'cli-table3';

/** Terminal width tables are fitted to when the output is not a terminal that reports one. */
export const DEFAULT_TABLE_WIDTH = 80;

/** Narrowest a column gets (content characters) before its neighbours stop shrinking it. */
const MIN_COLUMN = 4;

/**
 * Renders rows as a plain table no wider than `width` columns: the widest columns are
 * narrowed first, and a cell that no longer fits ends in an ellipsis (`--json` keeps
 * every value whole).
 *
 * @param width - terminal columns; default {@link DEFAULT_TABLE_WIDTH}.
 * @param whole - indexes of columns never narrowed (ids an operator copies into the next command).
 * @example fitTable(['queue', 'ready'], [['billing', 3]]) // a two-column table string, no trailing newline
 */
export function fitTable(
  head: readonly string[],
  rows: readonly (readonly unknown[])[],
  width = DEFAULT_TABLE_WIDTH,
  whole: readonly number[] = [],
): string {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? '' : String(c)).replace(/\s*\n\s*/g, ' ')));
  // Content width per column, then padding (one space each side) and the borders.
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]?.length ?? 0)));
  const frame = (ws: number[]): number => ws.reduce((a, w) => a + w + 2, 0) + ws.length + 1;
  // The last column (free text: an error, a detail, a note) gives way first, down to its
  // header's width; then the widest of the others, one character at a time.
  const last = widths.length - 1;
  if (last > 0 && !whole.includes(last) && frame(widths) > width) {
    const floor = Math.max(MIN_COLUMN, head[last]!.length);
    widths[last] = Math.max(Math.min(widths[last]!, floor), widths[last]! - (frame(widths) - width));
  }
  while (frame(widths) > width) {
    const narrowable = widths.map((w, i) => (whole.includes(i) ? 0 : w));
    const widest = narrowable.indexOf(Math.max(...narrowable));
    if (narrowable[widest]! <= MIN_COLUMN) break;
    widths[widest] = widths[widest]! - 1;
  }
  const table = new Table({
    head: [...head],
    colWidths: widths.map((w) => w + 2),
    truncate: '…',
    wordWrap: false,
    style: { head: [], border: [] }, // plain text: the output is often piped or captured
  });
  for (const r of cells) table.push(r);
  return table.toString();
}

/** The width to fit tables to: the terminal's when `out` is one, else {@link DEFAULT_TABLE_WIDTH}. */
export function outputWidth(out: unknown): number {
  const columns = (out as { columns?: unknown }).columns;
  return typeof columns === 'number' && columns >= 40 ? columns : DEFAULT_TABLE_WIDTH;
}
