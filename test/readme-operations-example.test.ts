import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { createTestDatabase } from '@sagabox/testing';

const db = await createTestDatabase();
const file = fileURLToPath(new URL('./.tmp-readme-operations-example.mjs', import.meta.url));
afterAll(async () => {
  rmSync(file, { force: true });
  await db.drop();
});

it("runs the README's metrics example as it is written", async () => {
  const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');
  const section = readme.slice(readme.indexOf('### Prometheus metrics'));
  const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
  expect(code).toBeDefined();
  writeFileSync(file, code!);
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, [file], { env: { ...process.env, DATABASE_URL: db.url }, timeout: 30_000 }, (err, out, errOut) =>
      err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out)),
  );
  expect(stdout).toBe('sagabox_published_total{topic="shipments.requested"} 1\nsagabox_acked_total{queue="shipping"} 1\n');
});
