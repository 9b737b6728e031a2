import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SNAPSHOT_HEADER, SNAPSHOT_PATH, dumpSchema } from '../../scripts/schema-dump.mjs';
import { useDatabase } from '../support/test-pool.js';

const { db } = await useDatabase();

describe('the sagabox schema', () => {
  it('is what migrations/schema.snapshot records (tables, columns, constraints, indexes, functions)', async () => {
    const migrated = SNAPSHOT_HEADER + (await dumpSchema(db.url, 'sagabox'));
    const recorded = readFileSync(SNAPSHOT_PATH, 'utf8');
    expect(
      migrated,
      'the freshly migrated schema differs from migrations/schema.snapshot: if the change is intended, ' +
        'run `npm run schema:snapshot` and commit the snapshot with the migration',
    ).toBe(recorded);
  });
});
