import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '@sagabox/testing';

// Every runnable example in README.md and the guides in docs/, run as it is written: the
// first ```js block after the given heading, saved as an .mjs file in test/ (so it
// resolves the workspace packages from their dist) and run with node against a fresh
// database.
const db = await createTestDatabase();
const written: string[] = [];
afterAll(async () => {
  for (const f of written) rmSync(f, { force: true });
  await db.drop();
});

async function runExample(doc: string, heading: string, timeoutMs: number): Promise<string> {
  const text = `\n${readFileSync(fileURLToPath(new URL(`../${doc}`, import.meta.url)), 'utf8')}`;
  const at = text.indexOf(`\n${heading}\n`);
  expect(at, `${doc} has no heading ${heading}`).toBeGreaterThanOrEqual(0);
  const code = /```js\n([\s\S]*?)```/.exec(text.slice(at))?.[1];
  expect(code, `no js example under ${heading} in ${doc}`).toBeDefined();
  const file = fileURLToPath(new URL(`./.tmp-readme-${written.length}.mjs`, import.meta.url));
  written.push(file);
  writeFileSync(file, code!);
  return new Promise<string>((resolve, reject) =>
    execFile(process.execPath, [file], { env: { ...process.env, DATABASE_URL: db.url }, timeout: timeoutMs }, (err, out, errOut) =>
      err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out)),
  );
}

describe('README and guide examples', () => {
  it('README: the example', async () => {
    expect(await runExample('README.md', '## Example', 30_000)).toContain("invoiced [ { order_id: 'o-1' } ]");
  });

  it('docs/sagas.md: a saga with a participant', async () => {
    expect(await runExample('docs/sagas.md', '# Sagas', 40_000)).toContain(
      'saga completed $saga:started reserve:command_sent reserve:completed confirm:completed $saga:completed',
    );
  });

  it('docs/observability.md: Prometheus metrics', async () => {
    expect(await runExample('docs/observability.md', '## Prometheus metrics', 30_000)).toBe(
      'sagabox_published_total{topic="shipments.requested"} 1\nsagabox_acked_total{queue="shipping"} 1\n',
    );
  });
});
