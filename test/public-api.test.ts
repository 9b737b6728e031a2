import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script without types, shared with `npm run api:update`.
import { buildReports, reportDir } from '../scripts/api-report.mjs';

// The public API of every published package (root and subpath exports) is checked in as
// docs/api/*.md. An export added, removed or changed in signature fails here until the
// report is regenerated with `npm run api:update` and the diff is reviewed.
const { reports, undocumented } = buildReports() as { reports: Map<string, string>; undocumented: string[] };

describe('public API', () => {
  it('matches the checked-in report of every entry point', () => {
    const checkedIn = existsSync(reportDir) ? readdirSync(reportDir).filter((f) => f.endsWith('.md')).sort() : [];
    expect(checkedIn, 'docs/api/ holds one report per entry point (npm run api:update)').toEqual([...reports.keys()].sort());
    for (const [file, text] of reports) {
      expect(text, `docs/api/${file} is out of date: run npm run api:update and review the diff`).toBe(
        readFileSync(join(reportDir, file), 'utf8'),
      );
    }
  });

  it('documents every export with TSDoc', () => {
    expect(undocumented).toEqual([]);
  });

  it('keeps internals out of @sagabox/core', () => {
    const core = reports.get('sagabox-core.md')!;
    for (const internal of ['checkInt', 'SqlMigrationProvider', 'parseSqlMigration', 'toRunQuery', 'encodeMessage', 'createListener']) {
      expect(core).not.toMatch(new RegExp(`\\b${internal}\\b`));
    }
    expect(core).toMatch(/\bfunction recordInInbox\b/);
  });
});
