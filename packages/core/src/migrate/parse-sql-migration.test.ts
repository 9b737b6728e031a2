import { describe, expect, it } from 'vitest';
import { isSagaboxError } from '../shared/errors.js';
import { parseSqlMigration } from './parse-sql-migration.js';

describe('parseSqlMigration', () => {
  it('splits up and down, dropping the header comment', () => {
    const parsed = parseSqlMigration(
      '-- Why: a table.\n\n-- migrate:up\nCREATE TABLE t (id int);\n\n-- migrate:down\nDROP TABLE t;\n',
      '0001_t.sql',
    );
    expect(parsed).toEqual({ up: 'CREATE TABLE t (id int);', down: 'DROP TABLE t;' });
  });

  it('treats a file without a down section as irreversible', () => {
    expect(parseSqlMigration('-- migrate:up\nCREATE TABLE t (id int);\n', 'x.sql').down).toBeNull();
  });

  it('treats a down section with only comments as missing', () => {
    const parsed = parseSqlMigration('-- migrate:up\nSELECT 1;\n-- migrate:down\n-- nothing to undo\n', 'x.sql');
    expect(parsed.down).toBeNull();
  });

  it('takes a file without markers as all up', () => {
    expect(parseSqlMigration('CREATE TABLE t (id int);\n', 'x.sql')).toEqual({
      up: 'CREATE TABLE t (id int);',
      down: null,
    });
  });

  it('accepts markers in any case with extra spaces, and CRLF line ends', () => {
    const parsed = parseSqlMigration('--  Migrate:UP \r\nSELECT 1;\r\n-- migrate:down\r\nSELECT 2;\r\n', 'x.sql');
    expect(parsed).toEqual({ up: 'SELECT 1;', down: 'SELECT 2;' });
  });

  it('ignores marker text that is not a whole line', () => {
    const parsed = parseSqlMigration("-- migrate:up\nSELECT '-- migrate:down';\n", 'x.sql');
    expect(parsed).toEqual({ up: "SELECT '-- migrate:down';", down: null });
  });

  it.each([
    ['-- migrate:up\nSELECT 1;\n-- migrate:up\nSELECT 2;\n', 'more than once'],
    ['-- migrate:down\nSELECT 1;\n-- migrate:up\nSELECT 2;\n', 'before'],
    ['-- migrate:down\nSELECT 1;\n', 'without'],
    ['-- migrate:up\n-- nothing\n-- migrate:down\nSELECT 1;\n', 'empty'],
  ])('refuses malformed files (%#)', (text, why) => {
    let caught: unknown;
    try {
      parseSqlMigration(text, 'bad.sql');
    } catch (err) {
      caught = err;
    }
    expect(isSagaboxError(caught, 'MIGRATION_FAILED')).toBe(true);
    expect((caught as Error).message).toContain('bad.sql');
    expect((caught as Error).message).toContain(why);
  });
});
