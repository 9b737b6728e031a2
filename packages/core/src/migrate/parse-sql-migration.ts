import { SagaboxError } from '../shared/errors.js';

/** The two halves of a `.sql` migration file. */
export interface ParsedSqlMigration {
  /** SQL run by `migrate up`; never empty. */
  readonly up: string;
  /** SQL run by `migrate down`, or `null` when the file has no `-- migrate:down` section. */
  readonly down: string | null;
}

// A marker is a whole line: "-- migrate:up" / "-- migrate:down", any case, spaces allowed.
const MARKER = /^[ \t]*--[ \t]*migrate:(up|down)[ \t]*$/gim;

/**
 * Splits the text of a `.sql` migration file on its `-- migrate:up` and
 * `-- migrate:down` marker lines. Text before `-- migrate:up` (the "why" comment)
 * belongs to neither half. A file without markers is all `up` and has no `down`.
 *
 * @param text - the whole file.
 * @param fileName - used in error messages only.
 * @throws {SagaboxError} `MIGRATION_FAILED` when a marker repeats, `down` comes
 *   before `up`, or the `up` section is empty.
 * @example
 * parseSqlMigration('-- migrate:up\nCREATE TABLE t (id int);\n-- migrate:down\nDROP TABLE t;\n', '0001_t.sql')
 * // => { up: 'CREATE TABLE t (id int);', down: 'DROP TABLE t;' }
 */
export function parseSqlMigration(text: string, fileName: string): ParsedSqlMigration {
  const markers = [...text.matchAll(MARKER)].map((m) => ({
    kind: (m[1] ?? '').toLowerCase() as 'up' | 'down',
    start: m.index ?? 0,
    end: (m.index ?? 0) + m[0].length,
  }));
  const fail = (why: string): never => {
    throw new SagaboxError('MIGRATION_FAILED', `migration ${fileName}: ${why}`, {
      details: { file: fileName },
    });
  };

  let up: string;
  let down: string | null = null;
  const upMarkers = markers.filter((m) => m.kind === 'up');
  const downMarkers = markers.filter((m) => m.kind === 'down');
  if (upMarkers.length > 1) fail('"-- migrate:up" appears more than once');
  if (downMarkers.length > 1) fail('"-- migrate:down" appears more than once');
  const upMarker = upMarkers[0];
  const downMarker = downMarkers[0];

  if (upMarker === undefined) {
    if (downMarker !== undefined) fail('"-- migrate:down" without "-- migrate:up" before it');
    up = text.trim();
  } else if (downMarker === undefined) {
    up = text.slice(upMarker.end).trim();
  } else {
    if (downMarker.start < upMarker.start) fail('"-- migrate:down" comes before "-- migrate:up"');
    up = text.slice(upMarker.end, downMarker.start).trim();
    down = text.slice(downMarker.end).trim();
  }
  if (!hasStatements(up)) fail('the up section is empty');
  if (down !== null && !hasStatements(down)) down = null;
  return { up, down };
}

/** True when `sql` holds something besides whitespace and `--` line comments. */
function hasStatements(sql: string): boolean {
  return sql
    .split('\n')
    .some((line) => line.trim() !== '' && !line.trim().startsWith('--'));
}
