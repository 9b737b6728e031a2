import { describe, expect, it } from 'vitest';
import { namedStatement, prepared } from '../../packages/core/src/shared/prepared.js';
import { pipelined } from '../../packages/core/src/shared/pipelined.js';
import { useDatabase } from '../support/test-pool.js';

const { pool } = await useDatabase();
const p = pool(2);

const TEXT = 'SELECT $1::int + 1 AS n';

describe('prepared statements', () => {
  it('run as one named statement per text on each connection, with values given beside or inside the config', async () => {
    const client = await p.connect();
    try {
      const statement = namedStatement(TEXT);
      expect(namedStatement(TEXT)).toBe(statement);
      expect(Object.keys(statement)).toEqual([]);
      expect((await client.query<{ n: number }>(statement, [1])).rows).toEqual([{ n: 2 }]);
      expect((await client.query<{ n: number }>(prepared(TEXT, [2]))).rows).toEqual([{ n: 3 }]);
      const [a, b] = await pipelined(client, [prepared(TEXT, [3]), prepared(TEXT, [4])]);
      expect([a!.rows, b!.rows]).toEqual([[{ n: 4 }], [{ n: 5 }]]);
      const { rows } = await client.query<{ name: string; statement: string }>('SELECT name, statement FROM pg_prepared_statements');
      expect(rows).toEqual([{ name: statement.name, statement: TEXT }]);
    } finally {
      client.release();
    }
  });

  it('name two texts apart and leave a config with its values as its only own property', () => {
    const other = 'SELECT $1::int + 2 AS n';
    expect(namedStatement(other).name).not.toBe(namedStatement(TEXT).name);
    expect(namedStatement(TEXT).name).toMatch(/^sagabox_[0-9a-f]{20}$/);
    const config = prepared(other, [1]);
    expect(Object.keys(config)).toEqual(['values']);
    expect([config.name, config.text, config.values]).toEqual([namedStatement(other).name, other, [1]]);
  });
});
